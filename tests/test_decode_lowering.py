"""CPU checks of the FP8 decode kernel: config selection and input validation.

The kernels lowered for sm_90 / gfx942 / gfx950: tests/test_kernel_lowering.py.
"""

from __future__ import annotations

import pytest
import torch

from scripts.kerneltools.kernels import load_fp8_kernel_module, load_tilelang_kernel_module
from scripts.kerneltools.shapes import deepseek_shape

FN, FNUZ = torch.float8_e4m3fn, torch.float8_e4m3fnuz


@pytest.fixture(scope="module")
def fp8k(sglang_tree):
    return load_fp8_kernel_module(sglang_tree)


def _select(fp8k, **overrides):
    args = dict(arch="sm_90", cu_count=132, num_tokens=1, num_heads=16)
    args.update(overrides)
    return fp8k.select_decode_fp8_config(**deepseek_shape(**args))


@pytest.mark.parametrize(
    "arch, heads, want_hpb, want_mma",
    [
        ("gfx942", 8, 16, "fp8"),
        ("gfx942", 128, 32, "fp8"),
        ("gfx950", 128, 64, "fp8"),
        ("sm_90", 20, 32, "bf16"),
        ("sm_90", 128, 64, "fp8"),
        ("sm_100", 1, 16, "bf16"),
    ],
)
def test_head_tiling_follows_arch_table(fp8k, arch, heads, want_hpb, want_mma):
    cfg = _select(fp8k, arch=arch, num_heads=heads, kv_dtype=FNUZ if arch == "gfx942" else FN)
    assert cfg.h_per_block == want_hpb
    assert cfg.mma_dtype == want_mma
    assert cfg.shared_bytes() <= fp8k.arch_tuning(arch).max_shared_bytes


def test_split_count_fills_the_device(fp8k):
    one = _select(fp8k, num_tokens=1)
    many = _select(fp8k, num_tokens=64)
    huge = _select(fp8k, num_tokens=16384)
    assert (one.inner_iter, one.num_splits) == (1, 32)  # 32 workgroups: split as far as possible
    assert many.num_splits < one.num_splits and 64 * many.num_splits >= 132 * 2
    assert huge.num_splits == 1  # prefill-sized T: one split, no combine
    assert fp8k.tokens_per_launch(huge) * huge.num_heads * 512 * 2 <= fp8k.MAX_PARTIAL_BYTES


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(d_v=500), "d_v"),
        (dict(d_tail=48), "d_tail"),
        (dict(topk=2000), "multiple of block_I"),
        (dict(num_heads=0), "num_heads"),
        (dict(sm_scale=float("nan")), "sm_scale"),
        (dict(arch="sm_80"), "sm_90"),
        (dict(arch="gfx90a"), "bfloat16"),
        (dict(kv_dtype=torch.float8_e5m2), "fp8_e4m3"),
    ],
)
def test_unsupported_shapes_fail_before_jit(fp8k, overrides, message):
    with pytest.raises(ValueError, match=message):
        _select(fp8k, **overrides)


def test_lds_budget_is_enforced(fp8k):
    cfg = fp8k.DecodeFP8Config(64, 512, 64, 2048, 0.1, fp8k.FP8_E4M3FNUZ, 64, 1, 64, 256)
    with pytest.raises(ValueError, match="shared memory"):
        fp8k.validate_decode_fp8_config(cfg, max_shared_bytes=64 * 1024)


def test_p_scale_cannot_overflow(fp8k):
    for fmt in (fp8k.FP8_E4M3FN, fp8k.FP8_E4M3FNUZ):
        # P <= 1, so P * p_scale <= p_scale must stay below the format's max, exactly.
        assert fmt.p_scale < fmt.max_finite
        assert fmt.p_scale == 2 ** int(torch.log2(torch.tensor(fmt.p_scale)).item())
        assert torch.tensor(fmt.p_scale).to(fmt.torch_dtype).float().item() == fmt.p_scale


@pytest.fixture(scope="module")
def tk(sglang_tree):
    return load_tilelang_kernel_module(sglang_tree)


class TestDispatchValidation:
    """tilelang_sparse_fwd's FP8 entry rejects bad input before touching a device."""

    def _inputs(self, tokens=2, heads=16, q_dtype=torch.bfloat16, kv_dtype=FN, width=576):
        q = torch.zeros(tokens, heads, width, dtype=q_dtype)
        kv = torch.zeros(32, 1, width).to(kv_dtype)
        idx = torch.full((tokens, 1, 2048), -1, dtype=torch.int32)
        return q, kv, idx

    def test_zero_tokens_launches_nothing(self, tk):
        q, kv, idx = self._inputs(tokens=0)
        out = tk.tilelang_sparse_fwd(q, kv, idx, 0.1, 512)  # CPU tensors: would fail if launched
        assert out.shape == (1, 0, 16, 512) and out.dtype == torch.bfloat16

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            (dict(q_dtype=torch.float16), "bfloat16"),
            (dict(width=600), "shape mismatch"),
        ],
    )
    def test_bad_inputs(self, tk, kwargs, message):
        q, kv, idx = self._inputs(**kwargs)
        if "width" in kwargs:
            kv = torch.zeros(32, 1, 576).to(FN)
        with pytest.raises(ValueError, match=message):
            tk.tilelang_sparse_fwd(q, kv, idx, 0.1, 512)

    def test_int64_indices_rejected(self, tk):
        q, kv, idx = self._inputs()
        with pytest.raises(ValueError, match="int32"):
            tk.tilelang_sparse_fwd(q, kv, idx.long(), 0.1, 512)

    def test_scale_must_be_one_element(self, tk):
        q, kv, idx = self._inputs(tokens=0)
        with pytest.raises(ValueError, match="one-element"):
            tk._check_fp8_kv_scale(torch.ones(2), "cpu")
