"""Benchmark: FP8 sparse-MLA decode (partial + combine) vs the bf16 TileLang decode kernels.

    SGLANG_TREE=build/sglang python -m scripts.kerneltools.bench_decode \
        [--out reports/bench_decode.json]

Same card, same shapes (topk 2048, d_v 512 + d_tail 64, a 1M-slot KV pool), timed two ways:
plain calls (what an eager step pays, host overhead included) and CUDA graph replays (how
sglang runs decode). Each timed graph holds several calls with different index sets, so
consecutive calls do not find their KV rows in L2. Bandwidth counts the bytes the kernels move:
the KV rows gathered (once per head block), Q, indices, partial outputs written and read back,
and the output; it is printed against the device-to-device copy rate measured on the same card.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

from .shapes import BENCH_HEADS, BENCH_TOKENS, D_TAIL, D_V, TOPK, decode_config  # noqa: E402

POOL_SLOTS = 1 << 20
SM_SCALE = 0.1352
L2_DEFEAT_BYTES = 256 << 20  # distinct KV bytes touched per timed graph (> L2 on H100/H200)


def copy_bandwidth(torch) -> float:
    """Device-to-device copy rate in GB/s, counting bytes read + written."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    times = time_calls(torch, lambda: dst.copy_(src), repeats=20)
    return 2 * src.numel() / statistics.median(times) / 1e9


def time_calls(torch, fn, repeats: int, warmup_s: float = 0.1) -> list[float]:
    """Seconds per call of fn(), CUDA events, after >= warmup_s of warm-up."""
    start, end = (
        torch.cuda.Event(enable_timing=True),
        torch.cuda.Event(enable_timing=True),
    )
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
    for c in calls:  # compile + allocate outside capture
        c()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for c in calls:
            c()
    return statistics.median(time_calls(torch, graph.replay, repeats)) / len(calls)


BASELINE_NAMES = {
    "bf16": "decode partial + combine, the gfx950 decode path",
    "bf16-v2": "CUDA kernel sparse_attention_fwd_kernel_v2",
}


def parse_variant(text: str) -> tuple[str, dict]:
    """'default' (the arch table), or 'fp8'/'bf16' GEMMs with an optional ':blocks_per_cu'."""
    mma, _, bpc = text.partition(":")
    overrides = dict(
        mma_dtype=None if mma == "default" else mma, blocks_per_cu=int(bpc) if bpc else None
    )
    return ("fp8" if text == "default" else f"fp8[{text}]"), overrides


def bytes_moved(num_tokens, num_heads, kv_itemsize, head_blocks, num_splits) -> int:
    kv = num_tokens * TOPK * (D_V + D_TAIL) * kv_itemsize * head_blocks
    q = num_tokens * num_heads * (D_V + D_TAIL) * 2
    idx = num_tokens * TOPK * 4 * head_blocks
    partial = num_tokens * num_splits * num_heads * (D_V * 2 + 4) * 2 if num_splits > 1 else 0
    out = num_tokens * num_heads * D_V * 2
    return kv + q + idx + partial + out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "reports" / "bench_decode.json"))
    ap.add_argument("--tree", default=os.environ.get("SGLANG_TREE", str(REPO / "build/sglang")))
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--tokens", type=int, nargs="*", default=list(BENCH_TOKENS))
    ap.add_argument("--heads", type=int, nargs="*", default=list(BENCH_HEADS))
    ap.add_argument(
        "--variants",
        nargs="*",
        default=["default"],
        help="FP8 kernel variants, GEMM type[:blocks_per_cu]: default, fp8, bf16:2, ...",
    )
    ap.add_argument(
        "--with-v2",
        action="store_true",
        help="also time v0.5.9's CUDA bf16 kernel (sparse_attention_fwd_kernel_v2; tilelang 0.1.8)",
    )
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("bench_decode needs a CUDA/HIP GPU; none is visible", file=sys.stderr)
        return 2
    from .kernels import compile_bf16_decode, load_tilelang_kernel_module

    tk = load_tilelang_kernel_module(Path(args.tree))
    fp8k = sys.modules["sglang.srt.layers.attention.nsa.tilelang_fp8_kernel"]
    arch, cu = fp8k.device_arch()
    target = fp8k.compile_target(arch)
    card = torch.cuda.get_device_name()
    copy_gbs = copy_bandwidth(torch)
    print(f"# {card} ({arch}, {cu} CUs), copy bandwidth {copy_gbs:.0f} GB/s (read + write)")

    gen = torch.Generator(device="cuda").manual_seed(0)
    kv_bf16 = torch.randn(POOL_SLOTS, 1, D_V + D_TAIL, device="cuda", generator=gen).bfloat16()
    kv_fp8 = kv_bf16.float().clamp(-448, 448).to(torch.float8_e4m3fn)
    scale = torch.ones(1, dtype=torch.float32, device="cuda")

    variants = [parse_variant(v) for v in args.variants]
    rows = []
    for num_heads in args.heads:
        bf16_partial, bf16_combine = compile_bf16_decode(
            tk, num_heads, D_V, D_TAIL, TOPK, SM_SCALE, target
        )
        # v0.5.9's CUDA kernel (warp-specialised, non-split); it needs tilelang 0.1.8.
        v2 = (
            tk.sparse_attention_fwd_kernel_v2(num_heads, D_V, D_TAIL, TOPK, sm_scale=SM_SCALE)
            if args.with_v2
            else None
        )
        for num_tokens in args.tokens:
            q = torch.randn(num_tokens, num_heads, D_V + D_TAIL, device="cuda", generator=gen)
            q = q.bfloat16()
            per_call = num_tokens * TOPK * (D_V + D_TAIL)
            n_sets = max(1, min(64, math.ceil(L2_DEFEAT_BYTES / per_call)))
            index_sets = [
                torch.randint(
                    0,
                    POOL_SLOTS,
                    (num_tokens, 1, TOPK),
                    device="cuda",
                    dtype=torch.int32,
                    generator=gen,
                )
                for _ in range(n_sets)
            ]
            kernels = []  # (name, call, KV bytes per element, head blocks, splits, config)
            for name, overrides in variants:
                cfg = decode_config(
                    fp8k,
                    arch=arch,
                    cu_count=cu,
                    num_tokens=num_tokens,
                    num_heads=num_heads,
                    **overrides,
                )

                def fp8_call(idx, q=q, overrides=overrides):
                    return tk.tilelang_sparse_fwd_fp8(
                        q, kv_fp8, idx, SM_SCALE, D_V, kv_scale=scale, **overrides
                    )

                kernels.append((name, fp8_call, 1, cfg.head_blocks, cfg.num_splits, cfg))

            def bf16_call(idx, q=q):
                po, pl = bf16_partial(q.unsqueeze(0), kv_bf16.unsqueeze(0), idx.unsqueeze(0))
                return bf16_combine(po, pl)

            bf16_hblocks = num_heads // 64 if num_heads > 64 else 1
            kernels.append(("bf16", bf16_call, 2, bf16_hblocks, TOPK // 64, None))
            if v2 is not None:

                def v2_call(idx, q=q):
                    return v2(q.unsqueeze(0), kv_bf16.unsqueeze(0), idx.unsqueeze(0))

                kernels.append(("bf16-v2", v2_call, 2, bf16_hblocks, 1, None))
            for name, call, itemsize, hblocks, splits, cfg in kernels:
                plain = statistics.median(
                    time_calls(torch, lambda c=call: c(index_sets[0]), args.repeats)
                )
                graphed = graph_time(
                    torch, [lambda c=call, i=i: c(i) for i in index_sets], args.repeats
                )
                moved = bytes_moved(num_tokens, num_heads, itemsize, hblocks, splits)
                gbs = moved / graphed / 1e9
                rows.append(
                    dict(
                        kernel=name,
                        T=num_tokens,
                        H=num_heads,
                        plain_us=plain * 1e6,
                        graph_us=graphed * 1e6,
                        bytes=moved,
                        graph_GBps=gbs,
                        pct_copy=100 * gbs / copy_gbs,
                        splits=splits,
                        inner_iter=cfg.inner_iter if cfg else 1,
                        mma_dtype=cfg.mma_dtype if cfg else "bf16",
                    )
                )
                r = rows[-1]
                print(
                    f"{name:12s} H={num_heads:3d} T={num_tokens:4d}  plain {r['plain_us']:8.1f} us"
                    f"  graph {r['graph_us']:8.1f} us  {gbs:7.0f} GB/s  {r['pct_copy']:5.1f}% copy",
                    flush=True,
                )

    by_key = {(r["kernel"], r["H"], r["T"]): r for r in rows}
    baselines = ["bf16"] + (["bf16-v2"] if args.with_v2 else [])
    for (name, _), base in [(v, b) for v in variants for b in baselines]:
        print(f"\n{name} vs {base} (v0.5.9's {BASELINE_NAMES[base]}), graph replay:")
        print(
            "| H | T | bf16 µs | FP8 µs | speed-up | FP8 GB/s | FP8 % of copy | "
            "bf16 plain µs | FP8 plain µs |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for num_heads in args.heads:
            for num_tokens in args.tokens:
                f = by_key[(name, num_heads, num_tokens)]
                b = by_key[(base, num_heads, num_tokens)]
                print(
                    f"| {num_heads} | {num_tokens} | {b['graph_us']:.1f} | {f['graph_us']:.1f} | "
                    f"{b['graph_us'] / f['graph_us']:.2f}× | {f['graph_GBps']:.0f} | "
                    f"{f['pct_copy']:.1f}% | {b['plain_us']:.1f} | {f['plain_us']:.1f} |"
                )
    report = dict(
        card=card,
        arch=arch,
        compute_units=cu,
        copy_GBps=copy_gbs,
        target=target,
        date_utc=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        torch=torch.__version__,
        tilelang=__import__("tilelang").__version__,
        rows=rows,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
