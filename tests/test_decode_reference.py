"""The float64 decode reference checked against an independent dense formulation."""

from __future__ import annotations

import math

import pytest
import torch

from scripts.kerneltools.reference import (
    combine_partials,
    quantize_kv,
    quantize_q_per_head,
    sparse_mla_reference,
    split_partials,
)

D_V, D_TAIL = 64, 16  # small widths: the reference is shape-generic


def _dense_reference(q, kv, indices, sm_scale, d_v):
    """Masked dense attention over all slots via SDPA (a different code path)."""
    num_tokens = q.shape[0]
    mask = torch.zeros(num_tokens, kv.shape[0], dtype=torch.bool)
    for t in range(num_tokens):
        ok = (indices[t] >= 0) & (indices[t] < kv.shape[0])
        mask[t, indices[t][ok].long()] = True
    out = torch.zeros(num_tokens, q.shape[1], d_v, dtype=torch.float64)
    for t in range(num_tokens):
        if mask[t].any():
            out[t] = torch.nn.functional.scaled_dot_product_attention(
                q[t : t + 1].transpose(0, 1),  # [H, 1, D]
                kv.unsqueeze(0),
                kv[:, :d_v].unsqueeze(0),
                attn_mask=mask[t].view(1, 1, -1),
                scale=sm_scale,
            )[:, 0]
    return out


def _case(num_tokens=5, num_heads=4, num_slots=300, topk=64, seed=0, hole_rate=0.3):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(num_tokens, num_heads, D_V + D_TAIL, generator=g, dtype=torch.float64)
    kv = torch.randn(num_slots, D_V + D_TAIL, generator=g, dtype=torch.float64)
    indices = torch.stack(
        [torch.randperm(num_slots, generator=g)[:topk] for _ in range(num_tokens)]
    )
    holes = torch.rand(num_tokens, topk, generator=g) < hole_rate
    indices = torch.where(holes, torch.full_like(indices, -1), indices).to(torch.int32)
    return q, kv, indices


@pytest.mark.parametrize("num_splits", [1, 2, 8, 32])
def test_split_combine_equals_dense(num_splits):
    q, kv, indices = _case(seed=num_splits)
    got = sparse_mla_reference(q, kv, indices, 0.2, D_V, num_splits)
    want = _dense_reference(q, kv, indices, 0.2, D_V)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_empty_token_and_empty_split():
    q, kv, indices = _case(num_tokens=3, topk=64)
    indices[0] = -1  # no valid index: zeros
    indices[1, :32] = -1  # split 0 empty, split 1 not
    indices[2, 5] = kv.shape[0] + 7  # out of range: no token
    out, lse = split_partials(q, kv, indices, 0.3, D_V, num_splits=2)
    assert torch.isneginf(lse[0]).all() and torch.isneginf(lse[1, 0]).all()
    combined = combine_partials(out, lse)
    assert torch.equal(combined[0], torch.zeros_like(combined[0]))
    assert torch.isfinite(combined).all()
    torch.testing.assert_close(combined[1], out[1, 1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        combined, _dense_reference(q, kv, indices, 0.3, D_V), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e4m3fnuz])
def test_quantizers(dtype):
    fmax = 448.0 if dtype == torch.float8_e4m3fn else 240.0
    g = torch.Generator().manual_seed(7)
    q = torch.randn(6, 3, 80, generator=g) * 50
    deq = quantize_q_per_head(q, dtype)
    amax = q.abs().amax(-1, keepdim=True).double()
    # e4m3 keeps 3 mantissa bits: half an ulp is 2^-4 relative, plus subnormal absolute error.
    assert ((deq - q.double()).abs() <= amax * 2.0**-4 / 1 + amax / fmax * 2.0**-9).all()
    # the largest element of each row maps exactly onto the format's max
    assert torch.allclose(deq.abs().amax(-1, keepdim=True), amax, rtol=1e-6)
    kv8 = quantize_kv(torch.tensor([1e6, -1e6, 3.0]), kv_scale=0.5, dtype=dtype)
    assert kv8.float().tolist() == [fmax, -fmax, 6.0]
    assert math.isfinite(kv8.float().sum().item())
