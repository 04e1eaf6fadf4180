"""Write the JSON report (everything) and a short Markdown summary (what a reviewer reads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scripts.gates.rules import Check


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def checks_table(checks: list[Check]) -> list[str]:
    lines = ["| check | result | value | limit |", "|---|---|---|---|"]
    for c in checks:
        mark = "PASS" if c.passed else "FAIL"
        lines.append(f"| {c.name} | **{mark}** | {_fmt(c.value)} | {_fmt(c.limit)} |")
    return lines


def accuracy_markdown(report: dict[str, Any], checks: list[Check]) -> str:
    verdict = "PASS" if report["passed"] else "FAIL"
    ds = report["dataset"]
    lines = [
        f"# GSM8K accuracy gate: {verdict}",
        "",
        (
            f"{report['num_questions']} questions, {report['num_shots']}-shot, greedy; gate "
            f"metric: {report['metric']} match. Data: `{ds['source']}` (sha256 "
            f"{ds['sha256'][:12]}…, {'verified' if ds['verified'] else 'NOT the pinned checksum'})."
        ),
        "",
        "| run | KV dtype | flexible acc | strict acc | invalid (flex) | KV #tokens | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for role in ("baseline", "candidate"):
        r = report["runs"][role]
        g = r["gsm8k"]
        lines.append(
            f"| {role} | {r['kv_dtype']} | {_fmt(g['accuracy_flexible'])} | "
            f"{_fmt(g['accuracy_strict'])} | {_fmt(g['invalid_flexible'])} | "
            f"{_fmt(r['server'].get('kv_tokens'))} | {_fmt(g['wall_s'], 1)} |"
        )
    return "\n".join(lines + ["", *checks_table(checks), ""])


def throughput_markdown(report: dict[str, Any], checks: list[Check]) -> str:
    verdict = "PASS" if report["passed"] else "FAIL"
    t = report["settings"]
    lines = [
        f"# Throughput gate: {verdict}",
        "",
        (
            f"bench_serving {t['dataset_name']}, input {t['input_len']} / output "
            f"{t['output_len']} tokens, seed {t['seed']}, {t['repeats']} repeat(s) per level; "
            "medians shown, spread = (max − min) / median."
        ),
        "",
        "| concurrency | run | output tok/s | spread | median TPOT ms | spread | P99 TTFT ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for level in t["levels"]:
        for role in ("baseline", "candidate"):
            run = report["runs"][role]
            agg = run["levels"][str(level)]["aggregate"]
            tp, tpot = agg["output_throughput"], agg["median_tpot_ms"]
            lines.append(
                f"| {level} | {role} ({run['kv_dtype']}) | {_fmt(tp['median'], 1)} | "
                f"{_fmt(tp['spread'], 3)} | {_fmt(tpot['median'], 2)} | {_fmt(tpot['spread'], 3)} |"
                f" {_fmt(agg['p99_ttft_ms']['median'], 1)} |"
            )
    kv = " / ".join(
        f"{role} {_fmt(report['runs'][role]['server'].get('kv_tokens'))}"
        for role in ("baseline", "candidate")
    )
    lines += ["", f"KV capacity (#tokens): {kv}", "", *checks_table(checks)]
    if report.get("plot"):
        lines += ["", f"![throughput vs concurrency]({Path(report['plot']).name})"]
    elif report.get("plot_error"):
        lines += ["", f"Plot not written: {report['plot_error']}"]
    return "\n".join(lines + [""])
