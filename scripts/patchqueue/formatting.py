"""`make queue-format`: the Python files the series touches pass sglang's own formatters.

sglang's `.pre-commit-config.yaml` runs black and isort (pinned in versions.env as BLACK_VERSION,
ISORT_VERSION) with black's defaults and isort's `.isort.cfg` (`profile=black`,
`known_first_party=sglang`). The files the series touches are black- and isort-clean at v0.5.9
as released, so whole files are checked, in the tree the series produces. Each line the
formatters would change is traced with `git blame` to the patch that wrote it; a line that comes
from the release itself only warns (only what the series writes counts).

This module runs the formatters as `python -m black` / `python -m isort` of the interpreter that
runs it (the .venv); the queue package itself stays standard-library only.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts.patchqueue.apply import AM_ARGS, QueueError, load_queue, require_base
from scripts.patchqueue.config import QueueConfig
from scripts.patchqueue.gitutil import git, out
from scripts.patchqueue.report import Problem, Report, say
from scripts.pins import require

# sglang's .isort.cfg (repository root), as isort reads it.
ISORT_CFG = "[settings]\nprofile=black\nknown_first_party=sglang\n"
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@")


def tool_version(module: str) -> str | None:
    proc = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True
    )
    m = re.search(r"(\d+\.\d+\.\d+)", proc.stdout + proc.stderr)
    return m.group(1) if proc.returncode == 0 and m else None


def check_tools(cfg: QueueConfig) -> dict[str, str]:
    """The pinned black and isort must be the ones importable here (they change output)."""
    black, isort = require(cfg.lock, "BLACK_VERSION", "ISORT_VERSION")
    wrong = []
    for module, want in (("black", black), ("isort", isort)):
        have = tool_version(module)
        if have != want:
            wrong.append(f"{module} {have or 'missing'} (versions.env pins {want})")
    if wrong:
        raise QueueError(
            f"{sys.executable} has {', '.join(wrong)}: run `make env` (or "
            f"`{sys.executable} -m pip install black=={black} isort=={isort}`)"
        )
    return {"black": black, "isort": isort}


def changed_lines(diff: str) -> list[int]:
    """Lines of the original file that a unified diff removes or inserts next to."""
    lines: set[int] = set()
    old = 0
    for line in diff.splitlines():
        m = HUNK.match(line)
        if m:
            old = int(m.group(1))
            continue
        if not old or line.startswith(("---", "+++")):
            continue
        if line.startswith("-"):
            lines.add(old)
            old += 1
        elif line.startswith("+"):
            lines.add(max(old - 1, 1))  # an insertion belongs to the line above it
        elif line.startswith(" "):
            old += 1
    return sorted(lines)


def ranges(numbers: list[int]) -> str:
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def blame(work: Path, path: str) -> dict[int, str]:
    """Final line number -> commit that wrote it, at HEAD of the replay."""
    text = out(work, "blame", "--line-porcelain", "HEAD", "--", path)
    owner: dict[int, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([0-9a-f]{40}) \d+ (\d+)", line)
        if m:
            owner[int(m.group(2))] = m.group(1)
    return owner


def run_formatter(tool: str, work: Path, path: str, settings: Path) -> str:
    """The diff the formatter would apply to `path` ("" when the file is clean)."""
    if tool == "black":
        cmd = ["black", "--check", "--diff", "--quiet", "--config", str(settings / "black.toml")]
    else:
        cmd = ["isort", "--check-only", "--diff", "--quiet", "--settings-path", str(settings)]
    proc = subprocess.run(
        [sys.executable, "-m", *cmd, path], cwd=work, capture_output=True, text=True
    )
    if proc.returncode not in (0, 1):
        raise QueueError(f"{tool} failed on {path}: {proc.stderr.strip()}")
    return proc.stdout if proc.returncode == 1 else ""


def run_format(cfg: QueueConfig) -> Report:
    versions = check_tools(cfg)
    base = require_base(cfg)
    queue = load_queue(cfg)
    report = Report("format", data={"tree": str(cfg.tree), "tools": versions, "files": []})
    touched: list[str] = []
    for _, info in queue:
        for f in info.files:
            if f.new_path and f.new_path.endswith(".py") and f.new_path not in touched:
                touched.append(f.new_path)
    with tempfile.TemporaryDirectory(prefix="queue-format-") as tmp:
        settings = Path(tmp) / "settings"
        settings.mkdir()
        (settings / ".isort.cfg").write_text(ISORT_CFG, encoding="utf-8")
        (settings / "black.toml").write_text("[tool.black]\n", encoding="utf-8")  # defaults
        work = Path(tmp) / "work"
        git(cfg.tree, "worktree", "add", "--detach", "-f", str(work), base)
        try:
            patch_of = {}
            for entry, info in queue:
                am = git(work, *AM_ARGS, str(info.path), check=False)
                if am.returncode != 0:
                    git(work, "am", "--abort", check=False)
                    raise QueueError(
                        f"{entry.name} does not apply: run `make queue-check` for the details"
                    )
                patch_of[out(work, "rev-parse", "HEAD")] = entry.name
            for path in touched:
                if not (work / path).is_file():
                    continue  # deleted by a later patch
                report.data["files"].append(path)
                _check_file(cfg, work, path, settings, patch_of, versions, report)
        finally:
            git(cfg.tree, "worktree", "remove", "--force", str(work), check=False)
    say(
        "format",
        f"{len(report.data['files'])} file(s) the series touches; black {versions['black']}, "
        f"isort {versions['isort']} (sglang's configuration)",
    )
    return report


def _check_file(
    cfg: QueueConfig,
    work: Path,
    path: str,
    settings: Path,
    patch_of: dict[str, str],
    versions: dict[str, str],
    report: Report,
) -> None:
    owner: dict[int, str] | None = None
    for tool in ("isort", "black"):
        diff = run_formatter(tool, work, path, settings)
        if not diff:
            continue
        owner = owner or blame(work, path)
        by_patch: dict[str | None, list[int]] = {}
        for n in changed_lines(diff):
            by_patch.setdefault(patch_of.get(owner.get(n, "")), []).append(n)
        fix = f"{sys.executable} -m " + (
            f"black {path}" if tool == "black" else f"isort --profile black --project sglang {path}"
        )
        for patch, lines in by_patch.items():
            if patch is None:
                # Lines of the release itself: not the series' to fix, so only a warning.
                report.add(
                    Problem(
                        f"not-{tool}-clean",
                        f"{tool} {versions[tool]} would change line(s) {ranges(lines)}, which "
                        f"come from {cfg.base_ref}, not from a patch (not counted)",
                        file=path,
                        line=lines[0],
                        severity="warning",
                    )
                )
                continue
            report.add(
                Problem(
                    f"not-{tool}-clean",
                    f"{tool} {versions[tool]} would change line(s) {ranges(lines)} that this "
                    f"patch wrote. Fix: `make apply`, then in {cfg.shown(cfg.tree)}: `{fix}`, "
                    "commit that into the patch (`git commit --fixup <its commit>`, "
                    "`git rebase -i --autosquash`), `make refresh`",
                    patch=patch,
                    file=path,
                    line=lines[0],
                )
            )
