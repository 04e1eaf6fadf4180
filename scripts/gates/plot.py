"""PNG: median output throughput vs concurrency for both runs, min–max as error bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_throughput(report: dict[str, Any], path: Path) -> None:
    """Raise ImportError if matplotlib is missing (the caller records it in the report)."""
    import matplotlib

    matplotlib.use("Agg")  # headless nodes
    import matplotlib.pyplot as plt

    levels = report["settings"]["levels"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for (role, run), marker in zip(report["runs"].items(), ("o", "s", "^")):
        meds, lo, hi = [], [], []
        for level in levels:
            agg = run["levels"][str(level)]["aggregate"]["output_throughput"]
            meds.append(agg["median"])
            lo.append(agg["median"] - agg["min"])
            hi.append(agg["max"] - agg["median"])
        ax.errorbar(
            levels, meds, yerr=[lo, hi], marker=marker, capsize=3,
            label=f"{role}: KV {run['kv_dtype']}",
        )  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [str(c) for c in levels])
    ax.set_xlabel("max concurrency")
    ax.set_ylabel("output throughput (tok/s)")
    s = report["settings"]
    ax.set_title(f"bench_serving {s['dataset_name']} {s['input_len']}/{s['output_len']}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
