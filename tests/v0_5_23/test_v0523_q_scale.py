"""Per-head query scaling in 0.5.23's Triton sparse-MLA kernels (CPU, interpreter).

With an FP8 cache the kernels run FP8 dots, so a bf16 query must become FP8. Unpatched 0.5.23
casts it unscaled: a channel beyond the format's max saturates (e4m3fn) or becomes NaN
(e4m3fnuz), and small channels drop to subnormals. The series scales each head's row to the
FP8 range and multiplies the logits back. Both tests fail on unpatched 0.5.23.
"""

from __future__ import annotations

import pytest
import torch
from sparse_mla_reference import (
    random_fp8_cache,
    random_indices,
    rel_l2,
    sparse_mla_reference,
)
from v0523_modules import cpu_launch_facts

from scripts.kerneltools.upstream_triton import decode_call

D_V, D_TAIL, SM_SCALE = 128, 64, 0.06  # NUM_GROUPS = 1: see test_v0523_kv_scale.py


def _outlier_inputs(fmt, seed: int, t: int = 3, n: int = 96, topk: int = 64):
    """q ~ N(0, 1) with one large channel (as absorbed DeepSeek queries have); the cache is
    small in that channel, so the logits stay moderate and every channel matters."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(t, 16, D_V + D_TAIL, generator=g)
    q[:, :, 7] = 900.0 * torch.sign(torch.randn(t, 16, generator=g))
    kv = random_fp8_cache(n, D_V + D_TAIL, fmt, g).float()
    kv[:, :, 7] = torch.randn(n, 1, generator=g) * 0.02
    return q.to(torch.bfloat16), kv.to(fmt), random_indices(t, topk, n, g)


@pytest.mark.parametrize("kv_splits", [1, 4], ids=["fused", "split_k"])
def test_decode_scales_the_query_per_head(sparse_mla, kv_splits):
    _, dec, fmt = sparse_mla
    q, kv, idx = _outlier_inputs(fmt, 80 + kv_splits)
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
    assert out.isfinite().all()
    assert rel_l2(out, sparse_mla_reference(q, kv, idx, SM_SCALE, D_V)) < 0.1


@pytest.mark.parametrize("num_cu", [1, 64], ids=["single_pass", "split_k"])
def test_prefill_scales_the_query_per_head(sparse_mla, num_cu):
    mla, dec, fmt = sparse_mla
    cpu_launch_facts(mla, dec, num_cu=num_cu)
    q, kv, idx = _outlier_inputs(fmt, 90 + num_cu, t=4)
    out = mla.triton_sparse_mla_fwd(q[..., :D_V], q[..., D_V:], kv, idx[:, None], SM_SCALE, D_V)[0]
    cpu_launch_facts(mla, dec)
    assert out.isfinite().all()
    assert rel_l2(out, sparse_mla_reference(q, kv, idx, SM_SCALE, D_V)) < 0.1
