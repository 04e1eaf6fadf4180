"""Benchmark every sparse-MLA decode kernel we compare against, on one card, in one run.

    SGLANG_TREE=build/sglang python -m scripts.kerneltools.bench_decode \
        [--kernels series:bf16 series:fp8 pipelined:bf16 ...] [--with-v2] [--out-dir docs/results]
    python -m scripts.kerneltools.bench_decode --plan --arch sm_90 --cu 132   (no GPU: the matrix)

Kernels (`--kernels`, default: all but v2):

    series:<bf16|fp8|auto>        patch 0007's FP8 kernel + v0.5.9's combine, GEMM flavour forced
                                (auto = the arch table's choice), `:bpc=N` blocks per CU
    pipelined:<bf16|fp8|auto>   the pipelined candidate (scripts/kerneltools/fp8_decode_pipelined)
                                + the same combine; `:inner=N`, `:stages=N`, `:bpc=N` overrides
    bf16-split                  v0.5.9's bf16 decode partial + combine (the patched tree's)
    v2                          v0.5.9's CUDA bf16 kernel (tilelang 0.1.8 only; or --with-v2;
                                or `--v2-layer DIR`: timed in a child process of the same run
                                with the tilelang 0.1.8 layer in DIR first on its path)
    triton:<bf16|fp8>           sglang 0.5.23's Triton sparse-MLA decode, loaded from its wheel
                                (scripts/kerneltools/upstream_triton)

Shapes: topk 2048, d_v 512 + d_tail 64, a 1M-slot pool, random slot ids, T x H from
`shapes.BENCH_TOKENS` x `shapes.BENCH_HEADS`. Each kernel is timed as CUDA-graph replays of
several calls with different index sets (>= 256 MB of distinct KV rows per graph, so calls do
not hit L2). Printed and written (JSON + PNG, dated and card-named): µs per call, % of the
card's measured copy rate for the KV bytes the call must read, TFLOPS of attention math, and the
speed-up against the fastest bf16 kernel of the same (H, T) (`bench_table`). A kernel that fails
to build or run is recorded with its error and the run goes on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import bench_table
from .shapes import BENCH_HEADS, BENCH_TOKENS, D_TAIL, D_V, TOPK, decode_config, deepseek_shape

REPO = Path(__file__).resolve().parents[2]
POOL_SLOTS = 1 << 20
SM_SCALE = 0.1352
L2_DEFEAT_BYTES = 256 << 20  # distinct KV bytes touched per timed graph (> L2 on H100/H200)
DEFAULT_KERNELS = [
    "series:bf16",
    "series:fp8",
    "pipelined:bf16",
    "pipelined:fp8",
    "bf16-split",
    "triton:bf16",
    "triton:fp8",
]
OVERRIDE_KEYS = {"inner": "inner_iter", "stages": "num_stages", "bpc": "blocks_per_cu"}


@dataclass(frozen=True)
class KernelSpec:
    """One benchmarked kernel, parsed from its command-line name."""

    kind: str  # series, pipelined, bf16-split, v2, triton
    mma: str | None = None  # GEMM flavour / cache dtype, None = the arch table's choice
    overrides: tuple[tuple[str, int], ...] = field(default_factory=tuple)

    @property
    def family(self) -> str:
        """The cache format the kernel reads: 'fp8' or 'bf16'."""
        if self.kind in ("series", "pipelined"):
            return "fp8"
        return "fp8" if self.kind == "triton" and self.mma == "fp8" else "bf16"

    @property
    def name(self) -> str:
        base = {
            "series": f"fp8-series-{self.mma or 'table'}",
            "pipelined": f"fp8-pipe-{self.mma or 'table'}",
            "bf16-split": "bf16-split",
            "v2": "bf16-v2",
            "triton": f"{self.mma}-triton-0.5.23",
        }[self.kind]
        extra = ",".join(f"{k}={v}" for k, v in self.overrides)
        return f"{base}({extra})" if extra else base

    @property
    def row_bytes(self) -> int:
        return bench_table.FP8_ROW_BYTES if self.family == "fp8" else bench_table.BF16_ROW_BYTES

    def override_kwargs(self) -> dict:
        return {OVERRIDE_KEYS[k]: v for k, v in self.overrides}


def parse_kernel(text: str) -> KernelSpec:
    """'pipelined:bf16:inner=4' -> KernelSpec('pipelined', 'bf16', (('inner', 4),))."""
    kind, *parts = text.split(":")
    if kind in ("bf16-split", "v2"):
        if parts:
            raise ValueError(f"{kind} takes no options, got {text!r}")
        return KernelSpec(kind)
    if kind not in ("series", "pipelined", "triton"):
        raise ValueError(f"unknown kernel {text!r}: series, pipelined, bf16-split, v2 or triton")
    mma = parts.pop(0) if parts else "auto"
    allowed = ("bf16", "fp8") if kind == "triton" else ("bf16", "fp8", "auto")
    if mma not in allowed:
        raise ValueError(f"{text!r}: the flavour must be one of {allowed}")
    overrides = []
    for p in parts:
        key, sep, value = p.partition("=")
        valid = {"series": ("bpc",), "pipelined": tuple(OVERRIDE_KEYS), "triton": ()}[kind]
        if not sep or key not in valid or not value.isdigit():
            raise ValueError(f"{text!r}: option {p!r} is not one of {valid} as key=N")
        overrides.append((key, int(value)))
    return KernelSpec(kind, None if mma == "auto" else mma, tuple(overrides))


def kernel_config(spec: KernelSpec, fp8k, fdp, arch: str, cu: int, tokens: int, heads: int):
    """The config a TileLang FP8 kernel runs with at (T, H), as a dict for the report."""
    kw = spec.override_kwargs()
    if spec.kind == "series":

        def select(mma):
            return decode_config(
                fp8k, arch=arch, cu_count=cu, num_tokens=tokens, num_heads=heads, mma_dtype=mma,
                blocks_per_cu=kw.get("blocks_per_cu"),
            )  # fmt: skip

    elif spec.kind == "pipelined":

        def select(mma):
            return fdp.select_pipelined_config(
                arch=arch, cu_count=cu, num_tokens=tokens, num_heads=heads,
                **deepseek_shape(mma_dtype=mma, **kw),
            )  # fmt: skip

    else:
        return None
    cfg = select(spec.mma)
    return dict(
        mma_dtype=cfg.mma_dtype,
        table_choice=cfg.mma_dtype == select(None).mma_dtype,  # the arch table's GEMM flavour
        h_per_block=cfg.h_per_block,
        inner_iter=cfg.inner_iter,
        splits=cfg.num_splits,
        num_stages=getattr(cfg, "num_stages", None),
    )


def copy_bandwidth(torch) -> float:
    """Device-to-device copy rate in GB/s, counting bytes read + written."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    times = time_calls(torch, lambda: dst.copy_(src), repeats=20)
    return 2 * src.numel() / statistics.median(times) / 1e9


def time_calls(torch, fn, repeats: int, warmup_s: float = 0.1) -> list[float]:
    """Seconds per call of fn(), CUDA events, after >= warmup_s of warm-up."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    while True:  # warm-up by time, not count: clocks and caches settle (gpu/README.md)
        fn()
        end.record()
        end.synchronize()
        if start.elapsed_time(end) / 1e3 >= warmup_s:
            break
    out = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end) / 1e3)
    return out


def graph_time(torch, calls, repeats: int) -> float:
    """Median seconds per call when `calls` (a list of thunks) is replayed as one graph."""
    for c in calls:  # compile + allocate outside capture (split-K workspaces included)
        c()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for c in calls:
            c()
    return statistics.median(time_calls(torch, graph.replay, repeats)) / len(calls)


class Kernels:
    """Builds each kernel once per head count and returns `call(idx)` for a (q, T)."""

    def __init__(self, torch, tree: Path, arch: str, cu: int):
        from .kernels import compile_bf16_decode, load_tilelang_kernel_module

        self.torch, self.arch, self.cu = torch, arch, cu
        self.tk = load_tilelang_kernel_module(tree)
        self.fp8k = sys.modules["sglang.srt.layers.attention.nsa.tilelang_fp8_kernel"]
        self.compile_bf16_decode = compile_bf16_decode
        self.target = self.fp8k.compile_target(arch)
        gen = torch.Generator(device="cuda").manual_seed(0)
        shape = (POOL_SLOTS, 1, D_V + D_TAIL)
        self.kv_bf16 = torch.randn(*shape, device="cuda", generator=gen).bfloat16()
        self.kv_fp8 = self.kv_bf16.float().clamp(-448, 448).to(torch.float8_e4m3fn)
        self.scale = torch.ones(1, dtype=torch.float32, device="cuda")
        self._cache: dict = {}
        self._triton = None

    @property
    def fdp(self):
        """The candidate's module, imported on first use (the v2 child runs tilelang 0.1.8)."""
        from . import fp8_decode_pipelined

        return fp8_decode_pipelined

    def _once(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def triton_module(self):
        if self._triton is None:
            from .upstream_triton import load_triton_sparse_mla_decode

            hip = self.arch.startswith("gfx")
            self._triton = load_triton_sparse_mla_decode(
                is_fnuz=self.arch == "gfx942", is_gfx95=hip and self.arch == "gfx950"
            )
        return self._triton

    def call(self, spec: KernelSpec, q):
        """A thunk `call(idx)` running `spec` on q [T, H, 576] bf16 and slot ids idx."""
        heads, kv8, kv16, scale = q.shape[1], self.kv_fp8, self.kv_bf16, self.scale
        if spec.kind == "series":
            kw = dict(mma_dtype=spec.mma, blocks_per_cu=spec.override_kwargs().get("blocks_per_cu"))
            return lambda idx: self.tk.tilelang_sparse_fwd_fp8(
                q, kv8, idx, SM_SCALE, D_V, kv_scale=scale, **kw
            )
        if spec.kind == "pipelined":
            kw = dict(spec.override_kwargs(), mma_dtype=spec.mma, arch=self.arch, cu_count=self.cu)
            combine = self.tk._fp8_combine_kernel
            return lambda idx: self.fdp.pipelined_sparse_fwd_fp8(
                combine, q, kv8, idx, SM_SCALE, D_V, scale, **kw
            )
        if spec.kind == "bf16-split":
            partial, combine = self._once(
                ("bf16", heads),
                lambda: self.compile_bf16_decode(
                    self.tk, heads, D_V, D_TAIL, TOPK, SM_SCALE, self.target
                ),
            )
            q4, kv4 = q.unsqueeze(0), kv16.unsqueeze(0)
            return lambda idx: combine(*partial(q4, kv4, idx.unsqueeze(0)))
        if spec.kind == "v2":  # warp-specialised, non-split; tilelang 0.1.8 only
            v2 = self._once(
                ("v2", heads),
                lambda: self.tk.sparse_attention_fwd_kernel_v2(
                    heads, D_V, D_TAIL, TOPK, sm_scale=SM_SCALE
                ),
            )
            q4, kv4 = q.unsqueeze(0), kv16.unsqueeze(0)
            return lambda idx: v2(q4, kv4, idx.unsqueeze(0))
        if spec.kind == "triton":
            from .upstream_triton import decode_call

            module, cache, workspace = self.triton_module(), kv8 if spec.mma == "fp8" else kv16, []
            return lambda idx: decode_call(module, q, cache, idx, SM_SCALE, D_V, workspace)
        raise ValueError(spec.kind)


def plan(args, specs: list[KernelSpec]) -> int:
    """Print the matrix and each TileLang kernel's config without a GPU."""
    from . import fp8_decode_pipelined as fdp
    from .kernels import load_fp8_kernel_module

    fp8k = load_fp8_kernel_module(Path(args.tree))
    for h in args.heads:
        for t in args.tokens:
            for spec in specs:
                try:
                    cfg = kernel_config(spec, fp8k, fdp, args.arch, args.cu, t, h)
                except ValueError as exc:
                    cfg = {"error": str(exc)}
                print(json.dumps(dict(kernel=spec.name, H=h, T=t, config=cfg)))
    return 0


def run(args, specs: list[KernelSpec]) -> dict:
    import torch

    from .kernels import load_fp8_kernel_module

    fp8k = load_fp8_kernel_module(Path(args.tree))
    fp8k_arch, cu = fp8k.device_arch()
    card = torch.cuda.get_device_name()
    copy_gbps = copy_bandwidth(torch)
    print(f"# {card} ({fp8k_arch}, {cu} CUs), copy rate {copy_gbps:.0f} GB/s (read + write)")
    kernels = Kernels(torch, Path(args.tree), fp8k_arch, cu)
    gen = torch.Generator(device="cuda").manual_seed(1)
    rows = []
    for heads in args.heads:
        for tokens in args.tokens:
            q = torch.randn(tokens, heads, D_V + D_TAIL, device="cuda", generator=gen).bfloat16()
            n_sets = max(1, min(64, math.ceil(L2_DEFEAT_BYTES / (tokens * TOPK * (D_V + D_TAIL)))))
            index_sets = [
                torch.randint(0, POOL_SLOTS, (tokens, 1, TOPK), device="cuda", dtype=torch.int32,
                              generator=gen)
                for _ in range(n_sets)
            ]  # fmt: skip
            for spec in specs:
                row = dict(kernel=spec.name, family=spec.family, row_bytes=spec.row_bytes)
                row.update(H=heads, T=tokens, graph_calls=n_sets)
                try:
                    row["config"] = kernel_config(
                        spec,
                        fp8k,
                        kernels.fdp if spec.kind == "pipelined" else None,
                        fp8k_arch,
                        cu,
                        tokens,
                        heads,
                    )
                    call = kernels.call(spec, q)
                    row["us"] = 1e6 * graph_time(
                        torch, [lambda i=i: call(i) for i in index_sets], args.repeats
                    )
                    if args.plain:
                        times = time_calls(torch, lambda: call(index_sets[0]), args.repeats)
                        row["plain_us"] = 1e6 * statistics.median(times)
                    bench_table.add_metrics(row, copy_gbps, TOPK)
                    print(
                        f"{spec.name:24s} H={heads:3d} T={tokens:4d} {row['us']:9.1f} us "
                        f"{row['pct_copy']:5.1f}% copy {row['tflops']:6.1f} TFLOPS",
                        flush=True,
                    )
                except Exception as exc:  # record and go on: one broken kernel must not end a run
                    row["error"] = f"{type(exc).__name__}: {str(exc)[-800:]}"
                    print(f"{spec.name:24s} H={heads:3d} T={tokens:4d} FAILED {row['error']}")
                    traceback.print_exc(limit=3)
                rows.append(row)
    bench_table.add_speedups(rows)
    return dict(
        card=card,
        arch=fp8k_arch,
        compute_units=cu,
        copy_GBps=copy_gbps,
        topk=TOPK,
        date_utc=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        torch=torch.__version__,
        tilelang=__import__("tilelang").__version__,
        triton=__import__("triton").__version__,
        kernels=[s.name for s in specs],
        rows=rows,
    )


def run_v2_child(args, layer: Path) -> tuple[list[dict], str]:
    """Time v2 in a child process that imports tilelang from `layer` (0.1.8: v2 does not build
    with 0.1.9), on the same card, shapes and seeded inputs; returns its rows."""
    import importlib.util
    import subprocess
    import tempfile

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(layer), env.get("PYTHONPATH")]))
    z3 = importlib.util.find_spec("z3")  # an older tilelang loads libz3 through the linker
    if z3 and z3.origin and (Path(z3.origin).parent / "lib").is_dir():
        lib = str(Path(z3.origin).parent / "lib")
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [lib, env.get("LD_LIBRARY_PATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, "-m", "scripts.kerneltools.bench_decode", "--kernels", "v2"]
        cmd += ["--tree", args.tree, "--repeats", str(args.repeats), "--rows-json", str(out)]
        cmd += ["--tokens", *map(str, args.tokens), "--heads", *map(str, args.heads)]
        proc = subprocess.run(cmd, env=env, cwd=REPO)
        if not out.is_file():
            raise RuntimeError(f"the v2 child process failed (exit {proc.returncode})")
        child = json.loads(out.read_text())
    return child["rows"], child["tilelang"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out-dir", default=str(REPO / "docs" / "results"))
    ap.add_argument("--tree", default=os.environ.get("SGLANG_TREE", str(REPO / "build/sglang")))
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--tokens", type=int, nargs="+", default=list(BENCH_TOKENS))
    ap.add_argument("--heads", type=int, nargs="+", default=list(BENCH_HEADS))
    ap.add_argument("--kernels", nargs="+", default=DEFAULT_KERNELS, help="see above")
    ap.add_argument("--with-v2", action="store_true", help="add v2 (needs tilelang 0.1.8)")
    ap.add_argument("--v2-layer", help="time v2 in a child process with this tilelang layer")
    ap.add_argument("--rows-json", help=argparse.SUPPRESS)  # the v2 child's output
    ap.add_argument("--plain", action="store_true", help="also time one eager call")
    ap.add_argument("--plan", action="store_true", help="print the matrix, no GPU needed")
    ap.add_argument("--arch", default="sm_90", help="--plan only")
    ap.add_argument("--cu", type=int, default=132, help="--plan only")
    args = ap.parse_args()
    try:
        specs = [parse_kernel(k) for k in args.kernels + (["v2"] if args.with_v2 else [])]
    except ValueError as exc:
        ap.error(str(exc))
    if args.plan:
        return plan(args, specs)

    import torch

    if not torch.cuda.is_available():
        print("bench_decode needs a CUDA/HIP GPU; none is visible (--plan needs none)")
        return 2
    report = run(args, specs)
    if args.rows_json:  # a v2 child: hand the rows to the parent
        Path(args.rows_json).write_text(json.dumps(dict(report, rows=report["rows"])))
        return 0
    if args.v2_layer:
        try:
            rows, version = run_v2_child(args, Path(args.v2_layer))
        except Exception as exc:  # the rest of the run stands
            rows, version = [], f"failed: {exc}"
        for row in rows:
            if row.get("us"):
                bench_table.add_metrics(row, report["copy_GBps"], TOPK)
            row["tilelang"] = version
        report["rows"] += rows
        report["v2_tilelang"] = version
        bench_table.add_speedups(report["rows"])
    print("\n" + bench_table.wide_table(report["rows"]))
    print("\n" + bench_table.long_table(report["rows"]))
    out = Path(args.out_dir) / bench_table.results_stem(report["date_utc"], report["card"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out.with_suffix('.json')}")
    try:
        bench_table.plot(report, out.with_suffix(".png"))
        print(f"wrote {out.with_suffix('.png')}")
    except ImportError as exc:
        print(f"no plot ({exc}): python -m scripts.kerneltools.bench_table {out}.json --png ...")
    return 1 if any("error" in r for r in report["rows"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
