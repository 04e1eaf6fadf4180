#!/usr/bin/env python3
"""Benchmark the raw-FP8 MLA quantise-and-store kernel against the card's copy bandwidth.

Measures (1) device-to-device copy bandwidth of a large buffer (bytes read + written) and
(2) `store_mla_kv_fp8_raw` for several token counts, timed as CUDA/HIP graph replays with
CUDA events after >= 100 ms of warm-up (as sglang runs decode). Sources are bf16 views into a
[T, 576] latent (non-contiguous, as in the model), slots are scattered over a 1M-token pool.
Prints a table and writes JSON (card, versions, UTC date, numbers). Takes well under a minute.

    SGLANG_TREE=build/sglang python -m scripts.kerneltools.bench_kv_store \
        [--format fn|fnuz] [--sweep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from types import ModuleType

import torch

REPO = Path(__file__).resolve().parents[2]
MODULE = Path("python/sglang/srt/mem_cache/fp8_kv_store.py")
TOKENS = (1, 8, 64, 512, 4096, 32768)
NOPE, ROPE = 512, 64
POOL_SLOTS = 1 << 20
FORMATS = {"fn": torch.float8_e4m3fn, "fnuz": torch.float8_e4m3fnuz}


def load_store_module(tree: Path) -> ModuleType:
    path = tree / MODULE
    if not path.is_file():
        sys.exit(f"error: {path} not found: run `make apply` or pass --tree / SGLANG_TREE")
    spec = importlib.util.spec_from_file_location("fp8_kv_store", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # imports only torch and triton
    return mod


def warm_up(fn, min_seconds: float = 0.1) -> None:
    """Run `fn` until `min_seconds` of device time have passed (clocks, caches, TLBs)."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        for _ in range(10):
            fn()
        torch.cuda.synchronize()


def time_events(fn, iters: int) -> float:
    """Mean seconds per call of `fn`, measured with CUDA events."""
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    for _ in range(iters):
        fn()
    end.record()
    end.synchronize()
    return begin.elapsed_time(end) / 1e3 / iters


def copy_bandwidth(nbytes: int = 1 << 30) -> float:
    """Device-to-device copy rate in bytes/s, counting bytes read plus bytes written."""
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)

    def copy() -> None:
        dst.copy_(src)

    warm_up(copy)
    return 2 * nbytes / time_events(copy, 20)


def bench_store(mod, pool, fmt, t: int, launch_config, calls_per_graph: int = 20) -> dict:
    latent = torch.randn(t, NOPE + ROPE, device="cuda").mul_(100).to(torch.bfloat16)
    loc = torch.randperm(POOL_SLOTS, device="cuda")[:t]
    k_scale = torch.tensor(0.5, dtype=torch.float32, device="cuda")  # the layer's tensor

    def store():
        mod.store_mla_kv_fp8_raw(
            pool,
            loc,
            latent[:, None, :NOPE],
            latent[:, None, NOPE:],
            k_scale=k_scale,
            fp8_dtype=fmt,
            launch_config=launch_config,
        )

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        store()  # compile outside the capture
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls_per_graph):
            store()
    warm_up(graph.replay)
    # About 50 ms of measurement whatever the size.
    probe = time_events(graph.replay, 3)
    iters = max(5, min(2000, int(0.05 / probe)))
    seconds = time_events(graph.replay, iters) / calls_per_graph
    moved = t * ((NOPE + ROPE) * latent.element_size() + (NOPE + ROPE) + loc.element_size())
    return {"tokens": t, "us": seconds * 1e6, "bytes": moved, "gbps": moved / seconds / 1e9}


def default_format() -> str:
    arch = getattr(torch.cuda.get_device_properties(0), "gcnArchName", "") or ""
    return "fnuz" if "gfx94" in arch else "fn"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tree",
        type=Path,
        default=Path(os.environ.get("SGLANG_TREE", REPO / "build" / "sglang")),
        help="patched sglang tree (default: $SGLANG_TREE or build/sglang)",
    )
    parser.add_argument("--format", choices=sorted(FORMATS), help="default: the card's format")
    parser.add_argument("--tokens", type=int, nargs="+", default=list(TOKENS))
    parser.add_argument(
        "--sweep", action="store_true", help="also time (rows per program, warps) variants"
    )
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "bench_kv_store.json")
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        print(
            "error: no GPU visible (torch.cuda.is_available() is False); this benchmark needs "
            "an NVIDIA or AMD GPU with a CUDA/ROCm build of torch",
            file=sys.stderr,
        )
        return 2
    import triton

    mod = load_store_module(args.tree)
    fmt_name = args.format or default_format()
    fmt = FORMATS[fmt_name]
    card = torch.cuda.get_device_name(0)

    copy_bps = copy_bandwidth()
    print(f"{card}: device-to-device copy {copy_bps / 1e9:.0f} GB/s (read + write)")
    pool = torch.zeros(POOL_SLOTS, 1, NOPE + ROPE, dtype=torch.uint8, device="cuda")

    configs = [None]
    if args.sweep:
        configs += [(1, 4), (2, 4), (4, 4), (8, 4), (4, 8), (8, 8)]
    rows = []
    header = f"{'T':>6} {'config':>8} {'us':>9} {'bytes':>11} {'GB/s':>8} {'% copy':>7}"
    print(f"store_mla_kv_fp8_raw, bf16 -> {fmt}, CUDA graph replay\n{header}")
    for t in args.tokens:
        for config in configs:
            row = bench_store(mod, pool, fmt, t, config)
            row["config"] = list(config or mod._launch_config(t))
            row["pct_copy"] = 100 * row["gbps"] * 1e9 / copy_bps
            rows.append(row)
            cfg = "x".join(map(str, row["config"]))
            print(
                f"{t:>6} {cfg:>8} {row['us']:>9.2f} {row['bytes']:>11} "
                f"{row['gbps']:>8.1f} {row['pct_copy']:>6.1f}%"
            )

    report = {
        "card": card,
        "format": str(fmt),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "copy_gbps": copy_bps / 1e9,
        "bytes_formula": "T * (576 * src_itemsize + 576 + loc_itemsize)",
        "timing": "CUDA graph of 20 stores, replayed; CUDA events; >= 100 ms warm-up",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
