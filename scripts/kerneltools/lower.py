"""Lower the FP8 sparse-MLA decode kernel for a target without a GPU and report facts about it.

    python -m scripts.kerneltools.lower --tree build/sglang --arch gfx942 --heads 1 8 16 \
        --d-tail 64 0 [--source-dir DIR]

One JSON object per configuration on stdout: arch, heads, d_tail, fp8 format, h_per_block,
ok / error, whether the device code uses an FP8 matrix instruction (MFMA on AMD, mma on
NVIDIA), the dynamic shared memory (LDS) it asks for, and whether every cross-warp reduction
through shared memory is followed by a barrier (the tilelang 0.1.9 race, see patch 0005).
CUDA lowering works with the tilelang of the CPU venv (0.1.9); HIP source generation needs
tilelang 0.1.15 (`make env-hip`), so the tests run this script in that venv.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FP8_INSTRUCTION = {
    "hip": re.compile(r"__builtin_amdgcn_mfma_\w*(fp8|f8)\w*"),
    "cuda": re.compile(r"mma_sync<tl::DataType::kFloat8_e4m3"),
}
SHARED_REDUCE = re.compile(r"AllReduce<.*>::run\(.*buf_dyn_shmem")


def barrier_after_shared_reductions(source: str) -> bool:
    """Every AllReduce that exchanges through shared memory is followed, before any other
    shared-memory access, by a block-wide barrier."""
    lines = source.splitlines()
    for i, line in enumerate(lines):
        if not SHARED_REDUCE.search(line):
            continue
        for nxt in lines[i + 1 :]:
            if "__syncthreads" in nxt:
                break
            if "AllReduce<" in nxt and "buf_dyn_shmem" not in nxt:
                continue  # the in-warp tail of the same reduction (shuffles only)
            if "buf_dyn_shmem" in nxt or "_shared" in nxt:
                return False
    return True


def lower_one(tree: Path, arch: str, heads: int, d_tail: int, topk: int, mma: str | None):
    import tilelang
    import torch
    from tilelang import tvm

    from .kernels import load_fp8_kernel_module

    fp8k = load_fp8_kernel_module(tree)
    kv_dtype = torch.float8_e4m3fnuz if arch == "gfx942" else torch.float8_e4m3fn
    cfg = fp8k.select_decode_fp8_config(
        arch=arch,
        cu_count=304,
        num_tokens=1,
        num_heads=heads,
        d_v=512,
        d_tail=d_tail,
        topk=topk,
        sm_scale=0.1352,
        kv_dtype=kv_dtype,
        mma_dtype=mma,
    )
    result = dict(
        mma_dtype=cfg.mma_dtype,
        arch=arch,
        heads=heads,
        d_tail=d_tail,
        fp8=cfg.fp8.name,
        h_per_block=cfg.h_per_block,
        block_I=cfg.block_I,
        estimated_shared_bytes=cfg.shared_bytes(),
    )
    if arch.startswith("gfx"):
        kind, target = "hip", tvm.target.Target({"kind": "hip", "mcpu": arch})
    else:
        kind, target = "cuda", tvm.target.Target(fp8k.compile_target(arch))
    start = time.time()
    program = fp8k.sparse_mla_decode_partial_fp8_program(cfg)
    with tvm.transform.PassContext(config=fp8k._PASS_CONFIGS), target:
        artifact = tilelang.lower(program, target=target)
    source = artifact.kernel_source
    shared = max(
        int(f.attrs.get("dyn_shared_memory_buf", 0)) if f.attrs else 0
        for f in artifact.device_mod.functions.values()
    )
    result.update(
        ok=True,
        seconds=round(time.time() - start, 2),
        fp8_matrix_instruction=bool(FP8_INSTRUCTION[kind].search(source)),
        shared_bytes=shared,
        barrier_after_shared_reductions=barrier_after_shared_reductions(source),
    )
    return result, source


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tree", required=True)
    ap.add_argument("--arch", required=True, help="gfx942, gfx950 or sm_90")
    ap.add_argument("--heads", type=int, nargs="+", default=[1, 8, 16, 32, 64, 128])
    ap.add_argument("--d-tail", type=int, nargs="+", default=[64, 0])
    ap.add_argument("--topk", type=int, default=2048)
    ap.add_argument(
        "--mma",
        choices=["auto", "fp8", "bf16"],
        default="auto",
        help="GEMM type (auto: the arch table's choice)",
    )
    ap.add_argument("--source-dir", help="also write each kernel's device source here")
    args = ap.parse_args()
    failures = 0
    for heads in args.heads:
        for d_tail in args.d_tail:
            try:
                mma = None if args.mma == "auto" else args.mma
                result, source = lower_one(
                    Path(args.tree), args.arch, heads, d_tail, args.topk, mma
                )
                if args.source_dir:
                    out = Path(args.source_dir) / f"{args.arch}_H{heads}_T{d_tail}.txt"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(source)
            except Exception as exc:  # report and go on: one line per configuration
                failures += 1
                result = dict(
                    arch=args.arch,
                    heads=heads,
                    d_tail=d_tail,
                    ok=False,
                    error=f"{type(exc).__name__}: {str(exc)[-600:]}",
                )
            print(json.dumps(result), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
