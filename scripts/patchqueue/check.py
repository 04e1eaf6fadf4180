"""`make check` (queue part): lint the series and every patch, then replay the queue in a scratch
worktree one patch at a time: exact apply (no fuzz, no offset), no whitespace errors, each touched
Python file byte-compiles after each patch, and no patch is already in the base."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from scripts.patchqueue.apply import (
    AM_ARGS,
    QueueError,
    corrupt_problem,
    failed_hunk_problem,
    require_base,
)
from scripts.patchqueue.config import QueueConfig
from scripts.patchqueue.gitutil import git
from scripts.patchqueue.patchfile import PatchInfo, lint_header, read_patch
from scripts.patchqueue.report import Problem, Report, say
from scripts.patchqueue.series import lint_series

OFFSET = re.compile(
    r"Checking patch (.+?)\.\.\.|Hunk #(\d+) succeeded at (\d+) (?:\(offset (-?\d+) lines?\))?"
)
WHITESPACE = re.compile(
    r"^[^:\n]*:(\d+): (trailing whitespace|space before tab in indent|new blank line at EOF"
    r"|indent with spaces)\.?",
    re.M,
)


def byte_compile(worktree: Path, info: PatchInfo) -> list[Problem]:
    """Compile every .py file the patch creates or changes, as it is after the patch."""
    probs = []
    for f in info.files:
        if not f.new_path or not f.new_path.endswith(".py"):
            continue
        src = (worktree / f.new_path).read_bytes()
        try:
            compile(src, f.new_path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
            msg = getattr(exc, "msg", str(exc))
            probs.append(
                Problem(
                    "byte-compile",
                    f"does not byte-compile after this patch: {msg}",
                    patch=info.name,
                    file=f.new_path,
                    line=line,
                )
            )
    return probs


def offsets(info: PatchInfo, verbose: str) -> list[Problem]:
    """Hunks that git applied at another line than the patch says (it reports an offset)."""
    probs, current = [], None
    for m in OFFSET.finditer(verbose):
        if m.group(1):
            current = m.group(1)
        elif m.group(4) and current:
            n, at, off = int(m.group(2)), int(m.group(3)), int(m.group(4))
            probs.append(
                Problem(
                    "offset",
                    f"hunk #{n} applies only at line {at} (offset {off}): the patch is stale; "
                    "re-export it with `make apply` + `make refresh`",
                    patch=info.name,
                    file=current,
                    line=at,
                    hunk=n,
                )
            )
    return probs


def apply_problem(info: PatchInfo, stderr: str) -> Problem:
    """Why `git apply --check -v PATCHFILE` failed: a corrupt hunk or one whose context is
    missing, named by patch, file and hunk (the same diagnosis `make apply` prints)."""
    corrupt = corrupt_problem(info, stderr)
    if corrupt:
        return corrupt
    failed = failed_hunk_problem(
        info,
        stderr,
        "its context is not in the tree; rebase the patch in build/sglang and `make refresh`",
    )
    if failed:
        return failed
    errs = [ln[7:] for ln in stderr.splitlines() if ln.startswith("error: ")]
    return Problem("does-not-apply", "; ".join(errs) or stderr.strip(), patch=info.name)


def already_upstream(cfg: QueueConfig, base: str, info: PatchInfo, index: Path) -> Problem | None:
    """A patch whose reverse applies to the base is (already) in upstream."""
    env = {"GIT_INDEX_FILE": str(index)}
    proc = git(
        cfg.tree,
        "apply",
        "--cached",
        "--check",
        "-R",
        str(info.path),
        env=env,
        check=False,
    )
    if proc.returncode == 0:
        return Problem(
            "already-upstream",
            f"its changes are already in {cfg.base_ref} (it reverse-applies to the base): "
            f"drop it from {cfg.shown(cfg.series)}",
            patch=info.name,
        )
    return None


def run_check(cfg: QueueConfig) -> Report:
    report = Report("check", data={"tree": str(cfg.tree), "patches": []})
    entries, problems = lint_series(cfg.patches_dir)
    report.add(*problems)
    queue = []
    for e in entries:
        info = read_patch(cfg.patches_dir / e.name, e.name)
        report.add(*lint_header(info))
        queue.append(info)
    say(
        "check",
        f"series: {len(entries)} patch(es); {len(report.problems)} lint problem(s)",
    )
    try:
        base = require_base(cfg)
    except QueueError as exc:
        report.add(Problem("no-base", str(exc)))
        return report
    report.data["base"] = {"ref": cfg.base_ref, "commit": base}
    with tempfile.TemporaryDirectory(prefix="queue-check-") as tmp:
        work, index = Path(tmp) / "work", Path(tmp) / "base-index"
        git(cfg.tree, "read-tree", base, env={"GIT_INDEX_FILE": str(index)})
        git(cfg.tree, "worktree", "add", "--detach", "-f", str(work), base)
        try:
            _replay(cfg, base, queue, work, index, report)
        finally:
            git(cfg.tree, "worktree", "remove", "--force", str(work), check=False)
            git(cfg.tree, "worktree", "prune", check=False)
    return report


def _replay(
    cfg: QueueConfig,
    base: str,
    queue: list[PatchInfo],
    work: Path,
    index: Path,
    report: Report,
) -> None:
    for n, info in enumerate(queue, 1):
        status = {
            "name": info.name,
            "subject": info.subject,
            "status": info.status_value,
        }
        report.data["patches"].append(status)
        if info.mails != 1 or not info.files:
            status["result"] = "not applied (malformed)"
            say(
                "check",
                f"{n}/{len(queue)} {info.name}: malformed, later patches not replayed",
            )
            return
        before = len(report.problems)
        up = already_upstream(cfg, base, info, index)
        if up:
            report.add(up)
        verbose = git(work, "apply", "--check", "-v", str(info.path), check=False)
        if verbose.returncode != 0:
            report.add(apply_problem(info, verbose.stderr))
            status["result"] = "does not apply"
            say(
                "check",
                f"{n}/{len(queue)} {info.name}: DOES NOT APPLY; later patches not replayed",
            )
            return
        report.add(*offsets(info, verbose.stderr))
        ws = git(
            work,
            "apply",
            "--check",
            "--whitespace=error-all",
            str(info.path),
            check=False,
        )
        if ws.returncode != 0:
            for m in WHITESPACE.finditer(ws.stderr):
                report.add(
                    Problem(
                        "whitespace",
                        f"{m.group(2)} at line {m.group(1)} of the patch file",
                        patch=info.name,
                    )
                )
            if len(report.problems) == before:
                report.add(Problem("whitespace", ws.stderr.strip(), patch=info.name))
        am = git(work, *AM_ARGS, str(info.path), check=False)
        if am.returncode != 0:
            report.add(
                Problem(
                    "does-not-apply",
                    "git am failed: " + am.stderr.strip(),
                    patch=info.name,
                )
            )
            git(work, "am", "--abort", check=False)
            return
        report.add(*byte_compile(work, info))
        mine = report.problems[before:]
        status["result"] = "ok" if not mine else f"{len(mine)} problem(s)"
        say("check", f"{n}/{len(queue)} {info.name}: {status['result']}")
