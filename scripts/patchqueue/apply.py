"""`make apply`: git am the series onto a fresh branch at the base, never clobbering work."""

from __future__ import annotations

import re
import time
from pathlib import Path

from scripts.patchqueue.config import QueueConfig
from scripts.patchqueue.gitutil import am_in_progress, dirty_files, git, is_repo, out, rev
from scripts.patchqueue.patchfile import PatchInfo, read_patch
from scripts.patchqueue.report import Problem, Report, say
from scripts.patchqueue.series import Entry, lint_series
from scripts.patchqueue.state import edited_since, load_state, save_state

# git am takes no fuzz and, with --no-3way, no merge: context must match exactly.
AM_ARGS = ["am", "--no-3way", "--committer-date-is-author-date", "--keep-non-patch"]


class QueueError(RuntimeError):
    """A refusal or failure; the message says what to do."""


def require_base(cfg: QueueConfig) -> str:
    if not is_repo(cfg.tree):
        raise QueueError(f"no upstream tree at {cfg.tree}: run `make source` first")
    base = rev(cfg.tree, cfg.base_ref)
    if not base:
        raise QueueError(
            f"{cfg.tree} has no tag {cfg.base_ref} (versions.env pins {cfg.tag}): run `make source`"
        )
    return base


def load_queue(cfg: QueueConfig) -> list[tuple[Entry, PatchInfo]]:
    """The series, parsed; refuse on series errors (a half-listed queue must not be applied)."""
    entries, problems = lint_series(cfg.patches_dir)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise QueueError(
            f"{cfg.shown(cfg.series)} has problems; fix them first (`make check` lists all):\n  "
            + "\n  ".join(str(p) for p in errors)
        )
    return [(e, read_patch(cfg.patches_dir / e.name, e.name)) for e in entries]


def branch_commits(cfg: QueueConfig, base: str) -> list[str] | None:
    """Commits base..branch, oldest first; None when the branch does not descend from base."""
    if not rev(cfg.tree, cfg.branch):
        return []
    if git(cfg.tree, "merge-base", "--is-ancestor", base, cfg.branch, check=False).returncode:
        return None
    text = out(cfg.tree, "rev-list", "--reverse", f"{base}..{cfg.branch}")
    return text.split() if text else []


def _norm(msg: str) -> str:
    return "\n".join(ln.rstrip() for ln in msg.strip().splitlines())


def _patch_id(cfg: QueueConfig, diff_text: str) -> str:
    proc = git(cfg.tree, "patch-id", "--verbatim", input=diff_text)
    return proc.stdout.split()[0] if proc.stdout.strip() else ""


def commit_key(cfg: QueueConfig, commit: str) -> tuple[str, str]:
    """What a commit contributes to the queue: its diff's patch-id and its message."""
    show = git(cfg.tree, "show", "--format=", "--no-color", "--no-renames", commit).stdout
    return _patch_id(cfg, show), _norm(out(cfg.tree, "log", "-1", "--format=%B", commit))


def patch_key(cfg: QueueConfig, info: PatchInfo) -> tuple[str, str]:
    """The same for a patch file, as `git am` would commit it."""
    want = info.subject + ("\n\n" + info.message if info.message.strip() else "")
    return _patch_id(cfg, info.diff), _norm(want)


def compare_branch(cfg: QueueConfig, base: str, queue: list[tuple[Entry, PatchInfo]]) -> str | None:
    """None when the branch holds exactly the queue (same diffs and messages), else why not."""
    commits = branch_commits(cfg, base)
    if commits is None:
        return f"{cfg.branch} does not start from {cfg.base_ref}"
    if len(commits) != len(queue):
        listed = f"{cfg.shown(cfg.series)} lists {len(queue)}"
        return f"{cfg.branch} has {len(commits)} commit(s), {listed}"
    for i, (commit, (entry, info)) in enumerate(zip(commits, queue), 1):
        have, want = commit_key(cfg, commit), patch_key(cfg, info)
        if have[0] != want[0]:
            return f"commit #{i} ({commit[:12]}) changes other lines than {entry.name}"
        if have[1] != want[1]:
            return f"commit #{i} ({commit[:12]}) has another message than {entry.name}"
    return None


def is_queue_prefix(
    cfg: QueueConfig, commits: list[str] | None, queue: list[tuple[Entry, PatchInfo]]
) -> bool:
    """True when the branch holds the first k < N patches of the queue and nothing else, e.g.
    after `git am --abort` or a stopped apply: rebuilding it from the queue loses nothing."""
    if commits is None or len(commits) >= len(queue):
        return False
    return all(commit_key(cfg, c) == patch_key(cfg, info) for c, (_, info) in zip(commits, queue))


def _refuse_busy(cfg: QueueConfig, force: bool) -> None:
    busy = am_in_progress(cfg.tree)
    if busy:
        raise QueueError(
            f"a {busy} is in progress in {cfg.tree}: finish it (`{busy} --continue`, then "
            f"`make refresh` to save the result) or drop it (`{busy} --abort`), then re-run"
        )
    dirty = dirty_files(cfg.tree)
    if dirty and not force:
        raise QueueError(
            f"{cfg.tree} has uncommitted changes:\n  "
            + "\n  ".join(dirty[:20])
            + "\nTo keep them: commit them there and run `make refresh`. "
            "To set them aside and re-apply: `make apply FORCE=1` (stashes them first)."
        )
    if dirty:
        git(cfg.tree, "stash", "push", "--include-untracked", "-m", "make apply FORCE=1")
        say(
            "apply",
            f"FORCE=1: stashed uncommitted changes (get them back: cd {cfg.tree} && git stash pop)",
        )


def failed_hunk_problem(info: PatchInfo, git_stderr: str, advice: str) -> Problem | None:
    """The hunk named by git's "error: patch failed: FILE:LINE", as a problem, or None."""
    m = re.search(r"error: patch failed: (.+):(\d+)", git_stderr)
    if not m:
        return None
    path, line = m.group(1), int(m.group(2))
    _, hunk = info.hunk_at(path, line)
    where = f"hunk #{hunk.index} {hunk.header}" if hunk else f"the hunk at line {line}"
    return Problem(
        "does-not-apply",
        f"{where} does not apply to {path}: {advice} (no fuzz, no 3-way)",
        patch=info.name,
        file=path,
        line=line,
        hunk=hunk.index if hunk else None,
    )


def corrupt_problem(info: PatchInfo, apply_stderr: str) -> Problem | None:
    """git's "corrupt patch at line N" (N: a line of the patch file, from `git apply` on the
    file itself: apply and check run the same command, so they name the same line and hunk)."""
    m = re.search(r"error: corrupt patch at line (\d+)", apply_stderr)
    if not m:
        return None
    n = int(m.group(1))
    path, hunk = info.hunk_before_line(n)
    where = f"hunk #{hunk.index} {hunk.header} of {path}" if hunk else "its diff"
    return Problem(
        "corrupt-patch",
        f"not a valid diff: {where} is broken (git stops reading at line {n} of the patch "
        "file; a hand edit that changed a hunk's line count?). Repair it by re-exporting "
        "(edit the commit in the tree, `make refresh`), never by hand",
        patch=info.name,
        file=path,
        hunk=hunk.index if hunk else None,
    )


def diagnose(cfg: QueueConfig, info: PatchInfo, am_output: str) -> Problem:
    """Name the file and hunk that stopped git am (git apply -v at the current HEAD)."""
    check = git(cfg.tree, "apply", "--check", "-v", str(info.path), check=False)
    corrupt = corrupt_problem(info, check.stderr)
    if corrupt:
        return corrupt
    text = check.stderr + "\n" + am_output
    failed = failed_hunk_problem(info, text, "its context lines are not in the tree")
    if failed:
        return failed
    m = re.search(
        r"error: (.+?): (does not exist in index|already exists in (?:index|working directory)"
        r"|No such file or directory)",
        text,
    )
    if m:
        return Problem(
            "does-not-apply",
            f"{m.group(1)}: {m.group(2)}",
            patch=info.name,
            file=m.group(1),
        )
    last = [ln for ln in text.splitlines() if ln.strip()][-3:]
    return Problem("does-not-apply", "git am failed: " + " | ".join(last), patch=info.name)


def _differing_branch(
    cfg: QueueConfig,
    base: str,
    queue: list[tuple[Entry, PatchInfo]],
    why: str,
    force: bool,
    report: Report,
) -> None:
    """Decide what to do with an nsa-fp8 that differs from the queue; refuse if work would go."""
    commits = branch_commits(cfg, base)
    if is_queue_prefix(cfg, commits, queue):
        say(
            "apply",
            f"{cfg.branch} holds only the first {len(commits or [])} of the {len(queue)} "
            f"patch(es) (a stopped or aborted apply): rebuilding it from {cfg.shown(cfg.series)}",
        )
        return
    names = [e.name for e, _ in queue]
    state = load_state(cfg.tree, cfg.branch, cfg.patches_dir)
    tip = rev(cfg.tree, cfg.branch)
    untouched = state is not None and state.tip == tip
    edited = edited_since(state, cfg.patches_dir, names)
    if not force and not untouched:
        lines = [f"{cfg.tree}: branch {cfg.branch} differs from {cfg.shown(cfg.series)} ({why})."]
        if edited:
            lines.append(
                "Both sides changed since the last apply/refresh: the branch has new commits and "
                f"these patch files were edited: {', '.join(edited)}. No command keeps both: "
                "move the file edits into the tree (commit them there), then `make refresh`; or "
                "`make apply FORCE=1` to rebuild from the files (the branch is saved first)."
            )
        elif commits is not None and len(commits) < len(queue):
            lines.append(
                f"{cfg.branch} holds {len(commits)} commit(s), fewer than the {len(queue)} "
                "patch(es) listed: `make refresh` would drop patch files, so it refuses. "
                "To rebuild the branch from the files: `make apply FORCE=1` (the branch is saved "
                "first). If you meant to drop those patches: `make refresh ALLOW_DROP=1`."
            )
        else:
            lines.append(
                f"To keep that work: `make refresh` (writes {cfg.branch} into "
                f"{cfg.shown(cfg.patches_dir)}). To replace it by the queue: `make apply FORCE=1` "
                "(saves it as a backup branch first)."
            )
        raise QueueError("\n".join(lines))
    stamp = f"{cfg.branch}-backup-{time.strftime('%Y%m%d-%H%M%S')}"
    backup, n = stamp, 1
    while rev(cfg.tree, backup):  # never overwrite an earlier backup
        n += 1
        backup = f"{stamp}-{n}"
    git(cfg.tree, "branch", backup, cfg.branch)
    reason = (
        "FORCE=1"
        if force
        else f"{cfg.shown(cfg.patches_dir)} changed since the branch was built, the branch did not"
    )
    say("apply", f"{reason}: saved the old {cfg.branch} as branch {backup} ({why})")
    report.data["backup_branch"] = backup


def run_apply(cfg: QueueConfig, force: bool = False) -> Report:
    report = Report("apply", data={"tree": str(cfg.tree), "branch": cfg.branch})
    base = require_base(cfg)
    report.data["base"] = {"ref": cfg.base_ref, "commit": base}
    queue = load_queue(cfg)
    names = [e.name for e, _ in queue]
    _refuse_busy(cfg, force)

    if rev(cfg.tree, cfg.branch):
        why = compare_branch(cfg, base, queue)
        if why is None:
            if out(cfg.tree, "symbolic-ref", "-q", "--short", "HEAD") != cfg.branch:
                git(cfg.tree, "checkout", "-q", cfg.branch)
            say(
                "apply",
                f"{cfg.branch} already holds the {len(queue)} patch(es) of "
                f"{cfg.shown(cfg.series)}: nothing to do",
            )
            save_state(cfg.tree, cfg.branch, cfg.patches_dir, names, rev(cfg.tree, cfg.branch))
            report.data["patches"] = _applied(cfg, base, queue)
            report.data["up_to_date"] = True
            return report
        _differing_branch(cfg, base, queue, why, force, report)

    git(cfg.tree, "checkout", "-q", "-f", "-B", cfg.branch, base)
    # What the branch is about to be built from (a later hand edit shows against this).
    save_state(cfg.tree, cfg.branch, cfg.patches_dir, names, None)
    say(
        "apply",
        f"{cfg.branch} reset to {cfg.base_ref} ({base[:12]}); applying {len(queue)} patch(es)",
    )
    if queue:
        proc = git(cfg.tree, *AM_ARGS, *[str(i.path) for _, i in queue], check=False)
        if proc.returncode != 0:
            return _am_failed(cfg, base, queue, proc.stdout + proc.stderr, report)
    save_state(cfg.tree, cfg.branch, cfg.patches_dir, names, rev(cfg.tree, cfg.branch))
    report.data["patches"] = _applied(cfg, base, queue)
    for p in report.data["patches"]:
        say("apply", f"applied {p['name']}  {p['commit'][:12]}  {p['subject']}")
    say(
        "apply",
        f"done: {cfg.tree} is on {cfg.branch} = {cfg.base_ref} + {len(queue)} patch(es)",
    )
    return report


def _applied(cfg: QueueConfig, base: str, queue: list[tuple[Entry, PatchInfo]]) -> list[dict]:
    commits = branch_commits(cfg, base) or []
    return [
        {"name": e.name, "subject": i.subject, "status": i.status_value, "commit": c}
        for c, (e, i) in zip(commits, queue)
    ]


def _am_failed(
    cfg: QueueConfig,
    base: str,
    queue: list[tuple[Entry, PatchInfo]],
    am_output: str,
    report: Report,
) -> Report:
    gitdir = Path(out(cfg.tree, "rev-parse", "--absolute-git-dir"))
    nxt = gitdir / "rebase-apply" / "next"
    idx = (
        int(nxt.read_text().strip()) if nxt.is_file() else len(branch_commits(cfg, base) or []) + 1
    )
    entry, info = queue[min(idx, len(queue)) - 1]
    problem = diagnose(cfg, info, am_output)
    report.add(problem)  # the CLI prints it (once)
    report.data["failed"] = {"index": idx, "name": entry.name, "subject": info.subject}
    shown = cfg.shown(info.path)
    if problem.kind == "corrupt-patch":
        # Nothing of a corrupt patch can be applied, so `git am --continue` has nothing to
        # resolve: end the am session, keeping the patches before it on the branch.
        git(cfg.tree, "am", "--quit", check=False)
        advice = (
            f"{shown} is not a valid diff, so there is nothing to resolve in the tree and no "
            "`git am` session was left open.\n"
            f"  {cfg.branch} holds the {idx - 1} patch(es) before it.\n"
            f"  Repair the file: `git diff -- {shown}` shows your edits since the last commit, "
            f"`git checkout -- {shown}` restores the committed version; then `make apply` again."
        )
    else:
        advice = (
            "git am stopped there and the tree is left as it stopped, for inspection:\n"
            f"    cd {cfg.tree}\n"
            "    git am --show-current-patch=diff   # the patch that failed\n"
            "  To repair the patch: make the change by hand in the files, `git add` them, then\n"
            "    `git am --continue` (the later patches follow) and `make refresh` to write the\n"
            f"    repaired queue back to {cfg.shown(cfg.patches_dir)}.\n"
            f"  To give up instead: `git am --abort` ({cfg.branch} goes back to {cfg.base_ref}; "
            f"`make apply` rebuilds it, and stops here again until {shown} is fixed)."
        )
    report.data["patches"] = done = _applied(cfg, base, queue)
    for p in done:
        say("apply", f"applied {p['name']}  {p['commit'][:12]}  {p['subject']}")
    say("apply", f"FAILED at patch {idx}/{len(queue)}: {entry.name} ({info.subject})")
    say("apply", advice)
    return report
