"""Orchestration: baseline server, then candidate server (then, if configured, the unpatched
upstream server), back to back; each runs the selected gates (so `make gates` loads each server
configuration once); then verdicts and reports.

Nothing is created on disk before the pre-flight checks and the data pass; after each server
phase the results so far are saved (runs.json), and a phase that crashes leaves an
incomplete.md/.json with the earlier phases' summary."""

from __future__ import annotations

import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

from scripts.gates import bench, environment, gsm8k, preflight, rules, sglang_scorer, stats
from scripts.gates.config import GatesConfig, as_dict
from scripts.gates.errors import GateError, RequestFailed, ServerError
from scripts.gates.plot import plot_throughput
from scripts.gates.progress import Progress
from scripts.gates.report import (
    accuracy_markdown,
    incomplete_markdown,
    throughput_markdown,
    write_json,
)
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


def high_concurrency(cfg: GatesConfig, baseline_kv_tokens: int | None) -> int:
    """throughput.high, or (when 0) the concurrency whose requests need high_kv_load times the
    baseline's KV capacity: BF16 must queue or preempt there, FP8's ~1.8x need not."""
    t = cfg.throughput
    if t.high:
        return t.high
    if not baseline_kv_tokens:
        raise ServerError(
            "throughput.high = 0 sizes the load from the baseline's KV capacity, but its log has "
            "no 'KV Cache is allocated. #tokens: N' line; set throughput.high explicitly"
        )
    return max(1, math.ceil(t.high_kv_load * baseline_kv_tokens / (t.input_len + t.output_len)))


def levels_for(cfg: GatesConfig, high: int) -> list[int]:
    return sorted(set(cfg.throughput.levels) | {high})


def run_throughput(
    cfg: GatesConfig, srv: Server, out_dir: Path, label: str, levels: list[int]
) -> dict[str, Any]:
    t = cfg.throughput
    progress = Progress(f"bench {label}", len(levels) * t.repeats)
    result: dict[str, Any] = {}
    try:
        for level in levels:
            runs = []
            for rep in range(t.repeats):
                # Radix cache on (production default): a fresh seed per repeat and an empty
                # cache, so no repeat is served from the previous one's prefixes.
                srv.flush_cache()
                try:
                    runs.append(
                        bench.run_bench(
                            cfg, srv.url, level, out_dir, f"{label}-c{level}-r{rep}", t.seed + rep
                        )
                    )
                except GateError:
                    srv.check_alive()  # a dead server is the better explanation
                    raise
                progress.update(note=f"c={level} {runs[-1]['output_throughput']:.1f} tok/s")
            result[str(level)] = {"runs": runs, "aggregate": stats.aggregate(runs)}
    finally:
        progress.close()
    return result


def _median(run: dict[str, Any], level: int, metric: str) -> float | None:
    return run["levels"][str(level)]["aggregate"][metric]["median"]


def roles(cfg: GatesConfig) -> list[tuple[str, str, list[str] | None, list[str]]]:
    """(role, KV dtype, launch prefix or None for server.launch, stop command) in run order."""
    out: list[tuple[str, str, list[str] | None, list[str]]] = [
        ("baseline", cfg.runs.baseline_kv_dtype, None, []),
        ("candidate", cfg.runs.candidate_kv_dtype, None, []),
    ]
    if cfg.upstream.launch:
        out.append(("upstream", cfg.runs.baseline_kv_dtype, cfg.upstream.launch, cfg.upstream.stop))
    return out


def _server_python(cfg: GatesConfig) -> str:
    argv = cfg.expand(cfg.server.launch)
    return argv[0] if argv and "-m" in argv else sys.executable


def run_gates(
    cfg: GatesConfig,
    which: tuple[str, ...],
    *,
    data_path: str | None = None,
    report_dir: str | None = None,
) -> int:
    """Returns 0 if every selected gate passed, 1 if one failed. Infrastructure errors raise."""
    preflight.check(cfg, which, data_path)
    dataset = gsm8k.load_test_split(cfg, data_path) if "accuracy" in which else None
    if dataset is not None:
        gsm8k.load_fewshot(cfg)  # fail on a bad few-shot setting before loading any model
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = cfg.resolve_path(report_dir or cfg.report.dir) / f"gates-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"[gates] reports and logs: {run_dir}")
    env = environment.collect(_server_python(cfg))
    print(f"[gates] {environment.markdown(env)}")
    meta = {
        "started": stamp,
        "host": platform.node(),
        "environment": env,
        "config_file": cfg.source,
        "config": as_dict(cfg),
    }
    runs: dict[str, dict[str, Any]] = {}
    high: int | None = None
    phase = ""
    try:
        for role, dtype, launch, stop in roles(cfg):
            phase = f"{role} ({dtype})"
            log = run_dir / "logs" / f"server-{role}-{dtype}.log"
            with Server(cfg, dtype, log, launch=launch, stop_cmd=stop) as srv:
                assert srv.info is not None
                run: dict[str, Any] = {
                    "kv_dtype": dtype,
                    "command": build_command(cfg, dtype, launch),
                    "server": {
                        "kv_tokens": srv.info.kv_tokens,
                        "startup_s": round(srv.info.startup_s, 1),
                        "log": str(srv.info.log_path),
                        "dtype_check": check_reported_dtype(srv),
                    },
                }
                if dataset is not None:
                    run.update(_accuracy_phase(cfg, srv, dataset, run_dir, f"{role}-{dtype}"))
                if "throughput" in which:
                    if high is None:
                        high = high_concurrency(cfg, srv.info.kv_tokens)
                        print(f"[gates] high concurrency: {high}")
                    run["levels"] = run_throughput(
                        cfg, srv, run_dir / "bench", f"{role}-{dtype}", levels_for(cfg, high)
                    )
            runs[role] = run
            write_json(run_dir / "runs.json", {"completed": list(runs), "runs": runs, **meta})
    except BaseException as exc:  # GateError, Ctrl-C, SIGTERM: keep what the earlier phases got
        _incomplete_report(run_dir, runs, phase, exc, meta)
        raise
    status = 0
    if dataset is not None:
        status |= _accuracy_report(cfg, runs, dataset, meta, run_dir)
    if "throughput" in which:
        assert high is not None
        status |= _throughput_report(cfg, runs, meta, run_dir, high)
    return status


def _accuracy_phase(
    cfg: GatesConfig, srv: Server, dataset: gsm8k.Dataset, run_dir: Path, label: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        out["gsm8k"] = gsm8k.evaluate(
            cfg, srv.url, dataset, label, run_dir / "gsm8k" / f"{label}.jsonl"
        )
    except RequestFailed:
        srv.check_alive()
        raise
    if cfg.accuracy.sglang_scorer and dataset.path is not None:
        try:
            out["sglang_gsm8k"] = sglang_scorer.run(
                cfg, srv.url, dataset.path, run_dir / "gsm8k" / f"{label}-sglang-scorer.log"
            )
        except GateError:
            srv.check_alive()
            raise
    return out


def _incomplete_report(
    d: Path, runs: dict[str, Any], phase: str, exc: BaseException, meta: dict[str, Any]
) -> None:
    error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    report = {"completed": list(runs), "failed_phase": phase, "error": error, "runs": runs, **meta}
    write_json(d / "incomplete.json", report)
    md = incomplete_markdown(report)
    (d / "incomplete.md").write_text(md)
    print(md, file=sys.stderr)


def _upstream_checks(cfg: GatesConfig, runs: dict[str, Any], kind: str, **k: Any) -> list[Any]:
    if "upstream" not in runs:
        return []
    u, base, up = cfg.upstream, runs["baseline"], runs["upstream"]
    if kind == "accuracy":
        metric = f"accuracy_{cfg.accuracy.metric}"
        b, x = base["gsm8k"][metric], up["gsm8k"][metric]
        return [
            rules.Check(
                "patched BF16 accuracy >= upstream BF16 - tolerance",
                b + rules.EPS >= x - u.accuracy_tolerance,
                b,
                x - u.accuracy_tolerance,
                f"{b:.4f} vs upstream {x:.4f} - {u.accuracy_tolerance:.4f}",
            )
        ]
    high, low = k["high"], cfg.throughput.low
    metric = "output_throughput"
    tput = rules.ratio(_median(base, high, metric), _median(up, high, metric))
    tpot = rules.ratio(_median(base, low, "median_tpot_ms"), _median(up, low, "median_tpot_ms"))
    return [
        rules.Check(
            "patched/upstream BF16 output throughput at high concurrency",
            tput is not None and tput + rules.EPS >= u.min_throughput_ratio,
            tput,
            u.min_throughput_ratio,
            f"patched/upstream = {tput} (need >= {u.min_throughput_ratio})",
        ),
        rules.Check(
            "patched/upstream BF16 median TPOT at low concurrency",
            tpot is not None and tpot - rules.EPS <= u.max_tpot_ratio,
            tpot,
            u.max_tpot_ratio,
            f"patched/upstream = {tpot} (need <= {u.max_tpot_ratio})",
        ),
    ]


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
    scorer = runs["candidate"].get("sglang_gsm8k")
    if scorer is not None:
        checks.append(
            rules.Check(
                "candidate accuracy (sglang's scorer) >= floor",
                scorer["accuracy"] + rules.EPS >= a.floor,
                scorer["accuracy"],
                a.floor,
                f"{scorer['accuracy']:.4f} vs floor {a.floor:.4f} (the floor's own scorer)",
            )
        )
    checks += _upstream_checks(cfg, runs, "accuracy")
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
    cfg: GatesConfig, runs: dict[str, Any], meta: dict[str, Any], d: Path, high: int
) -> int:
    t = cfg.throughput
    base, cand = runs["baseline"], runs["candidate"]
    checks = rules.throughput_checks(
        baseline_high_tput=_median(base, high, "output_throughput"),
        candidate_high_tput=_median(cand, high, "output_throughput"),
        baseline_low_tpot=_median(base, t.low, "median_tpot_ms"),
        candidate_low_tpot=_median(cand, t.low, "median_tpot_ms"),
        baseline_kv_tokens=base["server"]["kv_tokens"],
        candidate_kv_tokens=cand["server"]["kv_tokens"],
        min_throughput_ratio=t.min_throughput_ratio,
        max_tpot_ratio=t.max_tpot_ratio,
        min_kv_ratio=t.min_kv_ratio,
    )
    checks += _upstream_checks(cfg, runs, "throughput", high=high)
    passed = all(c.passed for c in checks)
    levels = levels_for(cfg, high)
    report: dict[str, Any] = {
        "gate": "throughput",
        "passed": passed,
        "settings": {
            "dataset_name": t.dataset_name,
            "input_len": t.input_len,
            "output_len": t.output_len,
            "seed": t.seed,
            "repeats": t.repeats,
            "levels": levels,
            "low": t.low,
            "high": high,
            "high_from": (
                "throughput.high"
                if t.high
                else f"{t.high_kv_load} x baseline KV #tokens / (input_len + output_len)"
            ),
            "radix_cache": not cfg.server.disable_radix_cache,
            "mtp": cfg.server.mtp,
            "num_prompts": {str(c): bench.num_prompts(cfg, c) for c in levels},
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
