"""Lower the pipelined FP8 decode candidate (or patch 0007's kernel) without a GPU; report facts.

    python -m scripts.kerneltools.lower_pipelined --arch sm_90 --tokens 1 128 --heads 16 128 \
        [--mma auto|bf16|fp8] [--regs] [--source-dir DIR]
    python -m scripts.kerneltools.lower_pipelined --kernel series --arch gfx950 --heads 16

One JSON object per distinct kernel configuration on stdout: the config the selection picks for
each (T, H) (inner_iter > 1 included), whether it lowered, the lowered dynamic shared memory
(LDS), and the gather facts from `source_facts`: the width of every KV read, the async copies
and their predicates, the pipeline depth (CUDA) or whether gather loads precede the tile loop
(HIP), the barrier check of the tilelang 0.1.9 race. `--regs` also compiles the CUDA source
with nvcc (no GPU needed) for registers and spills. CUDA lowering works with the CPU venv's
tilelang (0.1.9); HIP source needs tilelang 0.1.15 (.venv-hip).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from . import source_facts as sf
from .lowered import reduction_hazards, shared_memory_bytes

REPO = Path(__file__).resolve().parents[2]
# Compute units of the card each arch's configurations are picked for.
CU_COUNT = {"sm_90": 132, "gfx942": 304, "gfx950": 256}


def _target(arch: str, fp8_module):
    from tilelang import tvm

    if arch.startswith("gfx"):
        return "hip", tvm.target.Target({"kind": "hip", "mcpu": arch})
    return "cuda", tvm.target.Target(fp8_module.compile_target(arch))


def _lower(program, target, pass_configs) -> tuple[str, int]:
    """(device source, LDS bytes per workgroup: TileLang's dynamic buffer + static arrays)."""
    import tilelang
    from tilelang import tvm

    with tvm.transform.PassContext(config=pass_configs), target:
        artifact = tilelang.lower(program, target=target)
    dynamic = max(
        int(f.attrs.get("dyn_shared_memory_buf", 0)) if f.attrs else 0
        for f in artifact.device_mod.functions.values()
    )
    source = artifact.kernel_source
    return source, shared_memory_bytes(source, dynamic)["total"]


def nvcc_resources(source: str, arch: str) -> dict:
    """Registers, spills and barriers of a CUDA kernel source, from `nvcc --resource-usage`."""
    import tilelang.env as tl_env

    with tempfile.TemporaryDirectory() as tmp:
        cu = Path(tmp) / "kernel.cu"
        cu.write_text(source)
        proc = subprocess.run(
            [
                "nvcc",
                "-std=c++17",
                f"-arch={arch}a",
                "-cubin",
                "-o",
                str(Path(tmp) / "kernel.cubin"),
                "--resource-usage",
                "--expt-relaxed-constexpr",
                "-w",
                f"-I{tl_env.TILELANG_TEMPLATE_PATH}",
                f"-I{tl_env.CUTLASS_INCLUDE_DIR}",
                str(cu),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    text = proc.stdout + proc.stderr
    regs = re.search(r"Used (\d+) registers", text)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    if proc.returncode or not regs:
        return {"nvcc_error": text[-600:]}
    return {
        "registers": int(regs.group(1)),
        "spill_store_bytes": int(spills.group(1)) if spills else None,
        "spill_load_bytes": int(spills.group(2)) if spills else None,
    }


def gather_facts(source: str, kind: str) -> dict:
    bits = sf.gather_load_bits(source)
    copies = sf.async_gather_copies(source)
    return dict(
        gather_load_bits=sorted(set(bits)),
        gather_min_bits=min(bits, default=0),
        gather_async_16B=sum(1 for n, _, _ in copies if n == 16),
        gather_async_all_guarded=bool(copies)
        and all(c and sf.predicate_guards_slot_range(p) for _, c, p in copies),
        pipeline_depth=sf.cuda_pipeline_depth(source) if kind == "cuda" else None,
        gather_before_tile_loop=sf.gather_before_loop(source),
        barrier_after_shared_reductions=not reduction_hazards(source, kind).hazards,
    )


def lower_candidate(arch: str, tokens: int, heads: int, mma: str | None, overrides: dict):
    import torch

    from . import fp8_decode_pipelined as fdp
    from .shapes import deepseek_shape

    kind, target = _target(arch, fdp)
    cfg = fdp.select_pipelined_config(
        arch=arch,
        cu_count=CU_COUNT.get(arch, 132),
        num_tokens=tokens,
        num_heads=heads,
        **deepseek_shape(
            kv_dtype=torch.float8_e4m3fnuz if arch == "gfx942" else torch.float8_e4m3fn,
            mma_dtype=mma,
            **overrides,
        ),
    )
    row = dict(
        kernel="pipelined",
        arch=arch,
        T=tokens,
        H=heads,
        fp8=cfg.fp8.name,
        mma_dtype=cfg.mma_dtype,
        h_per_block=cfg.h_per_block,
        block_I=cfg.block_I,
        inner_iter=cfg.inner_iter,
        num_splits=cfg.num_splits,
        num_stages=cfg.num_stages,
        threads=cfg.threads,
        estimated_shared_bytes=cfg.shared_bytes(),
    )
    source, shared = _lower(fdp.pipelined_decode_partial_program(cfg), target, fdp.PASS_CONFIGS)
    return cfg, row, source, shared, kind


def lower_0006(tree: Path, arch: str, heads: int, mma: str | None):
    """Patch 0007's kernel at T = 1 for `heads`, through the same lowering and facts."""
    import torch

    from .kernels import load_fp8_kernel_module

    fp8k = load_fp8_kernel_module(tree)
    kind, target = _target(arch, fp8k)
    cfg = fp8k.select_decode_fp8_config(
        arch=arch,
        cu_count=CU_COUNT.get(arch, 132),
        num_tokens=1,
        num_heads=heads,
        d_v=512,
        d_tail=64,
        topk=2048,
        sm_scale=0.1352,
        kv_dtype=torch.float8_e4m3fnuz if arch == "gfx942" else torch.float8_e4m3fn,
        mma_dtype=mma,
    )
    source, shared = _lower(
        fp8k.sparse_mla_decode_partial_fp8_program(cfg), target, fp8k._PASS_CONFIGS
    )
    row = dict(
        kernel="series",
        arch=arch,
        T=1,
        H=heads,
        fp8=cfg.fp8.name,
        mma_dtype=cfg.mma_dtype,
        h_per_block=cfg.h_per_block,
        block_I=cfg.block_I,
        inner_iter=cfg.inner_iter,
        estimated_shared_bytes=cfg.shared_bytes(),
        shared_bytes=shared,
    )
    return row, source, kind


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", required=True, help="sm_90, gfx942 or gfx950")
    ap.add_argument("--kernel", choices=["pipelined", "series"], default="pipelined")
    ap.add_argument("--tree", default=str(REPO / "build" / "sglang"), help="for --kernel series")
    ap.add_argument("--tokens", type=int, nargs="+", default=[1, 128])
    ap.add_argument("--heads", type=int, nargs="+", default=[16, 128])
    ap.add_argument("--mma", choices=["auto", "fp8", "bf16"], default="auto")
    ap.add_argument("--inner-iter", type=int, help="override the split selection")
    ap.add_argument("--num-stages", type=int, help="override the arch table")
    ap.add_argument("--regs", action="store_true", help="CUDA: nvcc for registers and spills")
    ap.add_argument("--source-dir", help="also write each kernel's device source here")
    args = ap.parse_args()
    mma = None if args.mma == "auto" else args.mma
    overrides = {
        k: v
        for k, v in (("inner_iter", args.inner_iter), ("num_stages", args.num_stages))
        if v is not None
    }
    failures, seen = 0, set()
    pairs = [(t, h) for h in args.heads for t in args.tokens]
    if args.kernel == "series":
        pairs = [(1, h) for h in args.heads]
    for tokens, heads in pairs:
        start = time.time()
        try:
            if args.kernel == "series":
                row, source, kind = lower_0006(Path(args.tree), args.arch, heads, mma)
                key = (heads,)
            else:
                cfg, row, source, shared, kind = lower_candidate(
                    args.arch, tokens, heads, mma, overrides
                )
                row["shared_bytes"] = shared
                key = cfg
            if key in seen:
                continue
            seen.add(key)
            row.update(ok=True, seconds=round(time.time() - start, 1))
            row.update(gather_facts(source, kind))
            if args.regs and kind == "cuda":
                row.update(nvcc_resources(source, args.arch))
            if args.source_dir:
                out = Path(args.source_dir) / (
                    f"{row['kernel']}_{args.arch}_{row['mma_dtype']}_H{heads}_T{tokens}.txt"
                )
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(source)
        except Exception as exc:  # one line per configuration, then go on
            failures += 1
            row = dict(
                kernel=args.kernel,
                arch=args.arch,
                T=tokens,
                H=heads,
                ok=False,
                error=f"{type(exc).__name__}: {str(exc)[-600:]}",
            )
        print(json.dumps(row), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
