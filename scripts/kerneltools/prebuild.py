"""Compile the FP8 decode kernels (and their combiners) into a TileLang cache ahead of time.

The GPU host then loads them in ~0.1 s each instead of compiling: run this where nvcc is
(e.g. the CPU development box), point TILELANG_CACHE_DIR at a folder, send that folder along.

    TILELANG_CACHE_DIR=.gpu/tlcache python -m scripts.kerneltools.prebuild --arch sm_90 --cu 132

The kernel set is the GPU test matrix plus the benchmark matrix (both in shapes.py), each
resolved through the same config selection the dispatcher uses; `--pipelined` adds the pipelined
candidate (fp8_decode_pipelined) for the same shapes plus its own GPU tests' overrides.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def wanted_shapes() -> set[tuple[int, int]]:
    """(num_tokens, num_heads) pairs the tests and the benchmark will launch."""
    from .shapes import BENCH_HEADS, BENCH_TOKENS, CASES, EXTRA_HEADS

    shapes = {(c[0], c[1]) for c in CASES}
    shapes |= {(33, h) for h in EXTRA_HEADS} | {(8, 16), (4, 16)}
    shapes |= {(t, 16) for t in (5, 8, 32, 64)}
    shapes |= {(t, h) for t in BENCH_TOKENS for h in BENCH_HEADS}
    return shapes


def _build_bf16(job):
    """v0.5.9's bf16 partial + combine from `tree` (benchmark baseline, race reproducer)."""
    _, tree, arch, num_heads, module_name = job
    from .kernels import compile_bf16_decode, load_fp8_kernel_module
    from .loader import install_stub, load_tree_module
    from .shapes import D_TAIL, D_V, SM_SCALE, TOPK

    install_stub("sglang.srt.layers.quantization.fp8_kernel", is_fp8_fnuz=lambda: False)
    install_stub("sglang.srt.utils", is_hip=lambda: False, is_gfx95_supported=lambda: False)
    fp8k = load_fp8_kernel_module(Path(tree))
    tk = load_tree_module(Path(tree), "srt/layers/attention/nsa/tilelang_kernel.py", module_name)
    start = time.time()
    try:
        compile_bf16_decode(tk, num_heads, D_V, D_TAIL, TOPK, SM_SCALE, fp8k.compile_target(arch))
    except Exception as exc:
        return (num_heads, "bf16", module_name, f"FAILED: {str(exc)[-800:]}")
    return (num_heads, "bf16", module_name, f"{time.time() - start:.1f}s")


def pipelined_jobs(tree: str, arch: str, cu: int, flavours: list[str]) -> list[tuple]:
    """One job per distinct pipelined config: the shapes above in each GEMM flavour, plus the
    explicit overrides its GPU tests use (shapes.PIPELINED_OVERRIDE_CASES)."""

    from . import fp8_decode_pipelined as fdp
    from .shapes import PIPELINED_OVERRIDE_CASES, deepseek_shape

    wanted = [(t, h, None if f == "auto" else f, ()) for f in flavours for t, h in wanted_shapes()]
    wanted += list(PIPELINED_OVERRIDE_CASES)
    jobs = {}
    for t, h, mma, overrides in sorted(wanted, key=str):
        cfg = fdp.select_pipelined_config(
            arch=arch, cu_count=cu, num_tokens=t, num_heads=h,
            **deepseek_shape(mma_dtype=mma, **dict(overrides)),
        )  # fmt: skip
        jobs.setdefault(cfg, ("pipelined", tree, arch, cfg))
    return list(jobs.values())


def _build_pipelined(job):
    _, tree, arch, cfg = job
    from . import fp8_decode_pipelined as fdp
    from .kernels import load_tilelang_kernel_module

    tk = load_tilelang_kernel_module(Path(tree))
    target = fdp.compile_target(arch)
    start = time.time()
    try:
        fdp.build_pipelined_decode_partial(cfg, target)
        if cfg.num_splits > 1:
            tk._fp8_combine_kernel(cfg.num_heads, cfg.d_v, cfg.num_splits, cfg.block_I, target)
    except Exception as exc:  # TVM errors do not pickle across the process pool
        return (cfg.num_heads, cfg.inner_iter, cfg.num_splits, f"FAILED: {str(exc)[-800:]}")
    label = f"pipelined {cfg.mma_dtype} h/wg={cfg.h_per_block} stages={cfg.num_stages}"
    return (cfg.num_heads, cfg.inner_iter, cfg.num_splits, f"{time.time() - start:.1f}s {label}")


def _build(job):
    if job[0] == "bf16":
        return _build_bf16(job)
    if job[0] == "pipelined":
        return _build_pipelined(job)
    tree, arch, cu, num_tokens, num_heads, mma, blocks_per_cu = job
    from .kernels import load_tilelang_kernel_module
    from .shapes import decode_config

    tk = load_tilelang_kernel_module(Path(tree))
    fp8k = sys.modules["sglang.srt.layers.attention.nsa.tilelang_fp8_kernel"]
    cfg = decode_config(
        fp8k,
        arch=arch,
        cu_count=cu,
        num_tokens=num_tokens,
        num_heads=num_heads,
        mma_dtype=mma,
        blocks_per_cu=blocks_per_cu,
    )
    target = fp8k.compile_target(arch)
    start = time.time()
    try:
        fp8k.build_sparse_mla_decode_partial_fp8(cfg, target)
        if cfg.num_splits > 1:
            tk._fp8_combine_kernel(num_heads, cfg.d_v, cfg.num_splits, cfg.block_I, target)
    except Exception as exc:  # TVM errors do not pickle across the process pool
        return (num_heads, cfg.inner_iter, cfg.num_splits, f"FAILED: {str(exc)[-800:]}")
    return (num_heads, cfg.inner_iter, cfg.num_splits, f"{time.time() - start:.1f}s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--cu", type=int, default=132, help="SM/CU count of the target card")
    ap.add_argument("--tree", default=os.environ.get("SGLANG_TREE", str(REPO / "build/sglang")))
    ap.add_argument("--base-tree", help="unpatched v0.5.9 tree: also build its bf16 kernels")
    ap.add_argument(
        "--variants",
        nargs="*",
        default=["default", "fp8", "bf16"],
        help="GEMM flavour[:blocks_per_cu] of the FP8 kernel to build: default, fp8, "
        "bf16, bf16:2 ... (tests use default + fp8, the benchmark bf16 + fp8)",
    )
    ap.add_argument(
        "--pipelined",
        nargs="*",
        default=["bf16", "fp8"],
        help="GEMM flavours of the pipelined candidate to build (auto, bf16, fp8; none: skip)",
    )
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--list", action="store_true", help="print the kernel set, build nothing")
    args = ap.parse_args()
    if not args.list and not os.environ.get("TILELANG_CACHE_DIR"):
        print("set TILELANG_CACHE_DIR to the cache folder to fill", file=sys.stderr)
        return 2
    # One job per distinct kernel: shapes that resolve to the same config share a compile.
    from .kernels import load_fp8_kernel_module
    from .shapes import decode_config

    fp8k = load_fp8_kernel_module(Path(args.tree))
    by_config = {}
    for variant in args.variants:
        mma, _, bpc = variant.partition(":")
        mma = None if mma == "default" else mma
        bpc = int(bpc) if bpc else None
        for t, h in sorted(wanted_shapes()):
            cfg = decode_config(
                fp8k,
                arch=args.arch,
                cu_count=args.cu,
                num_tokens=t,
                num_heads=h,
                mma_dtype=mma,
                blocks_per_cu=bpc,
            )
            by_config.setdefault(cfg, (args.tree, args.arch, args.cu, t, h, mma, bpc))
    jobs = list(by_config.values())
    if args.pipelined:
        jobs += pipelined_jobs(args.tree, args.arch, args.cu, args.pipelined)
    from .shapes import BENCH_HEADS

    jobs += [
        ("bf16", args.tree, args.arch, h, "tk_patched") for h in sorted(set(BENCH_HEADS) | {16})
    ]
    if args.base_tree:
        jobs.append(("bf16", args.base_tree, args.arch, 16, "tk_base"))
    if args.list:
        for job in jobs:
            print(job[-1] if job[0] == "pipelined" else job[3:] if job[0] != "bf16" else job)
        print(f"{len(jobs)} kernels")
        return 0
    print(
        f"building {len(jobs)} kernels on {args.jobs} processes "
        f"into {os.environ['TILELANG_CACHE_DIR']}"
    )
    done = failed = 0
    with ProcessPoolExecutor(args.jobs) as pool:
        for heads, inner, splits, secs in pool.map(_build, jobs):
            done += 1
            failed += "FAILED" in str(secs)
            print(
                f"[{done}/{len(jobs)}] H={heads} inner_iter={inner} G={splits} {secs}",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
