"""DeepSeek-V3.2 decode shapes and the GPU decode test matrix, shared by the tests, the
benchmark and `prebuild` (which compiles exactly these kernels ahead of time so device minutes
go to running them)."""

from __future__ import annotations

import itertools

D_V, D_TAIL, TOPK = 512, 64, 2048
NUM_SLOTS = 8192
SM_SCALE = 0.1352  # ~ DeepSeek-V3.2's (192^-0.5 * yarn mscale^2)

TOKENS = (1, 3, 64, 65, 257)
HEADS = (8, 16, 32, 128)
PATTERNS = ("all", "prefix700", "one", "none", "holes")
KV_SCALES = (1.0, 0.5, 2.0)

# Every (T, H) pair runs every pattern once; the scale and the NaN-in-slot-0 poison rotate
# through the cases so that each value meets every T and H without a full cross product.
CASES = [
    (t, h, p, KV_SCALES[i % len(KV_SCALES)], i % 2 == 0)
    for i, (t, h, p) in enumerate(itertools.product(TOKENS, HEADS, PATTERNS))
]
# Extra head counts: 1 and a non-power of two (GQA-less ranks of odd TP layouts).
EXTRA_HEADS = (1, 20, 64)

# bench_decode's matrix (also pre-built by prebuild).
BENCH_TOKENS = (1, 8, 32, 64, 128)
BENCH_HEADS = (16, 128)


def deepseek_shape(**overrides) -> dict:
    """The DeepSeek-V3.2 keyword arguments of select_decode_fp8_config and
    select_pipelined_config (dims, softmax scale, e4m3fn KV), with `overrides` applied."""
    import torch

    args = dict(d_v=D_V, d_tail=D_TAIL, topk=TOPK, sm_scale=SM_SCALE, kv_dtype=torch.float8_e4m3fn)
    args.update(overrides)
    return args


def decode_config(fp8k, *, arch: str, cu_count: int, num_tokens: int, num_heads: int, **overrides):
    """The dispatcher's config for this matrix's shapes (DeepSeek-V3.2 dims, e4m3fn KV);
    `overrides` are select_decode_fp8_config's mma_dtype / blocks_per_cu."""
    return fp8k.select_decode_fp8_config(
        arch=arch, cu_count=cu_count, num_tokens=num_tokens, num_heads=num_heads,
        **deepseek_shape(**overrides),
    )  # fmt: skip


# The pipelined candidate's GPU tests beyond the matrix above: (T, H, GEMM flavour, overrides
# of select_pipelined_config). Several tiles per workgroup at small T (so -1 tiles are skipped
# inside a running pipeline), three stages, and one tile per workgroup (no pipeline at all).
PIPELINED_OVERRIDE_CASES = tuple(
    (t, 16, mma, overrides)
    for mma in ("bf16", "fp8")
    for t, overrides in (
        (3, (("inner_iter", 4),)),
        (8, (("inner_iter", 8), ("num_stages", 3))),
        (64, (("inner_iter", 1),)),
    )
)
