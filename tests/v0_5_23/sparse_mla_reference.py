"""Float64 reference of absorbed sparse MLA over a raw FP8 KV cache, and input builders.

Independent of the kernels: dequantise the cache (FP8 value x k_scale), gather the selected rows,
softmax(q . k * sm_scale) over the valid ones (index in [0, N)), P . V with V = the first d_v
columns of the same row. A token with no valid index gets a zero output.
"""

from __future__ import annotations

import torch

FN, FNUZ = torch.float8_e4m3fn, torch.float8_e4m3fnuz
FP8_MAX = {torch.float8_e4m3fn: 448.0, torch.float8_e4m3fnuz: 240.0}


def sparse_mla_reference(
    q: torch.Tensor,  # [T, H, D] any float dtype (the values the kernel is given)
    kv: torch.Tensor,  # [N, 1, D] fp8 or bf16
    indices: torch.Tensor,  # [T, topk] int
    sm_scale: float,
    d_v: int,
    k_scale: float = 1.0,
) -> torch.Tensor:
    qd = q.double()
    kvd = kv[:, 0].double() * k_scale
    n = kvd.shape[0]
    valid = (indices >= 0) & (indices < n)
    rows = kvd[indices.clamp(0, n - 1).long()]  # [T, topk, D]
    logits = torch.einsum("thd,tkd->thk", qd, rows) * sm_scale
    logits = logits.masked_fill(~valid[:, None, :], float("-inf"))
    p = torch.softmax(logits, dim=-1)
    p = torch.nan_to_num(p, nan=0.0)  # all-invalid token: zero output
    return torch.einsum("thk,tkd->thd", p, rows[..., :d_v])


def rel_l2(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double(), want.double()
    return float((got - want).norm() / want.norm().clamp_min(1e-30))


def random_fp8_cache(n: int, d: int, fmt: torch.dtype, g: torch.Generator) -> torch.Tensor:
    """[n, 1, d] FP8 values as the store writes them (|x| well inside the range)."""
    x = torch.randn(n, 1, d, generator=g) * 4
    return x.clamp(-FP8_MAX[fmt], FP8_MAX[fmt]).to(fmt)


def random_indices(t: int, topk: int, n: int, g: torch.Generator, n_valid=None) -> torch.Tensor:
    """[t, topk] int32 distinct slots in [0, n); the last topk - n_valid of each row are -1."""
    idx = torch.stack([torch.randperm(n, generator=g)[:topk] for _ in range(t)]).to(torch.int32)
    if n_valid is not None:
        idx[:, n_valid:] = -1
    return idx
