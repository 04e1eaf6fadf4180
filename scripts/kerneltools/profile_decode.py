"""One call of each decode kernel, for a profiler (Nsight Compute) to look at.

    ncu --section SpeedOfLight --section WarpStateStats --section Occupancy \\
        python -m scripts.kerneltools.profile_decode --tokens 32 --heads 16

Runs v0.5.9's bf16 decode partial kernel and the FP8 partial kernel in each GEMM flavour once
(after a warm-up call each) on the benchmark's data; prints nothing of its own but the shapes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tree", default=os.environ.get("SGLANG_TREE", str(REPO / "build/sglang")))
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--mma", nargs="*", default=["bf16", "fp8"], help="GEMM flavours to profile")
    args = ap.parse_args()

    import torch

    from .kernels import compile_bf16_decode, load_tilelang_kernel_module
    from .shapes import D_TAIL, D_V, SM_SCALE, TOPK, decode_config

    tk = load_tilelang_kernel_module(Path(args.tree))
    fp8k = sys.modules["sglang.srt.layers.attention.nsa.tilelang_fp8_kernel"]
    arch, cu = fp8k.device_arch()
    target = fp8k.compile_target(arch)
    t, h, slots = args.tokens, args.heads, 1 << 20
    gen = torch.Generator(device="cuda").manual_seed(0)
    kv = torch.randn(slots, 1, D_V + D_TAIL, device="cuda", generator=gen).bfloat16()
    kv8 = kv.float().to(torch.float8_e4m3fn)
    q = torch.randn(t, h, D_V + D_TAIL, device="cuda", generator=gen).bfloat16()
    idx = torch.randint(0, slots, (1, t, 1, TOPK), device="cuda", dtype=torch.int32, generator=gen)
    scale = torch.ones(1, device="cuda")
    partial, _ = compile_bf16_decode(tk, h, D_V, D_TAIL, TOPK, SM_SCALE, target)
    calls = {"bf16-kernel": lambda: partial(q.unsqueeze(0), kv.unsqueeze(0), idx)}
    for mode in args.mma:
        cfg = decode_config(fp8k, arch=arch, cu_count=cu, num_tokens=t, num_heads=h, mma_dtype=mode)
        kernel = fp8k.build_sparse_mla_decode_partial_fp8(cfg, target)
        calls[f"fp8-{mode}-inner{cfg.inner_iter}"] = lambda k=kernel: k(
            q.unsqueeze(0), kv8.unsqueeze(0), idx, scale
        )
    for name, call in calls.items():
        call()
        torch.cuda.synchronize()
        print(f"profiling {name} T={t} H={h}", flush=True)
        call()
        torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
