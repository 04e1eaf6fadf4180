"""Padding safety of the 0.5.23 series' DSA readers (CPU).

- Triton sparse-MLA decode and prefill: an index >= the cache's row count is masked like -1
  (unpatched 0.5.23 reads past the cache: here the rows after it hold NaN, so the output does).
- TileLang wrapper: an empty batch returns an empty output and launches nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sparse_mla_reference import FN, random_fp8_cache, rel_l2, sparse_mla_reference
from v0523_modules import (
    cpu_launch_facts,
    load_tilelang_kernel,
)

from scripts.kerneltools.upstream_triton import decode_call

D_V, D_TAIL, SM_SCALE = 128, 64, 0.06  # NUM_GROUPS = 1: see test_v0523_kv_scale.py


def _cache_with_nan_beyond(n: int, fmt: torch.dtype, g: torch.Generator) -> torch.Tensor:
    """An n-row FP8 cache that is a view of a larger allocation whose extra rows are NaN."""
    alloc = torch.full((n + 32, 1, D_V + D_TAIL), float("nan")).to(fmt)
    alloc[:n] = random_fp8_cache(n, D_V + D_TAIL, fmt, g)
    return alloc[:n]


def _indices_past_the_end(t: int, topk: int, n: int, g: torch.Generator) -> torch.Tensor:
    idx = torch.stack([torch.randperm(n, generator=g)[:topk] for _ in range(t)]).to(torch.int32)
    idx[:, 1::4] = n + torch.randint(0, 32, (t, topk // 4), generator=g, dtype=torch.int32)
    idx[:, 2::8] = -1
    return idx


@pytest.mark.parametrize("kv_splits", [1, 4], ids=["fused", "split_k"])
def test_triton_decode_masks_indices_past_the_cache(sparse_mla, kv_splits):
    _, dec, fmt = sparse_mla
    g = torch.Generator().manual_seed(60 + kv_splits)
    kv = _cache_with_nan_beyond(96, fmt, g)
    q = torch.randn(3, 16, D_V + D_TAIL, generator=g).to(torch.bfloat16)
    idx = _indices_past_the_end(3, 64, 96, g)
    out = decode_call(
        dec,
        q,
        kv,
        idx[:, None],
        SM_SCALE,
        D_V,
        kv_splits=kv_splits,
        workspace=[],
    )[0]
    assert out.isfinite().all(), "an index past the cache was read"
    assert rel_l2(out, sparse_mla_reference(q, kv, idx, SM_SCALE, D_V)) < 0.1


@pytest.mark.parametrize("num_cu", [1, 64], ids=["single_pass", "split_k"])
def test_triton_prefill_masks_indices_past_the_cache(sparse_mla, num_cu):
    mla, dec, fmt = sparse_mla
    cpu_launch_facts(mla, dec, num_cu=num_cu)
    g = torch.Generator().manual_seed(70 + num_cu)
    kv = _cache_with_nan_beyond(96, fmt, g)
    q = torch.randn(4, 16, D_V + D_TAIL, generator=g).to(torch.bfloat16)
    idx = _indices_past_the_end(4, 64, 96, g)
    out = mla.triton_sparse_mla_fwd(q[..., :D_V], q[..., D_V:], kv, idx[:, None], SM_SCALE, D_V)[0]
    cpu_launch_facts(mla, dec)
    assert out.isfinite().all(), "an index past the cache was read"
    assert rel_l2(out, sparse_mla_reference(q, kv, idx, SM_SCALE, D_V)) < 0.1


def test_tilelang_empty_batch_launches_nothing(tree_v0_5_23: Path):
    mod = load_tilelang_kernel(tree_v0_5_23)

    def no_launch(*args, **kwargs):
        raise AssertionError("a kernel was built/launched for an empty batch")

    mod.sparse_mla_fwd_decode_partial_fp8 = no_launch
    mod.sparse_mla_fwd_decode_combine = no_launch
    q = torch.zeros(0, 16, 576, dtype=torch.bfloat16)
    kv = torch.zeros(8, 1, 576).to(FN)
    idx = torch.zeros(0, 1, 64, dtype=torch.int32)
    out = mod.tilelang_sparse_fwd(q, kv, idx, SM_SCALE, 512)
    assert out.shape == (1, 0, 16, 512) and out.dtype == torch.bfloat16
