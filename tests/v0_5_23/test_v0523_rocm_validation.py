"""ROCm start-up validation of the DSA backends and the FP8 KV cache (0.5.23's overrides.py).

Unpatched 0.5.23 returns early for HIP: a CUDA-only DSA backend (flashmla_kv, fa3, ...) or an
FP8 cache on a GPU the FP8 kernels do not target passes start-up and fails in the first forward,
and an unsupported --kv-cache-dtype is refused by an `assert` (gone under `python -O`) whose
message names no flag. Each test fails there and passes on the series.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch
from v0523_modules import load_overrides


@pytest.fixture(scope="module")
def overrides(tree_v0_5_23: Path) -> types.ModuleType:
    return load_overrides(tree_v0_5_23)


@pytest.fixture
def gpu_arch(monkeypatch):
    """Make torch report a ROCm GPU of the given gcnArchName."""

    def set_arch(arch: str) -> None:
        props = types.SimpleNamespace(gcnArchName=arch)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=0: props)

    return set_arch


@pytest.mark.parametrize(
    "prefill, decode, flag",
    [
        ("tilelang", "flashmla_kv", "--dsa-decode-backend flashmla_kv"),
        ("flashmla_sparse", "triton", "--dsa-prefill-backend flashmla_sparse"),
        ("triton", "fa3", "--dsa-decode-backend fa3"),
    ],
)
@pytest.mark.parametrize("dtype", ["fp8_e4m3", "bfloat16"])
def test_cuda_only_backends_are_refused_on_rocm(overrides, gpu_arch, prefill, decode, flag, dtype):
    gpu_arch("gfx942:sramecc+:xnack-")
    with pytest.raises(ValueError, match=flag):
        overrides._check_dsa_backend_constraints(dtype, prefill, decode, hip=True)


@pytest.mark.parametrize("arch", ["gfx90a", "gfx1100", "gfx1201"])
def test_fp8_kv_on_an_untargeted_rocm_gpu_is_refused(overrides, gpu_arch, arch):
    gpu_arch(f"{arch}:sramecc+:xnack-")
    with pytest.raises(ValueError, match="--kv-cache-dtype bfloat16"):
        overrides._check_dsa_backend_constraints("fp8_e4m3", "triton", "triton", hip=True)


@pytest.mark.parametrize("arch", ["gfx942:sramecc+:xnack-", "gfx950"])
@pytest.mark.parametrize("pair", [("triton", "triton"), ("tilelang", "triton"), ("aiter", "aiter")])
def test_rocm_pairs_on_mi300_and_mi355_pass(overrides, gpu_arch, arch, pair):
    gpu_arch(arch)
    for dtype in ("fp8_e4m3", "bfloat16"):
        overrides._check_dsa_backend_constraints(dtype, *pair, hip=True)  # no error


def test_bf16_kv_on_any_rocm_gpu_passes(overrides, gpu_arch):
    gpu_arch("gfx90a")
    overrides._check_dsa_backend_constraints("bfloat16", "triton", "triton", hip=True)


def test_fp8_e5m2_is_a_value_error_naming_the_flag(overrides, monkeypatch):
    # The dtype default pass, reached for a DeepSeek DSA model on a GPU; the assert it had is
    # stripped by `python -O`, so the check must be an exception.
    hf_config = types.SimpleNamespace(architectures=["DeepseekV32ForCausalLM"])
    view = types.SimpleNamespace(
        kv_cache_dtype="fp8_e5m2", dsa_prefill_backend=None, dsa_decode_backend=None
    )
    monkeypatch.setattr(
        overrides, "model_config_of", lambda v: types.SimpleNamespace(hf_config=hf_config)
    )
    platform = types.SimpleNamespace(is_npu=False, is_xpu=False, is_hip=True)
    monkeypatch.setattr(overrides, "get_platform", lambda: platform)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 4))
    dsa = types.ModuleType("sglang.srt.configs.model_config")
    dsa.is_deepseek_dsa = lambda cfg: True
    monkeypatch.setitem(__import__("sys").modules, "sglang.srt.configs.model_config", dsa)
    with pytest.raises(ValueError, match="--kv-cache-dtype fp8_e5m2"):
        overrides._dsa_kv_cache_dtype_default(view)
