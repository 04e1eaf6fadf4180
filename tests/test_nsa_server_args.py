"""The ServerArgs wiring of the NSA KV-cache rules (patch 0003), on the real patched
server_args.py: `_handle_model_specific_adjustments` for an NSA model, with narrow stubs for the
platform probes and the model config.

The pure rules are tested in test_nsa_config_validation.py; here the point is what ServerArgs
does with them: the ROCm default-backend branch, the order (dtype default, then backend
defaults, then validation), the CUDA arch limit, and that argument processing leaves the
process environment alone (no SGLANG_NSA_FORCE_MLA mutation: the attention backend turns
MHA_ONE_SHOT off for the raw FP8 layout itself).
"""

from __future__ import annotations

import dataclasses
import sys
import types
from pathlib import Path

import pytest
import torch

from scripts.kerneltools.loader import install_stub, load_tree_module, restored_sys_modules

# Platform facts each test sets; the stubs read them.
PLATFORM: dict = {}


class _Flag:
    """An sglang `envs.X` flag: reads False, records every set()."""

    def __init__(self, name: str, sets: list):
        self.name, self._sets = name, sets

    def get(self):
        return False

    def is_set(self):
        return False

    def set(self, value):
        self._sets.append((self.name, value))


class _Envs:
    def __init__(self):
        self.sets: list = []

    def __getattr__(self, name):
        if not name.startswith("SGLANG_"):
            raise AttributeError(name)
        return _Flag(name, self.sets)


def _unexpected(name):
    def call(*args, **kwargs):
        raise AssertionError(f"server_args called the unstubbed helper {name}")

    return call


class _StrictModule(types.ModuleType):
    """A stub whose unlisted attributes exist (for `from m import x`) but fail when called."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _unexpected(f"{self.__name__}.{name}")


def _strict_stub(name: str, **attrs) -> None:
    install_stub(name)
    mod = _StrictModule(name)
    for key, value in attrs.items():
        setattr(mod, key, value)
    sys.modules[name] = mod


ENVS = _Envs()


@pytest.fixture(scope="module")
def server_args(sglang_tree: Path) -> types.ModuleType:
    common = {
        "is_hip": lambda: PLATFORM["hip"],
        "is_npu": lambda: False,
        "is_cuda": lambda: not PLATFORM["hip"],
        "is_blackwell_supported": lambda: False,
        "is_sm100_supported": lambda: False,
        "is_sm90_supported": lambda: PLATFORM["cap"] == (9, 0) and not PLATFORM["hip"],
        "is_sm120_supported": lambda: False,
        "get_device_name": lambda: "test device",
        "parse_connector_type": lambda path: "file",
    }
    with restored_sys_modules():
        cfg = load_tree_module(
            sglang_tree,
            "srt/layers/attention/nsa/fp8_kv_config.py",
            "sglang.srt.layers.attention.nsa.fp8_kv_config",
        )
        _strict_stub("sglang.srt.utils.common", **common)
        _strict_stub(
            "sglang.srt.connector", ConnectorType=types.SimpleNamespace(INSTANCE="instance")
        )
        _strict_stub("sglang.srt.environ", envs=ENVS)
        _strict_stub("sglang.srt.function_call.function_call_parser", FunctionCallParser=object)
        _strict_stub("sglang.srt.layers.attention.fla.chunk_delta_h", CHUNK_SIZE=64)
        _strict_stub("sglang.srt.lora.lora_registry", LoRARef=object)
        _strict_stub("sglang.srt.parser.reasoning_parser", ReasoningParser=object)
        _strict_stub("sglang.srt.utils.hf_transformers_utils")
        _strict_stub("sglang.utils", is_in_ci=lambda: False)
        _strict_stub("sglang.srt.configs.model_config", is_deepseek_nsa=lambda hf: True)
        sys.modules["sglang.srt.layers.attention.nsa.fp8_kv_config"] = cfg
        mod = load_tree_module(sglang_tree, "srt/server_args.py", "_nsa_test_server_args")
        # The stubs must stay reachable for imports done inside methods.
        mod._test_modules = {n: sys.modules[n] for n in ("sglang.srt.configs.model_config",)}
        return mod


def make_args(server_args, **flags):
    cls = server_args.ServerArgs
    args = cls.__new__(cls)
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = None
        setattr(args, f.name, value)
    args.model_path = "deepseek-ai/DeepSeek-V3.2"
    args.model_config = types.SimpleNamespace(
        hf_config=types.SimpleNamespace(architectures=["DeepseekV3ForCausalLM"])
    )
    for key, value in flags.items():
        setattr(args, key, value)
    return args


def adjust(server_args, monkeypatch, *, hip, cap, **flags):
    PLATFORM.update(hip=hip, cap=cap)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: cap)
    monkeypatch.setitem(
        sys.modules,
        "sglang.srt.configs.model_config",
        server_args._test_modules["sglang.srt.configs.model_config"],
    )
    args = make_args(server_args, **flags)
    ENVS.sets.clear()
    args._handle_model_specific_adjustments()
    return args


MI300, MI355, SM90 = (9, 4), (9, 5), (9, 0)
TILELANG_FLAGS = "--nsa-prefill-backend tilelang --nsa-decode-backend tilelang"


@pytest.mark.parametrize("cap", [MI300, MI355])
@pytest.mark.parametrize("dtype", ["fp8_e4m3", "bf16"])
def test_rocm_defaults_both_backends_to_tilelang(server_args, monkeypatch, cap, dtype):
    args = adjust(server_args, monkeypatch, hip=True, cap=cap, kv_cache_dtype=dtype)
    assert (args.nsa_prefill_backend, args.nsa_decode_backend) == ("tilelang", "tilelang")
    assert args.kv_cache_dtype == ("fp8_e4m3" if dtype == "fp8_e4m3" else "bfloat16")
    assert args.attention_backend == "nsa" and args.page_size == 1


def test_rocm_auto_dtype_becomes_bf16(server_args, monkeypatch):
    args = adjust(server_args, monkeypatch, hip=True, cap=MI300, kv_cache_dtype="auto")
    assert args.kv_cache_dtype == "bfloat16"
    assert args.nsa_decode_backend == "tilelang"


def test_rocm_fills_the_unset_phase_before_validating(server_args, monkeypatch):
    # Validation runs after the defaults: --nsa-prefill-backend tilelang alone is complete.
    args = adjust(
        server_args,
        monkeypatch,
        hip=True,
        cap=MI355,
        kv_cache_dtype="fp8_e4m3",
        nsa_prefill_backend="tilelang",
    )
    assert args.nsa_decode_backend == "tilelang"


def test_rocm_fp8_with_a_non_tilelang_phase_is_refused(server_args, monkeypatch):
    with pytest.raises(ValueError, match=f"On ROCm.*{TILELANG_FLAGS}.*aiter"):
        adjust(
            server_args,
            monkeypatch,
            hip=True,
            cap=MI300,
            kv_cache_dtype="fp8_e4m3",
            nsa_decode_backend="aiter",
        )


def test_cuda_fp8_with_one_tilelang_phase_is_refused_after_the_cuda_defaults(
    server_args, monkeypatch
):
    # The CUDA default for the unset decode phase (flashmla_kv) is filled first, then the
    # mixed pair is refused: validation sees resolved backends, never None.
    with pytest.raises(ValueError, match="--nsa-decode-backend flashmla_kv"):
        adjust(
            server_args,
            monkeypatch,
            hip=False,
            cap=SM90,
            kv_cache_dtype="fp8_e4m3",
            nsa_prefill_backend="tilelang",
        )


def test_cuda_raw_fp8_leaves_the_environment_alone(server_args, monkeypatch):
    args = adjust(
        server_args,
        monkeypatch,
        hip=False,
        cap=SM90,
        kv_cache_dtype="fp8_e4m3",
        nsa_prefill_backend="tilelang",
        nsa_decode_backend="tilelang",
    )
    assert args.kv_cache_dtype == "fp8_e4m3"
    assert ENVS.sets == [], f"argument processing set {ENVS.sets}"


@pytest.mark.parametrize("cap", [(10, 0), (12, 0)])
def test_cuda_raw_fp8_is_refused_beyond_hopper(server_args, monkeypatch, cap):
    with pytest.raises(ValueError) as err:
        adjust(
            server_args,
            monkeypatch,
            hip=False,
            cap=cap,
            kv_cache_dtype="fp8_e4m3",
            nsa_prefill_backend="tilelang",
            nsa_decode_backend="tilelang",
        )
    msg = str(err.value)
    assert f"sm_{cap[0]}{cap[1]}" in msg and TILELANG_FLAGS in msg
    assert "--kv-cache-dtype bfloat16" in msg


def test_in_seq_split_context_parallel_keeps_upstreams_bf16_override(server_args, monkeypatch):
    # Upstream forces a bf16 cache for in-seq-split CP before the NSA rules run; the series
    # adds no rule there (one that could never fire was removed).
    args = adjust(
        server_args,
        monkeypatch,
        hip=False,
        cap=SM90,
        kv_cache_dtype="fp8_e4m3",
        nsa_prefill_backend="tilelang",
        nsa_decode_backend="tilelang",
        enable_nsa_prefill_context_parallel=True,
        nsa_prefill_cp_mode="in-seq-split",
        tp_size=8,
    )
    assert args.kv_cache_dtype == "bfloat16"
