"""bench_serving output parsing on a captured sample.

The fixtures are CONSTRUCTED samples in bench_serving's documented output format (DESIGN.md
§11.3 and v0.5.9's print/dump code), not the output of a real run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "gates_fixtures"))
from support import FIXTURES  # noqa: E402

from scripts.gates import bench  # noqa: E402
from scripts.gates.config import GatesConfig  # noqa: E402
from scripts.gates.errors import BenchError  # noqa: E402

STDOUT = FIXTURES / "bench_serving_sample_stdout.txt"
JSONL = FIXTURES / "bench_serving_sample.jsonl"


def test_parse_stdout_block() -> None:
    m = bench.parse_stdout(STDOUT.read_text())
    assert m["completed"] == 256
    assert m["max_concurrency"] == 64
    assert m["output_throughput"] == pytest.approx(2212.71)
    assert m["median_tpot_ms"] == pytest.approx(26.71)
    assert m["p99_ttft_ms"] == pytest.approx(5934.61)
    assert m["max_itl_ms"] == pytest.approx(1410.56)
    assert m["concurrency"] == pytest.approx(63.41)
    assert "Traffic request rate" not in m


def test_parse_stdout_without_block_is_empty() -> None:
    assert bench.parse_stdout("Traceback (most recent call last):\n  boom\n") == {}


def test_parse_jsonl_takes_the_last_line() -> None:
    m = bench.parse_jsonl(JSONL)
    assert m["max_concurrency"] == 64  # not the earlier run's 8
    assert m["output_throughput"] == pytest.approx(2212.7075)
    assert m["request_rate"] == float("inf")


def test_merge_prefers_jsonl_and_agrees_with_stdout() -> None:
    j, s = bench.parse_jsonl(JSONL), bench.parse_stdout(STDOUT.read_text())
    merged = bench.merge_results(j, s, "sample")
    assert merged["source"] == "jsonl"
    assert merged["output_throughput"] == j["output_throughput"]
    assert merged["output_throughput"] == pytest.approx(s["output_throughput"], abs=0.01)
    only_stdout = bench.merge_results({}, s, "sample")
    assert only_stdout["source"] == "stdout"
    assert only_stdout["median_tpot_ms"] == pytest.approx(26.71)


def test_missing_metrics_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="lacks completed, output_throughput, median_tpot_ms"):
        bench.merge_results({}, {}, "c64")
    bad = tmp_path / "x.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(BenchError, match="not JSON"):
        bench.parse_jsonl(bad)
    assert bench.parse_jsonl(tmp_path / "missing.jsonl") == {}


def test_bench_command_is_offline_and_seeded(tmp_path: Path) -> None:
    cfg = GatesConfig()
    cmd = bench.build_bench_command(cfg, "http://127.0.0.1:30000", 256, tmp_path / "o.jsonl")
    joined = " ".join(cmd)
    assert "--dataset-name random-ids" in joined
    assert "--seed 1" in joined and "--max-concurrency 256" in joined
    assert "--num-prompts 1024" in joined  # 4 prompts per slot
    assert "--host 127.0.0.1 --port 30000" in joined
    assert f"--output-file {tmp_path / 'o.jsonl'}" in joined
    assert bench.num_prompts(cfg, 1) == 8  # min_prompts
