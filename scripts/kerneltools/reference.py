"""Float64 reference for sparse MLA decode over an FP8 KV cache (the test oracle).

Independent of the kernels: plain torch in float64 on upcast inputs. It models the kernel's
contract (DESIGN.md §3.6, §9): splits of the top-k list each give a normalised partial output
and a log-sum-exp, a combine step merges them, `-1` / out-of-range indices are no token, and a
token with no valid index yields zeros.
"""

from __future__ import annotations

import math

import torch

FP8_MAX = {torch.float8_e4m3fn: 448.0, torch.float8_e4m3fnuz: 240.0}


def quantize_kv(k: torch.Tensor, kv_scale: float, dtype: torch.dtype) -> torch.Tensor:
    """What the store path writes: saturate(RNE(k / kv_scale)) in the FP8 format."""
    fmax = FP8_MAX[dtype]
    return (k.float() / kv_scale).clamp(-fmax, fmax).to(dtype)


def quantize_q_per_head(q: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Dequantised per-(token, head) FP8 Q, as the kernel forms it: scale = amax / fp8_max."""
    fmax = FP8_MAX[dtype]
    qf = q.float()
    amax = qf.abs().amax(dim=-1, keepdim=True).clamp_min(1e-30)
    q8 = (qf * (fmax / amax)).clamp(-fmax, fmax).to(dtype)
    return q8.double() * (amax.double() / fmax)


def valid_mask(indices: torch.Tensor, num_slots: int) -> torch.Tensor:
    return (indices >= 0) & (indices < num_slots)


def split_partials(
    q: torch.Tensor,
    kv: torch.Tensor,
    indices: torch.Tensor,
    sm_scale: float,
    d_v: int,
    num_splits: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-split normalised outputs [T, G, H, d_v] and natural-log LSE [T, G, H] (-inf = empty).

    q [T, H, D] and kv [N, D] are float64 (already dequantised); indices [T, topk].
    """
    num_tokens, num_heads, _ = q.shape
    topk = indices.shape[-1]
    assert topk % num_splits == 0
    width = topk // num_splits
    valid = valid_mask(indices, kv.shape[0])
    out = torch.zeros(num_tokens, num_splits, num_heads, d_v, dtype=torch.float64, device=q.device)
    lse = torch.full(
        (num_tokens, num_splits, num_heads), -math.inf, dtype=torch.float64, device=q.device
    )
    for t in range(num_tokens):
        for g in range(num_splits):
            cols = slice(g * width, (g + 1) * width)
            ok = valid[t, cols]
            if not bool(ok.any()):
                continue
            rows = kv[indices[t, cols][ok].long()]  # [n, D]
            logits = (q[t] @ rows.T) * sm_scale  # [H, n]
            lse[t, g] = torch.logsumexp(logits, dim=-1)
            out[t, g] = torch.softmax(logits, dim=-1) @ rows[:, :d_v]
    return out, lse


def combine_partials(out: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """Merge splits by their LSE weights; a token-head with only empty splits gets zeros."""
    total = torch.logsumexp(lse, dim=1, keepdim=True)  # [T, 1, H]
    weights = torch.exp(lse - total)
    weights = torch.nan_to_num(weights, nan=0.0)  # all splits empty: -inf - -inf
    return (weights.unsqueeze(-1) * out).sum(dim=1)


def sparse_mla_reference(
    q: torch.Tensor,
    kv: torch.Tensor,
    indices: torch.Tensor,
    sm_scale: float,
    d_v: int,
    num_splits: int = 1,
) -> torch.Tensor:
    """Attention output [T, H, d_v] in float64."""
    return combine_partials(*split_partials(q, kv, indices, sm_scale, d_v, num_splits))
