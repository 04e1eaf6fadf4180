"""Pass/fail logic of both gates at and around the boundaries."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "gates_fixtures"))
import support  # noqa: E402,F401

from scripts.gates.rules import accuracy_checks, throughput_checks  # noqa: E402
from scripts.gates.stats import summarise  # noqa: E402

LIMITS = dict(floor=0.93, tolerance=0.015, max_invalid=0.01)


def verdict(base: float, cand: float, invalid: float) -> list[bool]:
    return [c.passed for c in accuracy_checks(base, cand, invalid, **LIMITS)]


@pytest.mark.parametrize(
    "base,cand,invalid,expected",
    [
        (186 / 200, 186 / 200, 2 / 200, [True, True, True]),  # exactly floor, exactly max invalid
        (185 / 200, 185 / 200, 0.0, [False, True, True]),  # one question under the floor
        (0.945, 0.93, 0.0, [True, True, True]),  # exactly baseline - tolerance (float 0.9299..)
        (0.950, 0.93, 0.0, [True, False, True]),  # 0.935 needed
        (0.950, 0.935, 0.0, [True, True, True]),
        (0.96, 0.96, 3 / 200, [True, True, False]),  # one invalid too many
        (0.90, 0.931, 0.0, [True, True, True]),  # a weak baseline does not lower the floor
        (1.0, 0.984, 0.0, [True, False, True]),
    ],
)
def test_accuracy_boundaries(
    base: float, cand: float, invalid: float, expected: list[bool]
) -> None:
    assert verdict(base, cand, invalid) == expected


def tput(**kw: object) -> list[bool]:
    args = dict(
        baseline_high_tput=1000.0,
        candidate_high_tput=1000.0,
        baseline_low_tpot=20.0,
        candidate_low_tpot=21.0,
        baseline_kv_tokens=1_000_000,
        candidate_kv_tokens=1_700_000,
        min_throughput_ratio=1.0,
        max_tpot_ratio=1.05,
        min_kv_ratio=1.7,
    )
    args.update(kw)
    return [c.passed for c in throughput_checks(**args)]  # type: ignore[arg-type]


def test_throughput_boundaries_pass_exactly_at_limits() -> None:
    assert tput() == [True, True, True]  # ratio 1.0, TPOT +5.0 %, KV 1.70x


def test_throughput_just_outside_limits_fails() -> None:
    assert tput(candidate_high_tput=999.9) == [False, True, True]
    assert tput(candidate_low_tpot=21.01) == [True, False, True]
    assert tput(candidate_kv_tokens=1_699_999) == [True, True, False]


def test_missing_measurements_fail_not_pass() -> None:
    assert tput(candidate_kv_tokens=None) == [True, True, False]
    assert tput(baseline_kv_tokens=None) == [True, True, False]
    assert tput(baseline_high_tput=None) == [False, True, True]
    assert tput(baseline_low_tpot=0.0) == [True, False, True]


def test_summarise_median_and_spread() -> None:
    s = summarise([100.0, 90.0, 110.0])
    assert s["median"] == 100.0 and s["min"] == 90.0 and s["max"] == 110.0
    assert s["spread"] == pytest.approx(0.2)
    assert summarise([])["median"] is None
