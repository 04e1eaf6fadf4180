"""Markdown summary of a pipeline run, for $GITHUB_STEP_SUMMARY (ci/summary.sh).

    python3 -m scripts.ci.summary --reports reports [gfx942 gfx950]

Reads reports/ci/<arch>/steps.tsv (one `step<TAB>pass|fail<TAB>seconds<TAB>log` line per step,
written by ci/lib.sh) and reports/ci/<arch>/image-tag, and appends the gates' own Markdown
reports found under reports/<arch>/, and the image record reports/ci/<arch>/image.json (base
digest used; the versions.env line to commit when the base was not pinned). Missing files are
shown as such, never guessed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

_MARK = {"pass": "✅ pass", "fail": "❌ fail"}


@dataclass(frozen=True)
class Step:
    name: str
    outcome: str
    seconds: int
    log: str


class SummaryError(ValueError):
    """A steps.tsv line is malformed."""


def read_steps(path: Path) -> list[Step]:
    steps = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        fields = raw.split("\t")
        if len(fields) != 4 or fields[1] not in _MARK or not fields[2].isdigit():
            raise SummaryError(f"{path}:{lineno}: {raw!r} is not step<TAB>pass|fail<TAB>s<TAB>log")
        steps.append(Step(fields[0], fields[1], int(fields[2]), fields[3]))
    return steps


def _duration(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def arch_section(reports: Path, arch: str) -> tuple[str, bool]:
    """Markdown for one arch, and whether every recorded step passed."""
    ci_dir = reports / "ci" / arch
    lines = [f"## {arch}", ""]
    tag_file = ci_dir / "image-tag"
    if tag_file.is_file():
        lines += [f"Image: `{tag_file.read_text(encoding='utf-8').strip()}`", ""]
    elif arch.startswith("gfx"):
        lines += ["Image: not built", ""]
    record_file = ci_dir / "image.json"
    if record_file.is_file():
        record = json.loads(record_file.read_text(encoding="utf-8"))
        lines += [f"Base: `{record.get('base_image')}`", ""]
        if record.get("pin_line"):
            lines += [
                "The base was not pinned; commit this line to versions.env:",
                "",
                f"    {record['pin_line']}",
                "",
            ]
    steps_file = ci_dir / "steps.tsv"
    steps = read_steps(steps_file) if steps_file.is_file() else []
    if steps:
        lines += ["| step | result | time | log |", "|---|---|---|---|"]
        lines += [
            f"| {s.name} | {_MARK[s.outcome]} | {_duration(s.seconds)} | `{s.log}` |" for s in steps
        ]
    else:
        lines.append("No step recorded.")
    ok = bool(steps) and all(s.outcome == "pass" for s in steps)
    for report in sorted((reports / arch).rglob("*.md")) if (reports / arch).is_dir() else []:
        lines += ["", f"### {report.relative_to(reports)}", "", report.read_text().strip()]
    return "\n".join(lines) + "\n", ok


def summary(reports: Path, arches: list[str]) -> tuple[str, bool]:
    if not arches:
        ci_root = reports / "ci"
        arches = sorted(p.name for p in ci_root.iterdir() if p.is_dir()) if ci_root.is_dir() else []
    if not arches:
        return f"# sglang-nsa-fp8 pipeline\n\nNo results under {reports}/ci.\n", False
    sections = [arch_section(reports, arch) for arch in arches]
    verdict = "all steps passed" if all(ok for _, ok in sections) else "some steps failed"
    body = "\n".join(text for text, _ in sections)
    return f"# sglang-nsa-fp8 pipeline: {verdict}\n\n{body}", all(ok for _, ok in sections)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Markdown summary of the ci/ pipeline")
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument("arches", nargs="*", help="default: every folder under REPORTS/ci")
    args = parser.parse_args(argv)
    try:
        text, _ = summary(args.reports, args.arches)
    except SummaryError as exc:
        print(f"ci summary: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
