"""CPU tests of the decode benchmark's pure parts: metrics, baselines, tables, names, plot, the
kernel list and the no-GPU plan. Expected values are worked out from the issue's own figures
(H200, copy rate 4147 GB/s, topk 2048)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.kerneltools import bench_table as bt
from scripts.kerneltools.bench_decode import DEFAULT_KERNELS, KernelSpec, parse_kernel

REPO = Path(__file__).resolve().parent.parent
COPY = 4147.0


def _row(kernel, family, h, t, us):
    row_bytes = bt.FP8_ROW_BYTES if family == "fp8" else bt.BF16_ROW_BYTES
    return dict(kernel=kernel, family=family, row_bytes=row_bytes, H=h, T=t, us=us)


def test_attention_flops_match_the_issue_target():
    # H = 128, T = 128: >= 450 TFLOPS means <= 162 µs.
    flops = bt.attention_flops(128, 128, 2048)
    assert flops == 2 * 128 * 128 * 2048 * (576 + 512)
    row = bt.add_metrics(_row("fp8", "fp8", 128, 128, 162.0), COPY, 2048)
    assert row["tflops"] == pytest.approx(450.8, abs=0.1)


def test_copy_fraction_matches_the_issue_floor_and_v2():
    # H = 16, T = 128: the FP8 floor is 151 MB, ~36 µs at the copy rate; v2's 87.7 µs is 83%.
    assert bt.kv_floor_bytes(128, 2048, bt.FP8_ROW_BYTES) == 150_994_944
    fp8 = bt.add_metrics(_row("fp8", "fp8", 16, 128, 36.4), COPY, 2048)
    assert fp8["pct_copy"] == pytest.approx(100.0, abs=0.1)
    v2 = bt.add_metrics(_row("bf16-v2", "bf16", 16, 128, 87.7), COPY, 2048)
    assert v2["pct_copy"] == pytest.approx(83.0, abs=0.1)


def test_speedup_is_against_the_fastest_bf16_kernel_of_the_row():
    rows = [
        _row("bf16-split", "bf16", 16, 64, 104.7),
        _row("bf16-v2", "bf16", 16, 64, 69.4),
        _row("bf16-triton", "bf16", 16, 64, 71.5),
        _row("fp8-series", "fp8", 16, 64, 139.6),
        _row("fp8-triton", "fp8", 16, 64, 20.0),  # faster, but not a bf16 baseline
        _row("bf16-split", "bf16", 128, 64, 564.4),
        dict(_row("bf16-v2", "bf16", 128, 64, None), error="build failed"),
        _row("fp8-series", "fp8", 128, 64, 373.2),
    ]
    bt.add_speedups(rows)
    fp8 = rows[3]
    assert fp8["baseline"] == "bf16-v2" and fp8["speedup"] == pytest.approx(69.4 / 139.6)
    assert rows[1]["speedup"] == 1.0
    assert rows[7]["baseline"] == "bf16-split"  # the failed v2 row is no baseline
    assert rows[7]["speedup"] == pytest.approx(564.4 / 373.2)
    assert rows[6]["speedup"] is None


def test_tables_show_every_kernel_and_errors():
    rows = [
        _row("bf16-v2", "bf16", 16, 1, 64.0),
        _row("fp8-pipe-bf16", "fp8", 16, 1, 20.0),
        dict(_row("fp8-pipe-fp8", "fp8", 16, 1, None), error="x"),
    ]
    for r in rows[:2]:
        bt.add_metrics(r, COPY, 2048)
    bt.add_speedups(rows)
    wide = bt.wide_table(rows)
    assert (
        wide.splitlines()[0] == "| H | T | bf16-v2 | fp8-pipe-bf16 | fp8-pipe-fp8 | fastest bf16 |"
    )
    assert "| 16 | 1 | 64.0 | 20.0 | - | bf16-v2 |" in wide
    long = bt.long_table(rows)
    assert "| 16 | 1 | fp8-pipe-bf16 | 20.0 |" in long and "3.20×" in long
    assert "| 16 | 1 | fp8-pipe-fp8 | error |" in long


def test_result_files_are_dated_and_card_named():
    assert bt.card_slug("NVIDIA H200") == "h200"
    assert bt.card_slug("AMD Instinct MI300X") == "instinct-mi300x"
    assert bt.results_stem("2026-12-05T01:02:03+00:00", "NVIDIA H200") == (
        "2026-12-05-h200-bench_decode"
    )


def test_plot_writes_a_png(tmp_path):
    rows = [_row(k, k[:4].rstrip("-"), h, t, 10.0 * t) for k in ("bf16-v2", "fp8-pipe")
            for h in (16, 128) for t in (1, 8, 128)]  # fmt: skip
    report = dict(card="NVIDIA H200", copy_GBps=COPY, topk=2048, date_utc="2026-12-05", rows=rows)
    out = tmp_path / "plot.png"
    bt.plot(report, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


@pytest.mark.parametrize(
    "text, kind, mma, overrides, name, family",
    [
        ("series:bf16", "series", "bf16", (), "fp8-series-bf16", "fp8"),
        ("series", "series", None, (), "fp8-series-table", "fp8"),
        ("pipelined:fp8:inner=4:stages=3", "pipelined", "fp8", (("inner", 4), ("stages", 3)),
         "fp8-pipe-fp8(inner=4,stages=3)", "fp8"),
        ("bf16-split", "bf16-split", None, (), "bf16-split", "bf16"),
        ("v2", "v2", None, (), "bf16-v2", "bf16"),
        ("triton:bf16", "triton", "bf16", (), "bf16-triton-0.5.23", "bf16"),
        ("triton:fp8", "triton", "fp8", (), "fp8-triton-0.5.23", "fp8"),
    ],
)  # fmt: skip
def test_kernel_names(text, kind, mma, overrides, name, family):
    spec = parse_kernel(text)
    assert spec == KernelSpec(kind, mma, overrides)
    assert (spec.name, spec.family) == (name, family)
    assert spec.row_bytes == (576 if family == "fp8" else 1152)


@pytest.mark.parametrize(
    "text", ["flash", "triton:auto", "series:fp16", "pipelined:bf16:inner", "series:bf16:stages=2",
             "v2:fp8", "pipelined:bf16:inner=x"],
)  # fmt: skip
def test_bad_kernel_names_are_refused(text):
    with pytest.raises(ValueError):
        parse_kernel(text)


def test_plan_lists_the_whole_matrix_without_a_gpu(sglang_tree):
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.kerneltools.bench_decode", "--plan", "--with-v2",
         "--tree", str(sglang_tree)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    names = {parse_kernel(k).name for k in DEFAULT_KERNELS} | {"bf16-v2"}
    assert {r["kernel"] for r in rows} == names
    assert len(rows) == len(names) * 5 * 2  # T in {1, 8, 32, 64, 128} x H in {16, 128}
    tilelang_fp8 = [r for r in rows if r["kernel"].startswith(("fp8-series", "fp8-pipe"))]
    assert all("error" not in r["config"] for r in tilelang_fp8), tilelang_fp8
    pipe = [r["config"] for r in rows if r["kernel"].startswith("fp8-pipe")]
    assert all(c["num_stages"] >= 2 for c in pipe)
    assert any(c["inner_iter"] >= 2 for c in pipe)  # some shapes really pipeline
