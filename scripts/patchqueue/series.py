"""patches/series: one patch file name per line, in apply order; `#` starts a comment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from scripts.patchqueue.report import Problem

DEFAULT_HEADER = """\
# patches/series: the patch queue, applied in this order by `make apply` (git am, no fuzz).
# One patch file name per line, relative to patches/; '#' starts a comment.
# `make refresh` rewrites the entries and keeps this leading comment block. See docs/queue.md.
"""


@dataclass(frozen=True)
class Entry:
    name: str
    line: int


def parse_series(path: Path) -> tuple[list[Entry], list[Problem]]:
    """The entries of a series file, and the lines that are not valid entries."""
    entries: list[Entry] = []
    problems: list[Problem] = []
    label, pdir = f"{path.parent.name}/{path.name}", f"{path.parent.name}/"
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        name = fields[0]
        if len(fields) > 1:
            problems.append(
                Problem(
                    "series-syntax",
                    f"{label} line {lineno}: {line!r} has options; only a file name is "
                    "allowed (every patch applies with -p1)",
                    file=label,
                    line=lineno,
                )
            )
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts:
            problems.append(
                Problem(
                    "series-syntax",
                    f"{label} line {lineno}: {name!r} must be a path inside {pdir}",
                    file=label,
                    line=lineno,
                )
            )
            continue
        entries.append(Entry(name, lineno))
    return entries, problems


def lint_series(patches_dir: Path) -> tuple[list[Entry], list[Problem]]:
    """Series problems: missing file, missing entries, duplicates, unlisted .patch files.

    Returns the entries that exist (first occurrence of each) so later steps can go on.
    """
    series = patches_dir / "series"
    label, pdir = f"{patches_dir.name}/series", f"{patches_dir.name}/"
    if not series.is_file():
        return [], [
            Problem(
                "series-missing",
                f"{series} does not exist: create it (an empty file is ok)",
            )
        ]
    entries, problems = parse_series(series)
    seen: dict[str, int] = {}
    usable: list[Entry] = []
    for e in entries:
        if e.name in seen:
            problems.append(
                Problem(
                    "duplicate-entry",
                    f"listed twice in {label} (lines {seen[e.name]} and {e.line}): delete one line",
                    patch=e.name,
                    file=label,
                    line=e.line,
                )
            )
            continue
        seen[e.name] = e.line
        if not (patches_dir / e.name).is_file():
            problems.append(
                Problem(
                    "missing-patch",
                    f"{label} line {e.line} names {e.name}, which does not exist in "
                    f"{pdir}: restore the file or delete the line",
                    patch=e.name,
                    file=label,
                    line=e.line,
                )
            )
            continue
        usable.append(e)
    for path in sorted(patches_dir.rglob("*.patch")):
        rel = path.relative_to(patches_dir).as_posix()
        if rel not in seen:
            problems.append(
                Problem(
                    "unlisted-patch",
                    f"{pdir}{rel} is not listed in {label}: add it to the series or delete it",
                    patch=rel,
                )
            )
    return usable, problems


def series_header(path: Path) -> str:
    """The leading comment block of an existing series file (kept by `make refresh`)."""
    if not path.is_file():
        return DEFAULT_HEADER
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("#") or (not raw.strip() and lines):
            lines.append(raw)
        else:
            break
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n" if lines else DEFAULT_HEADER


def write_series(path: Path, names: list[str]) -> None:
    header = series_header(path)
    path.write_text(header + "".join(f"{n}\n" for n in names), encoding="utf-8")
