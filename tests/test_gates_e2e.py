"""Both gates end to end through the CLI, against the fake server and fake bench_serving:
reports are written, verdicts follow the numbers, and the exit code says pass (0) / fail (1)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "gates_fixtures"))
from support import FIXTURES, REPO_ROOT, pids_in_log, wait_gone, write_config  # noqa: E402

from scripts.gates import cli  # noqa: E402
from scripts.gates.config import load_config  # noqa: E402
from scripts.gates.gsm8k import parse_jsonl  # noqa: E402

MINI = FIXTURES / "gsm8k_mini.jsonl"
QUESTIONS = [r["question"] for r in parse_jsonl(MINI.read_bytes(), "mini")]
OFFICIAL_SHA256 = load_config(REPO_ROOT / "config" / "gates.toml").dataset.sha256
GOLD = ["7", "45", "1,000", "-6", "120"]


def _answers(tmp: Path, fp8_wrong: int) -> Path:
    right = {q: f" The result is {g}.\n#### {g}" for q, g in zip(QUESTIONS, GOLD, strict=True)}
    fp8 = dict(right)
    for q in QUESTIONS[:fp8_wrong]:
        fp8[q] = " I think it is 3.\n#### 3"
    path = tmp / "answers.json"
    path.write_text(json.dumps({"bfloat16": right, "fp8_e4m3": fp8}))
    return path


def _config(tmp: Path, fp8_wrong: int = 0) -> Path:
    return write_config(
        tmp,
        "healthy",
        ["--answers", str(_answers(tmp, fp8_wrong))],
        accuracy={"num_questions": 5, "parallel": 3},
        dataset={"sha256": OFFICIAL_SHA256},
        throughput={"levels": [2, 128], "low": 2, "high": 128, "repeats": 2,
                    "prompts_per_slot": 1, "min_prompts": 2},
    )  # fmt: skip


def _run_dir(tmp: Path) -> Path:
    (d,) = (tmp / "reports").glob("gates-*")
    return d


def _no_leftovers(run_dir: Path) -> None:
    for log in (run_dir / "logs").glob("server-*.log"):
        assert wait_gone(*pids_in_log(log)) == []


def test_all_gates_pass(tmp_path: Path) -> None:
    config = _config(tmp_path)
    rc = cli.main(["all", "--config", str(config), "--data-path", str(MINI),
                   "--allow-unverified-data"])  # fmt: skip
    assert rc == 0
    d = _run_dir(tmp_path)
    acc = json.loads((d / "accuracy.json").read_text())
    assert acc["passed"] and acc["runs"]["candidate"]["gsm8k"]["accuracy_flexible"] == 1.0
    assert acc["runs"]["baseline"]["server"]["kv_tokens"] == 1_000_000
    assert acc["dataset"]["verified"] is False
    assert len((d / "gsm8k" / "candidate-fp8_e4m3.jsonl").read_text().splitlines()) == 5
    tp = json.loads((d / "throughput.json").read_text())
    assert tp["passed"]
    ratios = {c["name"]: c["value"] for c in tp["checks"]}
    assert abs(ratios["output throughput ratio at high concurrency"] - 1.3) < 1e-9
    assert abs(ratios["median TPOT ratio at low concurrency"] - 1.02) < 1e-9
    assert abs(ratios["KV capacity ratio"] - 1.81) < 1e-9
    agg = tp["runs"]["candidate"]["levels"]["128"]["aggregate"]["output_throughput"]
    assert agg["n"] == 2 and agg["spread"] == 0.0
    md = (d / "throughput.md").read_text()
    assert "# Throughput gate: PASS" in md and "| 128 | candidate (fp8_e4m3) | 8320.0 |" in md
    assert "# GSM8K accuracy gate: PASS" in (d / "accuracy.md").read_text()
    # sglang's own scorer ran on the same server and data, beside ours, for every run.
    for role in ("baseline", "candidate"):
        assert acc["runs"][role]["sglang_gsm8k"]["accuracy"] == 1.0
    assert "| sglang scorer acc |" in (d / "accuracy.md").read_text()
    # Radix cache on: every repeat gets its own seed and an emptied cache.
    seeds = [r["seed"] for r in tp["runs"]["baseline"]["levels"]["128"]["runs"]]
    assert seeds == [1, 2]
    log = (d / "logs" / "server-baseline-bfloat16.log").read_text()
    assert log.count("cache flushed") == 4  # 2 levels x 2 repeats
    assert "--disable-radix-cache" not in log.splitlines()[0]
    # Where it ran is recorded.
    assert "versions" in acc["environment"] and "gpu_models" in acc["environment"]
    assert (d / "runs.json").is_file()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib" in tp["plot_error"]
    else:
        assert (d / "throughput.png").read_bytes()[:4] == b"\x89PNG"
    _no_leftovers(d)


def test_accuracy_gate_fails_on_regression(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, fp8_wrong=1)  # 0.8 < floor 0.93 and < 1.0 - 0.015
    rc = cli.main(["accuracy", "--config", str(config), "--data-path", str(MINI),
                   "--allow-unverified-data"])  # fmt: skip
    assert rc == 1
    d = _run_dir(tmp_path)
    acc = json.loads((d / "accuracy.json").read_text())
    assert not acc["passed"]
    assert [c["passed"] for c in acc["checks"]] == [False, False, True, False]
    assert acc["runs"]["candidate"]["sglang_gsm8k"]["accuracy"] == 0.8  # sglang's scorer agrees
    assert "# GSM8K accuracy gate: FAIL" in capsys.readouterr().out
    assert not (d / "throughput.json").exists()
    _no_leftovers(d)


def test_unverified_data_is_refused_without_flag(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rc = cli.main(["accuracy", "--config", str(_config(tmp_path)), "--data-path", str(MINI)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "not the official test split" in err and "--allow-unverified-data" in err
    assert not list((tmp_path / "reports").glob("gates-*/logs/*.log"))  # no server started


def test_eval_gsm8k_against_a_running_server_and_print_commands(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from scripts.gates.server import Server

    config = _config(tmp_path, fp8_wrong=2)
    cfg = load_config(config)
    with Server(cfg, "fp8_e4m3", tmp_path / "s.log", quiet=True) as srv:
        rc = cli.main(["eval-gsm8k", "--url", srv.url, "--config", str(config),
                       "--data-path", str(MINI), "--allow-unverified-data"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    res = json.loads(out[out.index("{") :])
    assert res["accuracy_flexible"] == 0.6 and res["accuracy_strict"] == 0.6
    assert cli.main(["print-commands", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "--kv-cache-dtype bfloat16" in lines[0]
    assert "--kv-cache-dtype fp8_e4m3" in lines[1]


def test_high_concurrency_is_sized_from_the_bf16_kv_capacity(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "healthy",
        throughput={"levels": [2], "low": 2, "high": 0, "high_kv_load": 1.5, "repeats": 1,
                    "prompts_per_slot": 1, "min_prompts": 2},
    )  # fmt: skip
    assert cli.main(["throughput", "--config", str(config)]) == 0
    tp = json.loads((_run_dir(tmp_path) / "throughput.json").read_text())
    high = -(-15 * 1_000_000 // (10 * (4096 + 1024)))  # ceil(1.5 x BF16 #tokens / 5120) = 293
    assert tp["settings"]["high"] == high and tp["settings"]["levels"] == [2, high]
    assert set(tp["runs"]["candidate"]["levels"]) == {"2", str(high)}  # FP8 measured there too
    assert "1.5 x baseline KV #tokens" in tp["settings"]["high_from"]


def test_a_crash_in_a_later_phase_keeps_the_earlier_summary(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = write_config(
        tmp_path,
        "healthy",
        ["--answers", str(_answers(tmp_path, 0)), "--die-for-dtype", "fp8_e4m3"],
        accuracy={"num_questions": 5, "parallel": 3},
    )
    rc = cli.main(["accuracy", "--config", str(config), "--data-path", str(MINI),
                   "--allow-unverified-data"])  # fmt: skip
    assert rc == 3
    d = _run_dir(tmp_path)
    md = (d / "incomplete.md").read_text()
    assert "phase candidate (fp8_e4m3) failed" in md and "exited with code 1" in md
    assert "## baseline (bfloat16): completed" in md and "GSM8K: flexible 1.0000" in md
    data = json.loads((d / "incomplete.json").read_text())
    assert data["completed"] == ["baseline"]
    assert data["runs"]["baseline"]["gsm8k"]["accuracy_flexible"] == 1.0
    assert not (d / "accuracy.json").exists()
    _no_leftovers(d)


def test_unpatched_upstream_run_is_compared(tmp_path: Path) -> None:
    answers = _answers(tmp_path, 0)
    config = _config(tmp_path)
    launch = ["{python}", str(FIXTURES / "fake_server.py"), "--mode", "healthy",
              "--answers", str(answers)]  # fmt: skip
    rc = cli.main(["all", "--config", str(config), "--data-path", str(MINI),
                   "--allow-unverified-data", "--set", f"upstream.launch={json.dumps(launch)}",
                   "--set", "upstream.stop=['true']"])  # fmt: skip
    assert rc == 0
    d = _run_dir(tmp_path)
    acc = json.loads((d / "accuracy.json").read_text())
    assert list(acc["runs"]) == ["baseline", "candidate", "upstream"]
    assert acc["runs"]["upstream"]["kv_dtype"] == "bfloat16"
    names = [c["name"] for c in json.loads((d / "throughput.json").read_text())["checks"]]
    assert "patched/upstream BF16 median TPOT at low concurrency" in names
    acc_names = [c["name"] for c in acc["checks"]]
    assert "patched BF16 accuracy >= upstream BF16 - tolerance" in acc_names
    _no_leftovers(d)


def test_preflight_fails_fast_with_make_hints_and_no_report_folder(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = write_config(
        tmp_path,
        "healthy",
        preflight={"require_gpu": False, "require_model_dir": True,
                   "require_module": "sglang_nsa_fp8_no_such_module"},
    )  # fmt: skip
    missing = tmp_path / "no" / "test.jsonl"
    launch = "server.launch=['{python}', '-m', 'sglang.launch_server']"
    rc = cli.main(["all", "--config", str(config), "--data-path", str(missing),
                   "--set", launch])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert "nothing was started" in err
    assert "GATES_MODEL=" in err and "GATES_DATA=" in err and "GATES_PYTHON" in err
    assert "sglang_nsa_fp8_no_such_module" in err
    assert not (tmp_path / "reports").exists()  # no empty report folder


def test_preflight_names_a_missing_gpu(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from scripts.gates import preflight

    monkeypatch.setattr(preflight, "GPU_NODES", (str(tmp_path / "kfd"),))
    monkeypatch.setattr(preflight.glob, "glob", lambda pattern: [])
    assert "no GPU is visible" in (preflight.gpu_problem() or "")
    (tmp_path / "kfd").write_text("")
    assert preflight.gpu_problem() is None
