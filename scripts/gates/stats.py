"""Aggregate repeated bench runs: median for the gate, min/max/spread to show the noise."""

from __future__ import annotations

import statistics
from typing import Any

METRICS = ("output_throughput", "median_tpot_ms", "median_ttft_ms", "p99_ttft_ms")


def summarise(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "min": None, "max": None, "spread": None, "n": 0}
    med = statistics.median(values)
    return {
        "median": med,
        "min": min(values),
        "max": max(values),
        "spread": (max(values) - min(values)) / med if med else None,  # relative range
        "n": len(values),
    }


def aggregate(runs: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    return {
        m: summarise([float(r[m]) for r in runs if isinstance(r.get(m), (int, float))])
        for m in METRICS
    }
