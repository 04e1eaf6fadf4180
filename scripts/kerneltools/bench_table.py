"""The decode benchmark's arithmetic, tables, file names and plot (pure: no GPU, no torch).

Metrics of one timed call (one row = one kernel at one (H, T)):

- `us`: microseconds per call, CUDA-graph replay;
- `pct_copy`: the KV bytes the call must read at least (T x topk rows of the kernel's cache
  format, 576 B in FP8, 1152 B in bf16), per second, as a percentage of the device-to-device
  copy rate measured on the same card (bytes read + written) -- the "floor" of the issue;
- `tflops`: attention math, 2 x T x H x topk x (d_qk + d_v) FLOPs (Q.K^T and P.V), per second;
- `speedup`: the fastest bf16 kernel's time in the same (H, T) divided by this kernel's.

    python -m scripts.kerneltools.bench_table RESULTS.json [--png OUT.png] [--markdown]

re-renders the tables and the plot from a results file (e.g. when the GPU host has no
matplotlib).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable
from pathlib import Path

FP8_ROW_BYTES = 576  # d_v 512 + d_tail 64, one byte each
BF16_ROW_BYTES = 2 * FP8_ROW_BYTES


def attention_flops(tokens: int, heads: int, topk: int, d_v: int = 512, d_tail: int = 64) -> int:
    """Q.K^T over d_v + d_tail plus P.V over d_v, 2 FLOPs per multiply-add."""
    return 2 * tokens * heads * topk * ((d_v + d_tail) + d_v)


def kv_floor_bytes(tokens: int, topk: int, row_bytes: int) -> int:
    """The KV bytes one call must read: every selected row once."""
    return tokens * topk * row_bytes


def add_metrics(row: dict, copy_gbps: float, topk: int) -> dict:
    """Fill pct_copy and tflops of a row with `us`, `T`, `H`, `row_bytes` (in place)."""
    seconds = row["us"] * 1e-6
    gbps = kv_floor_bytes(row["T"], topk, row["row_bytes"]) / seconds / 1e9
    row["kv_GBps"] = gbps
    row["pct_copy"] = 100.0 * gbps / copy_gbps
    row["tflops"] = attention_flops(row["T"], row["H"], topk) / seconds / 1e12
    return row


def add_speedups(rows: list[dict]) -> list[dict]:
    """For each (H, T): the fastest bf16 kernel (`baseline`, `baseline_us`) and every row's
    speed-up against it (> 1: faster). Rows with an error or no bf16 peer get None."""
    best: dict[tuple[int, int], dict] = {}
    for r in rows:
        if r.get("us") and r["family"] == "bf16":
            key = (r["H"], r["T"])
            if key not in best or r["us"] < best[key]["us"]:
                best[key] = r
    for r in rows:
        base = best.get((r["H"], r["T"]))
        ok = base is not None and r.get("us")
        r["baseline"] = base["kernel"] if ok else None
        r["baseline_us"] = base["us"] if ok else None
        r["speedup"] = base["us"] / r["us"] if ok else None
    return rows


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def kernel_order(rows: Iterable[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        seen.setdefault(r["kernel"], None)
    return list(seen)


def wide_table(rows: list[dict]) -> str:
    """One line per (H, T), microseconds of every kernel (the issue's table)."""
    kernels = kernel_order(rows)
    by = {(r["kernel"], r["H"], r["T"]): r for r in rows}
    keys = sorted({(r["H"], r["T"]) for r in rows})
    out = ["| H | T | " + " | ".join(kernels) + " | fastest bf16 |"]
    out.append("|---|---|" + "---|" * (len(kernels) + 1))
    for h, t in keys:
        cells = [_fmt(by.get((k, h, t), {}).get("us"), ".1f") for k in kernels]
        base = next((by[(k, h, t)]["baseline"] for k in kernels if (k, h, t) in by), None)
        out.append(f"| {h} | {t} | " + " | ".join(cells) + f" | {base or '-'} |")
    return "\n".join(out)


def long_table(rows: list[dict]) -> str:
    """One line per kernel and shape: µs, % of copy rate, TFLOPS, speed-up vs fastest bf16."""
    out = ["| H | T | kernel | µs | % of copy | TFLOPS | vs fastest bf16 |"]
    out.append("|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["H"], r["T"])):
        if not r.get("us"):
            out.append(f"| {r['H']} | {r['T']} | {r['kernel']} | error | | | |")
            continue
        out.append(
            f"| {r['H']} | {r['T']} | {r['kernel']} | {r['us']:.1f} | {r['pct_copy']:.1f}% | "
            f"{r['tflops']:.0f} | {_fmt(r['speedup'], '.2f')}× |"
        )
    return "\n".join(out)


def card_slug(card: str) -> str:
    """'NVIDIA H200' -> 'h200', 'AMD Instinct MI300X' -> 'instinct-mi300x'."""
    name = re.sub(r"^(nvidia|amd)\s+", "", card.strip(), flags=re.IGNORECASE).lower()
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "gpu"


def results_stem(date_utc: str, card: str) -> str:
    """Dated, card-named file stem for docs/results/, e.g. 2026-12-05-h200-bench_decode."""
    return f"{date_utc[:10]}-{card_slug(card)}-bench_decode"


def plot(report: dict, path: Path) -> None:
    """µs per call against T (log-log), one panel per H, one line per kernel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r.get("us")]
    heads = sorted({r["H"] for r in rows})
    fig, axes = plt.subplots(1, max(1, len(heads)), figsize=(6 * max(1, len(heads)), 4.5))
    axes = axes if hasattr(axes, "__len__") else [axes]
    for ax, h in zip(axes, heads):
        for k in kernel_order(rows):
            pts = sorted((r["T"], r["us"]) for r in rows if r["H"] == h and r["kernel"] == k)
            if pts:
                style = "-" if k.startswith("fp8") else "--"
                ax.plot(*zip(*pts), style, marker="o", label=k)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("T (decode tokens per call)")
        ax.set_ylabel("µs per call (CUDA graph replay)")
        ax.set_title(f"H = {h}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        f"Sparse-MLA decode, topk {report.get('topk')}: {report.get('card')}, "
        f"copy {report.get('copy_GBps', 0):.0f} GB/s, {report.get('date_utc', '')[:10]}"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("results", help="a bench_decode JSON report")
    ap.add_argument("--png", help="write the plot here")
    ap.add_argument("--markdown", action="store_true", help="print the tables")
    args = ap.parse_args()
    report = json.loads(Path(args.results).read_text())
    if args.markdown or not args.png:
        print(wide_table(report["rows"]) + "\n\n" + long_table(report["rows"]))
    if args.png:
        plot(report, Path(args.png))
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
