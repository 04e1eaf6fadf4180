"""Write the JSON report (everything) and a short Markdown summary (what a reviewer reads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scripts.gates.environment import markdown as environment_markdown
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
        environment_markdown(report.get("environment", {})),
        "",
        "| run | KV dtype | flexible acc | strict acc | invalid (flex) | sglang scorer acc "
        "| KV #tokens | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for role, r in report["runs"].items():
        g = r["gsm8k"]
        scorer = r.get("sglang_gsm8k") or {}
        lines.append(
            f"| {role} | {r['kv_dtype']} | {_fmt(g['accuracy_flexible'])} | "
            f"{_fmt(g['accuracy_strict'])} | {_fmt(g['invalid_flexible'])} | "
            f"{_fmt(scorer.get('accuracy'))} | "
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
            "medians shown, spread = (max − min) / median. High concurrency "
            f"{t['high']} ({t.get('high_from', 'throughput.high')}); radix cache "
            f"{'on' if t.get('radix_cache') else 'off'}; MTP {'on' if t.get('mtp') else 'off'}."
        ),
        "",
        environment_markdown(report.get("environment", {})),
        "",
        "| concurrency | run | output tok/s | spread | median TPOT ms | spread | P99 TTFT ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for level in t["levels"]:
        for role, run in report["runs"].items():
            agg = run["levels"][str(level)]["aggregate"]
            tp, tpot = agg["output_throughput"], agg["median_tpot_ms"]
            lines.append(
                f"| {level} | {role} ({run['kv_dtype']}) | {_fmt(tp['median'], 1)} | "
                f"{_fmt(tp['spread'], 3)} | {_fmt(tpot['median'], 2)} | {_fmt(tpot['spread'], 3)} |"
                f" {_fmt(agg['p99_ttft_ms']['median'], 1)} |"
            )
    kv = " / ".join(
        f"{role} {_fmt(run['server'].get('kv_tokens'))}" for role, run in report["runs"].items()
    )
    lines += ["", f"KV capacity (#tokens): {kv}", "", *checks_table(checks)]
    if report.get("plot"):
        lines += ["", f"![throughput vs concurrency]({Path(report['plot']).name})"]
    elif report.get("plot_error"):
        lines += ["", f"Plot not written: {report['plot_error']}"]
    return "\n".join(lines + [""])


def incomplete_markdown(report: dict[str, Any]) -> str:
    """A run that crashed in a later phase: what failed, and what the earlier phases measured."""
    lines = [
        f"# Gates INCOMPLETE: phase {report['failed_phase']} failed",
        "",
        f"Error: {report['error']}",
        "",
        environment_markdown(report.get("environment", {})),
        "",
    ]
    if not report["runs"]:
        lines.append("No phase completed.")
    for role, r in report["runs"].items():
        lines.append(f"## {role} ({r['kv_dtype']}): completed")
        lines.append("")
        lines.append(f"- KV #tokens: {_fmt(r['server'].get('kv_tokens'))}")
        if "gsm8k" in r:
            g = r["gsm8k"]
            lines.append(
                f"- GSM8K: flexible {_fmt(g['accuracy_flexible'])}, strict "
                f"{_fmt(g['accuracy_strict'])}, invalid {_fmt(g['invalid_flexible'])}"
            )
        if "sglang_gsm8k" in r:
            lines.append(f"- GSM8K (sglang's scorer): {_fmt(r['sglang_gsm8k']['accuracy'])}")
        for level, data in r.get("levels", {}).items():
            agg = data["aggregate"]
            lines.append(
                f"- c={level}: output {_fmt(agg['output_throughput']['median'], 1)} tok/s, "
                f"median TPOT {_fmt(agg['median_tpot_ms']['median'], 2)} ms"
            )
        lines.append("")
    return "\n".join(lines)
