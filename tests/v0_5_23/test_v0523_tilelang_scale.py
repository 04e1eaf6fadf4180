"""The TileLang DSA reader of the 0.5.23 series multiplies the raw FP8 cache's k_scale back.

`tilelang_sparse_fwd` folds k_scale into Q (saturated, in the cache's FP8 type) and scales the
output, so the TileLang kernels themselves stay scale-free. The kernels cannot run on a CPU: the
partial and combine kernel factories are replaced by a float64 torch stand-in that computes exact
attention from exactly the (FP8) tensors the wrapper hands them, so what is tested is the
wrapper's scale algebra; the kernels' own numerics are the GPU tests' job. Fails on unpatched
0.5.23 (no k_scale argument: the scale was ignored).
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch
from sparse_mla_reference import (
    FN,
    FNUZ,
    random_fp8_cache,
    random_indices,
    rel_l2,
    sparse_mla_reference,
)
from v0523_modules import load_tilelang_kernel

D_V, D_TAIL, H, SM_SCALE = 512, 64, 16, 0.04


@pytest.fixture(autouse=True)
def _device_zero(monkeypatch):
    # The wrapper asks the tensor's device for its CU count; these CPU tensors have none.
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def _stand_in_kernels(mod: types.ModuleType, seen: dict) -> None:
    def partial_factory(num_heads, d_v, d_tail, topk, *, sm_scale, **_):
        def run(q, kv, idx):
            seen["q_dtype"] = q.dtype
            out = sparse_mla_reference(q[0].double(), kv[0], idx[0, :, 0], sm_scale, d_v)
            return out[None].float(), None

        return run

    def combine_factory(*_, **__):
        return lambda partial_o, partial_lse: partial_o.to(torch.bfloat16)

    mod.sparse_mla_fwd_decode_partial_fp8 = partial_factory
    mod.sparse_mla_fwd_decode_combine = combine_factory


@pytest.mark.parametrize("fmt", [FN, FNUZ], ids=["e4m3fn", "e4m3fnuz"])
@pytest.mark.parametrize("q_fp8", [False, True], ids=["bf16_q", "fp8_q"])
def test_tilelang_reader_multiplies_k_scale_back(tree_v0_5_23: Path, fmt, q_fp8):
    mod = load_tilelang_kernel(tree_v0_5_23, fnuz=fmt == FNUZ)
    seen: dict = {}
    _stand_in_kernels(mod, seen)
    g = torch.Generator().manual_seed(50)
    q = (torch.randn(3, H, D_V + D_TAIL, generator=g) * 2).to(torch.bfloat16)
    if q_fp8:  # the gfx950 fused RoPE+cache writer hands over FP8 Q
        q = q.to(fmt)
    kv = random_fp8_cache(80, D_V + D_TAIL, fmt, g)
    idx = random_indices(3, 64, 80, g)
    k_scale = torch.tensor(0.37)
    out = mod.tilelang_sparse_fwd(q, kv, idx[:, None, :], SM_SCALE, D_V, k_scale=k_scale)[0]
    assert seen["q_dtype"] == fmt
    want = sparse_mla_reference(q.double(), kv, idx, SM_SCALE, D_V, k_scale=0.37)
    # Q's FP8 rounding (about 4% here) separates them; ignoring the scale is off by > 0.5.
    assert rel_l2(out, want) < 0.06


def test_tilelang_reader_saturates_the_folded_q(tree_v0_5_23: Path):
    # k_scale = 4 pushes |q * k_scale| past e4m3fnuz's 240: NaN without the clamp.
    mod = load_tilelang_kernel(tree_v0_5_23, fnuz=True)
    seen: dict = {}
    _stand_in_kernels(mod, seen)
    q = torch.full((1, H, D_V + D_TAIL), 100.0, dtype=torch.bfloat16)
    kv = torch.full((4, 1, D_V + D_TAIL), 0.5).to(FNUZ)
    idx = torch.tensor([[0, 1, 2, 3] + [-1] * 60], dtype=torch.int32)
    out = mod.tilelang_sparse_fwd(q, kv, idx[:, None, :], SM_SCALE, D_V, k_scale=torch.tensor(4.0))
    assert out.isfinite().all()
    assert torch.allclose(out.float(), torch.full_like(out.float(), 2.0))
