"""Lower the NSA TileLang kernels for a target without a GPU and report facts about the code.

    python -m scripts.kerneltools.lower --tree build/sglang --arch gfx942 --heads 1 8 16 \\
        --d-tail 64 0 [--kernel fp8|bf16_decode|bf16_v1] [--dispatch] [--source-dir DIR]

One JSON object per configuration on stdout: the configuration, ok / error, whether the device
code uses an FP8 matrix instruction (MFMA on AMD, mma on NVIDIA), the shared memory (LDS) per
workgroup (TileLang's dynamic buffer + static `__shared__` arrays), and the cross-warp
reductions through shared memory with every path on which a write overlapping their scratch
comes before a barrier (`reduction_hazards`, the tilelang 0.1.9 race: docs/kernels.md).

Kernels: `fp8` (the FP8 decode partial kernel, patch 0007), and v0.5.9's bf16 kernels that
patch 0002 gives barriers: `bf16_decode` (sparse_mla_fwd_decode_partial, the gfx950 decode
path) and `bf16_v1` (sparse_attention_fwd_kernel_v1, gfx942's path and gfx950's prefill), built
with the arguments the dispatch passes on `--arch`.

`--dispatch` lowers every FP8 configuration that the kernel's per-arch table picks for d_v 512,
topk 2048, H in --heads, d_tail in --d-tail and any token count (1 .. 16384) on a card of the
arch (--cu); configurations that differ only in H are lowered once, for the largest H.

Mutations, for the tests that show the checks fail: `--rev upstream/v0.5.9` lowers the kernel
file of that revision (the unpatched bf16 kernels), `--drop-barriers` deletes every
`T.sync_threads()` from the kernel source. Every row also reports the check on the lowered code
with the barriers after each reduction deleted (whoever put them there): `stripped_hazards`.

CUDA lowering works with the tilelang of the CPU venv (0.1.9); HIP source generation needs
tilelang 0.1.15 (`make env-hip`), so the tests run this in that venv.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from .kernels import BF16_KERNEL_PATH, FP8_KERNEL_PATH, decode_pass_configs, load_kernel_variant
from .loader import install_stub
from .lowered import reduction_hazards, shared_memory_bytes, strip_barriers_after_reductions

FP8_INSTRUCTION = {
    "hip": re.compile(r"__builtin_amdgcn_mfma_\w*(fp8|f8)\w*"),
    "cuda": re.compile(r"mma_sync<tl::DataType::kFloat8_e4m3"),
}
D_V, TOPK, SM_SCALE = 512, 2048, 0.1352
# Compute units of the card each arch is tuned for (MI300X/MI325X, MI355X, H100/H200).
DEFAULT_CU = {"gfx942": 304, "gfx950": 256, "sm_90": 132}
DISPATCH_TOKENS = [1 << i for i in range(15)]  # 1 .. 16384: every inner_iter the table picks


def _fp8_format(arch: str):
    import torch

    return torch.float8_e4m3fnuz if arch == "gfx942" else torch.float8_e4m3fn


def _target(arch: str, fp8k):
    from tilelang import tvm

    if arch.startswith("gfx"):
        return "hip", tvm.target.Target({"kind": "hip", "mcpu": arch})
    return "cuda", tvm.target.Target(fp8k.compile_target(arch))


class Variant:
    """The kernel modules one run lowers: the tree's, at a revision, or mutated."""

    def __init__(self, args, workdir: Path):
        self.args, self.workdir = args, workdir
        self.dropped = 0
        self._fp8k = self._tk = None

    @property
    def fp8k(self):
        if self._fp8k is None:
            mutate = self.args.drop_barriers and self.args.kernel == "fp8"
            self._fp8k, dropped = load_kernel_variant(
                Path(self.args.tree),
                FP8_KERNEL_PATH,
                "nsa_lowering.tilelang_fp8_kernel",
                self.workdir,
                rev=self.args.rev if self.args.kernel == "fp8" else None,
                drop_barriers=mutate,
            )
            self.dropped += dropped
        return self._fp8k

    @property
    def tk(self):
        if self._tk is None:
            arch = self.args.arch
            install_stub(
                "sglang.srt.layers.quantization.fp8_kernel", is_fp8_fnuz=lambda: arch == "gfx942"
            )
            install_stub(
                "sglang.srt.utils",
                is_hip=lambda: arch.startswith("gfx"),
                is_gfx95_supported=lambda: arch == "gfx950",
            )
            self._tk, dropped = load_kernel_variant(
                Path(self.args.tree),
                BF16_KERNEL_PATH,
                "nsa_lowering.tilelang_kernel",
                self.workdir,
                rev=self.args.rev,
                drop_barriers=self.args.drop_barriers,
            )
            self.dropped += dropped
        return self._tk


def fp8_configs(variant: Variant, arch: str, heads, d_tails, tokens, cu, mma, merge) -> list:
    """(config, heads covered) for the FP8 kernel; with `merge`, configs that differ only in
    the head count are lowered once."""
    fp8k = variant.fp8k
    found: dict = {}
    for h in heads:
        for d_tail in d_tails:
            for t in tokens:
                cfg = fp8k.select_decode_fp8_config(
                    arch=arch,
                    cu_count=cu,
                    num_tokens=t,
                    num_heads=h,
                    d_v=D_V,
                    d_tail=d_tail,
                    topk=TOPK,
                    sm_scale=SM_SCALE,
                    kv_dtype=_fp8_format(arch),
                    mma_dtype=mma,
                )
                # The program depends on H only through its row guards: with `merge`, one per
                # shape class, lowered for the largest H of the class.
                shape = (cfg.h_per_block, cfg.mma_dtype, cfg.inner_iter, cfg.d_tail)
                entry = found.setdefault(shape if merge else (*shape, h), [cfg, set()])
                entry[1].add(h)
                if cfg.num_heads > entry[0].num_heads:
                    entry[0] = cfg
    return [(cfg, sorted(covered)) for cfg, covered in (found[k] for k in sorted(found))]


def lower_program(program, pass_configs, arch: str, fp8k):
    import tilelang
    from tilelang import tvm

    kind, target = _target(arch, fp8k)
    with tvm.transform.PassContext(config=pass_configs), target:
        artifact = tilelang.lower(program, target=target)
    dynamic = max(
        int(f.attrs.get("dyn_shared_memory_buf", 0)) if f.attrs else 0
        for f in artifact.device_mod.functions.values()
    )
    return kind, artifact.kernel_source, dynamic


def facts(kind: str, source: str, dynamic: int) -> dict:
    """What the lowered code does; `stripped_*`: the same check on the code with the barriers
    after each reduction deleted (the mutation the check must catch)."""
    report = reduction_hazards(source, kind)
    stripped, removed = strip_barriers_after_reductions(source, kind)
    lds = shared_memory_bytes(source, dynamic)
    return dict(
        fp8_matrix_instruction=bool(FP8_INSTRUCTION[kind].search(source)),
        lds_bytes=lds["total"],
        lds_dynamic_bytes=lds["dynamic"],
        lds_static_bytes=lds["static"],
        reductions_checked=report.reductions,
        reductions_sharing_scratch=report.shared_scratch,
        reduction_hazards=[h.to_dict() for h in report.hazards],
        stripped_barriers=removed,
        stripped_hazards=[h.to_dict() for h in reduction_hazards(stripped, kind).hazards],
    )


def bf16_program(tk, kernel: str, arch: str, heads: int, d_tail: int):
    """v0.5.9's bf16 kernel with the arguments `tilelang_sparse_fwd` passes on `arch`."""
    if kernel == "bf16_decode":
        return tk.sparse_mla_fwd_decode_partial.get_tir(
            heads, D_V, d_tail, TOPK, sm_scale=SM_SCALE, block_I=64, threads=256
        ), dict(block_I=64, threads=256)
    if arch == "gfx942":  # "reduce LDS usage on gfx942 target"
        kwargs = dict(block_I=32, num_stages=1, threads=128)
    else:  # gfx950's prefill (and the same arguments on CUDA, where v2 runs instead)
        kwargs = dict(block_I=64, num_stages=1, threads=256)
    return tk.sparse_attention_fwd_kernel_v1.get_tir(
        heads, D_V, d_tail, TOPK, sm_scale=SM_SCALE, **kwargs
    ), kwargs


def run(args) -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="nsa-lower-") as workdir:
        variant = Variant(args, Path(workdir))
        jobs = []
        if args.kernel == "fp8":
            mma = None if args.mma == "auto" else args.mma
            tokens = DISPATCH_TOKENS if args.dispatch else [args.tokens]
            cu = args.cu or DEFAULT_CU.get(args.arch, 132)
            try:
                configs = fp8_configs(
                    variant, args.arch, args.heads, args.d_tail, tokens, cu, mma, args.dispatch
                )
            except Exception as exc:
                print(json.dumps(dict(arch=args.arch, ok=False, error=str(exc))), flush=True)
                return 1
            jobs = [("fp8", cfg, covered) for cfg, covered in configs]
        else:
            jobs = [(args.kernel, (h, dt), [h]) for h in args.heads for dt in args.d_tail]
        for kernel, spec, covered in jobs:
            result = dict(kernel=kernel, arch=args.arch, rev=args.rev or "work tree")
            start = time.time()
            try:
                if kernel == "fp8":
                    cfg = spec
                    fp8k = variant.fp8k
                    result.update(
                        heads=cfg.num_heads,
                        heads_covered=covered,
                        d_tail=cfg.d_tail,
                        fp8=cfg.fp8.name,
                        mma_dtype=cfg.mma_dtype,
                        h_per_block=cfg.h_per_block,
                        block_I=cfg.block_I,
                        inner_iter=cfg.inner_iter,
                        num_splits=cfg.num_splits,
                        threads=cfg.threads,
                        estimated_shared_bytes=cfg.shared_bytes(),
                    )
                    program = fp8k.sparse_mla_decode_partial_fp8_program(cfg)
                    pass_configs = fp8k._PASS_CONFIGS
                else:
                    heads, d_tail = spec
                    program, kwargs = bf16_program(variant.tk, kernel, args.arch, heads, d_tail)
                    result.update(heads=heads, d_tail=d_tail, **kwargs)
                    pass_configs, fp8k = decode_pass_configs(), variant.fp8k
                kind, source, dynamic = lower_program(program, pass_configs, args.arch, fp8k)
                found = facts(kind, source, dynamic)
                result.update(ok=True, seconds=round(time.time() - start, 2), **found)
                result["source_barriers_dropped"] = variant.dropped
                if args.source_dir:
                    name = f"{kernel}_{args.arch}_H{result['heads']}_T{result['d_tail']}"
                    if kernel == "fp8":
                        name += f"_{result['mma_dtype']}_inner{result['inner_iter']}"
                    out = Path(args.source_dir) / f"{name}.txt"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(source)
            except Exception as exc:  # report and go on: one line per configuration
                failures += 1
                result.update(ok=False, error=f"{type(exc).__name__}: {str(exc)[-600:]}")
            print(json.dumps(result), flush=True)
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tree", required=True)
    ap.add_argument("--arch", required=True, help="gfx942, gfx950 or sm_90")
    ap.add_argument("--kernel", choices=["fp8", "bf16_decode", "bf16_v1"], default="fp8")
    ap.add_argument("--heads", type=int, nargs="+", default=[1, 8, 16, 32, 64, 128])
    ap.add_argument("--d-tail", type=int, nargs="+", default=[64, 0])
    ap.add_argument("--tokens", type=int, default=1, help="FP8: token count the config is for")
    ap.add_argument("--cu", type=int, help=f"FP8: compute units (default {DEFAULT_CU})")
    ap.add_argument(
        "--dispatch",
        action="store_true",
        help="FP8: every config the arch table picks for --heads, any token count",
    )
    ap.add_argument(
        "--mma",
        choices=["auto", "fp8", "bf16"],
        default="auto",
        help="FP8 kernel's GEMM flavour (auto: the arch table's choice)",
    )
    ap.add_argument("--rev", help="lower the kernel file at this git revision of --tree")
    ap.add_argument("--drop-barriers", action="store_true", help="delete T.sync_threads()")
    ap.add_argument("--source-dir", help="also write each kernel's device source here")
    return run(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
