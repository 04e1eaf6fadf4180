"""Start-up validation of the KV cache dtype and NSA backends (patch 0003, fp8_kv_config.py).

Every rule is exercised through the pure module loaded by path; error messages must name the
flags the user has to change.
"""

from __future__ import annotations

import itertools

import pytest

from scripts.kerneltools.loader import load_tree_module

MI300, MI355, MI250 = (9, 4), (9, 5), (9, 0)
SM80, SM89, SM90, SM100 = (8, 0), (8, 9), (9, 0), (10, 0)
NSA_BACKENDS = [
    "flashmla_sparse",
    "flashmla_kv",
    "flashmla_auto",
    "fa3",
    "tilelang",
    "aiter",
    "trtllm",
]
BOTH_FLAGS = "--nsa-prefill-backend tilelang --nsa-decode-backend tilelang"


@pytest.fixture(scope="module")
def cfg(sglang_tree):
    return load_tree_module(
        sglang_tree,
        "srt/layers/attention/nsa/fp8_kv_config.py",
        "sglang.srt.layers.attention.nsa.fp8_kv_config",
    )


def validate(cfg, dtype, prefill, decode, *, hip, cap):
    cfg.validate_nsa_kv_cache_config(
        kv_cache_dtype=dtype,
        prefill_backend=prefill,
        decode_backend=decode,
        is_hip=hip,
        device_capability=cap,
    )


# --- accepted configurations -------------------------------------------------------------


@pytest.mark.parametrize("cap", [MI300, MI355])
def test_hip_fp8_with_both_tilelang_is_accepted(cfg, cap):
    validate(cfg, "fp8_e4m3", "tilelang", "tilelang", hip=True, cap=cap)


def test_cuda_fp8_with_both_tilelang_is_accepted_on_hopper(cfg):
    validate(cfg, "fp8_e4m3", "tilelang", "tilelang", hip=False, cap=SM90)


@pytest.mark.parametrize(
    "prefill,decode",
    [("flashmla_auto", "flashmla_kv"), ("flashmla_sparse", "flashmla_kv"), ("trtllm", "trtllm")],
)
def test_cuda_fp8_without_tilelang_keeps_upstream_behaviour(cfg, prefill, decode):
    validate(cfg, "fp8_e4m3", prefill, decode, hip=False, cap=SM90)


@pytest.mark.parametrize("dtype", ["bfloat16", "bf16"])
@pytest.mark.parametrize("hip,cap", [(True, MI300), (True, MI250), (False, SM80), (False, SM90)])
@pytest.mark.parametrize(
    "prefill,decode", [("tilelang", "tilelang"), ("tilelang", "aiter"), ("flashmla_sparse", "fa3")]
)
def test_bf16_is_never_rejected(cfg, dtype, hip, cap, prefill, decode):
    validate(cfg, dtype, prefill, decode, hip=hip, cap=cap)


# --- rejected configurations --------------------------------------------------------------


def test_fp8_e5m2_is_rejected_with_the_dtype_flag(cfg):
    with pytest.raises(ValueError) as err:
        validate(cfg, "fp8_e5m2", "tilelang", "tilelang", hip=True, cap=MI355)
    msg = str(err.value)
    assert "--kv-cache-dtype fp8_e5m2 is not supported for NSA models" in msg
    assert "--kv-cache-dtype fp8_e4m3" in msg and "--kv-cache-dtype bfloat16" in msg


@pytest.mark.parametrize("dtype", ["auto", "fp4_e2m1", "float16"])
def test_other_dtypes_are_rejected(cfg, dtype):
    with pytest.raises(ValueError, match=f"--kv-cache-dtype {dtype} is not supported"):
        validate(cfg, dtype, "tilelang", "tilelang", hip=False, cap=SM90)


def test_check_dtype_alone_accepts_the_bf16_alias(cfg):
    cfg.check_nsa_kv_cache_dtype("bf16")
    cfg.check_nsa_kv_cache_dtype("fp8_e4m3")
    with pytest.raises(ValueError, match="fp8_e5m2"):
        cfg.check_nsa_kv_cache_dtype("fp8_e5m2")


@pytest.mark.parametrize("cap", [MI300, MI355])
@pytest.mark.parametrize(
    "prefill,decode",
    [
        (p, d)
        for p, d in itertools.product(NSA_BACKENDS, repeat=2)
        if (p, d) != ("tilelang", "tilelang")
    ],
)
def test_hip_fp8_needs_tilelang_for_both_phases(cfg, cap, prefill, decode):
    with pytest.raises(ValueError) as err:
        validate(cfg, "fp8_e4m3", prefill, decode, hip=True, cap=cap)
    msg = str(err.value)
    assert msg.startswith("On ROCm, --kv-cache-dtype fp8_e4m3")
    assert BOTH_FLAGS in msg
    assert f"got --nsa-prefill-backend {prefill} --nsa-decode-backend {decode}" in msg
    assert "--kv-cache-dtype bfloat16" in msg


@pytest.mark.parametrize("cap", [MI250, (11, 0), (12, 0), (9, 6)])
def test_hip_fp8_on_a_device_without_the_fp8_kernels_is_rejected(cfg, cap):
    with pytest.raises(ValueError) as err:
        validate(cfg, "fp8_e4m3", "tilelang", "tilelang", hip=True, cap=cap)
    msg = str(err.value)
    assert "needs gfx942 (MI300) or gfx950 (MI355)" in msg
    assert f"reports capability {cap[0]}.{cap[1]}" in msg
    assert "--kv-cache-dtype bfloat16" in msg


@pytest.mark.parametrize("cap", [SM90, SM100])
@pytest.mark.parametrize(
    "prefill,decode",
    [("tilelang", b) for b in NSA_BACKENDS if b != "tilelang"]
    + [(b, "tilelang") for b in NSA_BACKENDS if b != "tilelang"],
)
def test_cuda_fp8_mixed_tilelang_is_rejected(cfg, cap, prefill, decode):
    with pytest.raises(ValueError) as err:
        validate(cfg, "fp8_e4m3", prefill, decode, hip=False, cap=cap)
    msg = str(err.value)
    assert "needs the same backend for both NSA phases" in msg
    assert f"got --nsa-prefill-backend {prefill} --nsa-decode-backend {decode}" in msg
    assert BOTH_FLAGS in msg
    assert "--nsa-prefill-backend flashmla_auto --nsa-decode-backend flashmla_kv" in msg
    assert "--kv-cache-dtype bfloat16" in msg


@pytest.mark.parametrize("cap", [SM80, SM89, (7, 5), SM100, (12, 0)])
def test_cuda_fp8_tilelang_other_than_hopper_is_rejected(cfg, cap):
    # Tuned and tested on sm_90 only; sm_120 has ~99 KiB of shared memory per block, not 227.
    with pytest.raises(ValueError) as err:
        validate(cfg, "fp8_e4m3", "tilelang", "tilelang", hip=False, cap=cap)
    msg = str(err.value)
    assert f"runs on sm_90 (Hopper) only; this device is sm_{cap[0]}{cap[1]}" in msg
    assert BOTH_FLAGS in msg
    assert "--kv-cache-dtype bfloat16" in msg
    assert "--nsa-prefill-backend flashmla_auto --nsa-decode-backend flashmla_kv" in msg


# --- ROCm defaults ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given,expected",
    [
        ((None, None), ("tilelang", "tilelang")),
        (("tilelang", None), ("tilelang", "tilelang")),
        ((None, "aiter"), ("tilelang", "aiter")),
        (("flashmla_sparse", None), ("flashmla_sparse", "tilelang")),
        (("aiter", "tilelang"), ("aiter", "tilelang")),
    ],
)
def test_hip_defaults_fill_only_unset_phases_with_tilelang(cfg, given, expected):
    assert cfg.default_nsa_backends_for_hip(*given) == expected


def test_hip_defaults_then_validation_accept_fp8(cfg):
    prefill, decode = cfg.default_nsa_backends_for_hip(None, None)
    validate(cfg, "fp8_e4m3", prefill, decode, hip=True, cap=MI300)
