"""Orchestration: baseline server, then candidate server, back to back; each runs the selected
gates (so `make gates` loads each model once); then verdicts and reports."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

from scripts.gates import bench, gsm8k, rules, stats
from scripts.gates.config import GatesConfig, as_dict
from scripts.gates.errors import GateError, RequestFailed, ServerError
from scripts.gates.plot import plot_throughput
from scripts.gates.progress import Progress
from scripts.gates.report import accuracy_markdown, throughput_markdown, write_json
from scripts.gates.server import Server, build_command

_ALIASES = {"bf16": "bfloat16"}


def _norm(dtype: str) -> str:
    return _ALIASES.get(dtype, dtype)


def check_reported_dtype(srv: Server) -> str:
    """Refuse to compare runs if the server reports a different KV dtype than we asked for."""
    reported = (srv.info.reported or {}) if srv.info else {}
    got = reported.get("kv_cache_dtype")
    if got is None:
        return "unverified (no kv_cache_dtype in /get_server_info)"
    if _norm(str(got)) != _norm(srv.kv_dtype) and not (
        srv.kv_dtype == "bfloat16" and got == "auto"
    ):
        raise ServerError(
            f"server reports kv_cache_dtype={got!r} but the gates asked for {srv.kv_dtype!r}"
        )
    return f"server reports {got}"


def run_throughput(cfg: GatesConfig, srv: Server, out_dir: Path, label: str) -> dict[str, Any]:
    t = cfg.throughput
    progress = Progress(f"bench {label}", len(t.levels) * t.repeats)
    levels: dict[str, Any] = {}
    try:
        for level in t.levels:
            runs = []
            for rep in range(t.repeats):
                try:
                    runs.append(
                        bench.run_bench(cfg, srv.url, level, out_dir, f"{label}-c{level}-r{rep}")
                    )
                except GateError:
                    srv.check_alive()  # a dead server is the better explanation
                    raise
                progress.update(note=f"c={level} {runs[-1]['output_throughput']:.1f} tok/s")
            levels[str(level)] = {"runs": runs, "aggregate": stats.aggregate(runs)}
    finally:
        progress.close()
    return levels


def _median(run: dict[str, Any], level: int, metric: str) -> float | None:
    return run["levels"][str(level)]["aggregate"][metric]["median"]


def run_gates(
    cfg: GatesConfig,
    which: tuple[str, ...],
    *,
    data_path: str | None = None,
    report_dir: str | None = None,
) -> int:
    """Returns 0 if every selected gate passed, 1 if one failed. Infrastructure errors raise."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = cfg.resolve_path(report_dir or cfg.report.dir) / f"gates-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"[gates] reports and logs: {run_dir}")
    dataset = gsm8k.load_test_split(cfg, data_path) if "accuracy" in which else None
    if dataset is not None:
        gsm8k.load_fewshot(cfg)  # fail on a bad few-shot setting before loading any model
    meta = {
        "started": stamp,
        "host": platform.node(),
        "config_file": cfg.source,
        "config": as_dict(cfg),
    }
    runs: dict[str, dict[str, Any]] = {}
    for role, dtype in (
        ("baseline", cfg.runs.baseline_kv_dtype),
        ("candidate", cfg.runs.candidate_kv_dtype),
    ):
        with Server(cfg, dtype, run_dir / "logs" / f"server-{role}-{dtype}.log") as srv:
            assert srv.info is not None
            run: dict[str, Any] = {
                "kv_dtype": dtype,
                "command": build_command(cfg, dtype),
                "server": {
                    "kv_tokens": srv.info.kv_tokens,
                    "startup_s": round(srv.info.startup_s, 1),
                    "log": str(srv.info.log_path),
                    "dtype_check": check_reported_dtype(srv),
                },
            }
            if dataset is not None:
                try:
                    run["gsm8k"] = gsm8k.evaluate(
                        cfg, srv.url, dataset, f"{role}-{dtype}",
                        run_dir / "gsm8k" / f"{role}-{dtype}.jsonl",
                    )  # fmt: skip
                except RequestFailed:
                    srv.check_alive()
                    raise
            if "throughput" in which:
                run["levels"] = run_throughput(cfg, srv, run_dir / "bench", f"{role}-{dtype}")
            runs[role] = run
    status = 0
    if dataset is not None:
        status |= _accuracy_report(cfg, runs, dataset, meta, run_dir)
    if "throughput" in which:
        status |= _throughput_report(cfg, runs, meta, run_dir)
    return status


def _accuracy_report(
    cfg: GatesConfig,
    runs: dict[str, Any],
    dataset: gsm8k.Dataset,
    meta: dict[str, Any],
    d: Path,
) -> int:
    a = cfg.accuracy
    key = f"accuracy_{a.metric}"
    base, cand = runs["baseline"]["gsm8k"], runs["candidate"]["gsm8k"]
    checks = rules.accuracy_checks(
        base[key], cand[key], cand[f"invalid_{a.metric}"],
        floor=a.floor, tolerance=a.tolerance, max_invalid=a.max_invalid,
    )  # fmt: skip
    passed = all(c.passed for c in checks)
    report = {
        "gate": "accuracy",
        "passed": passed,
        "metric": a.metric,
        "num_questions": base["num_questions"],
        "num_shots": a.num_shots,
        "fewshot": a.fewshot_path or str(gsm8k.BUILTIN_FEWSHOT.name),
        "dataset": {
            "source": dataset.source,
            "sha256": dataset.sha256,
            "verified": dataset.verified,
        },
        "checks": [c.as_dict() for c in checks],
        "runs": {role: {k: v for k, v in r.items() if k != "levels"} for role, r in runs.items()},
        **meta,
    }
    write_json(d / "accuracy.json", report)
    md = accuracy_markdown(report, checks)
    (d / "accuracy.md").write_text(md)
    print(md)
    return 0 if passed else 1


def _throughput_report(
    cfg: GatesConfig, runs: dict[str, Any], meta: dict[str, Any], d: Path
) -> int:
    t = cfg.throughput
    base, cand = runs["baseline"], runs["candidate"]
    checks = rules.throughput_checks(
        baseline_high_tput=_median(base, t.high, "output_throughput"),
        candidate_high_tput=_median(cand, t.high, "output_throughput"),
        baseline_low_tpot=_median(base, t.low, "median_tpot_ms"),
        candidate_low_tpot=_median(cand, t.low, "median_tpot_ms"),
        baseline_kv_tokens=base["server"]["kv_tokens"],
        candidate_kv_tokens=cand["server"]["kv_tokens"],
        min_throughput_ratio=t.min_throughput_ratio,
        max_tpot_ratio=t.max_tpot_ratio,
        min_kv_ratio=t.min_kv_ratio,
    )
    passed = all(c.passed for c in checks)
    report: dict[str, Any] = {
        "gate": "throughput",
        "passed": passed,
        "settings": {
            "dataset_name": t.dataset_name,
            "input_len": t.input_len,
            "output_len": t.output_len,
            "seed": t.seed,
            "repeats": t.repeats,
            "levels": t.levels,
            "low": t.low,
            "high": t.high,
            "num_prompts": {str(c): bench.num_prompts(cfg, c) for c in t.levels},
        },
        "checks": [c.as_dict() for c in checks],
        "runs": {role: {k: v for k, v in r.items() if k != "gsm8k"} for role, r in runs.items()},
        **meta,
    }
    png = d / "throughput.png"
    try:
        plot_throughput(report, png)
        report["plot"] = str(png)
    except ImportError as exc:
        report["plot_error"] = f"matplotlib not importable ({exc}); pip install matplotlib"
    write_json(d / "throughput.json", report)
    md = throughput_markdown(report, checks)
    (d / "throughput.md").write_text(md)
    print(md)
    return 0 if passed else 1
