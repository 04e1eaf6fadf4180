"""Pass/fail rules. Pure functions of measured numbers, so the boundaries are unit-tested.

Comparisons allow EPS of float slack: 186/200 and 0.945 - 0.015 must compare as the
decimal values they denote, and a boundary value passes (">=" / "<=" in the issue).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

EPS = 1e-9


@dataclass
class Check:
    name: str
    passed: bool
    value: float | None
    limit: float
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def accuracy_checks(
    baseline_acc: float,
    candidate_acc: float,
    candidate_invalid: float,
    *,
    floor: float,
    tolerance: float,
    max_invalid: float,
) -> list[Check]:
    rel_limit = baseline_acc - tolerance
    return [
        Check(
            "candidate accuracy >= floor",
            candidate_acc + EPS >= floor,
            candidate_acc,
            floor,
            f"{candidate_acc:.4f} vs floor {floor:.4f}",
        ),
        Check(
            "candidate accuracy >= baseline - tolerance",
            candidate_acc + EPS >= rel_limit,
            candidate_acc,
            rel_limit,
            f"{candidate_acc:.4f} vs {baseline_acc:.4f} - {tolerance:.4f} = {rel_limit:.4f}",
        ),
        Check(
            "candidate invalid rate <= max",
            candidate_invalid - EPS <= max_invalid,
            candidate_invalid,
            max_invalid,
            f"{candidate_invalid:.4f} vs max {max_invalid:.4f}",
        ),
    ]


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def throughput_checks(
    *,
    baseline_high_tput: float | None,
    candidate_high_tput: float | None,
    baseline_low_tpot: float | None,
    candidate_low_tpot: float | None,
    baseline_kv_tokens: int | None,
    candidate_kv_tokens: int | None,
    min_throughput_ratio: float,
    max_tpot_ratio: float,
    min_kv_ratio: float,
) -> list[Check]:
    """A missing measurement fails its check (value None) instead of passing silently."""
    tput = ratio(candidate_high_tput, baseline_high_tput)
    tpot = ratio(candidate_low_tpot, baseline_low_tpot)
    kv = ratio(
        None if candidate_kv_tokens is None else float(candidate_kv_tokens),
        None if baseline_kv_tokens is None else float(baseline_kv_tokens),
    )

    def fmt(x: float | None) -> str:
        return "missing" if x is None else f"{x:.4f}"

    return [
        Check(
            "output throughput ratio at high concurrency",
            tput is not None and tput + EPS >= min_throughput_ratio,
            tput,
            min_throughput_ratio,
            f"candidate/baseline = {fmt(tput)} (need >= {min_throughput_ratio})",
        ),
        Check(
            "median TPOT ratio at low concurrency",
            tpot is not None and tpot - EPS <= max_tpot_ratio,
            tpot,
            max_tpot_ratio,
            f"candidate/baseline = {fmt(tpot)} (need <= {max_tpot_ratio})",
        ),
        Check(
            "KV capacity ratio",
            kv is not None and kv + EPS >= min_kv_ratio,
            kv,
            min_kv_ratio,
            f"candidate/baseline #tokens = {fmt(kv)} (need >= {min_kv_ratio})",
        ),
    ]
