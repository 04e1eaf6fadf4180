"""`make refresh`: write the commits base..nsa-fp8 back into patches/, deterministically.

The same commits always give the same bytes: no commit ids (--zero-commit), no git version
signature, `[PATCH]` subjects without n/m numbering (adding a patch does not rewrite the others),
full blob ids in `index` lines (an abbreviation could grow when the object store grows), a fixed
diff algorithm and context, and no user or system git configuration (see gitutil.git_env).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from scripts.patchqueue.apply import QueueError, branch_commits, require_base
from scripts.patchqueue.config import QueueConfig
from scripts.patchqueue.gitutil import am_in_progress, dirty_files, out
from scripts.patchqueue.report import Report, say
from scripts.patchqueue.series import parse_series, write_series

FORMAT_PATCH = [
    "format-patch",
    "--zero-commit",
    "--no-signature",
    "--no-numbered",
    "--subject-prefix=PATCH",
    "--full-index",
    "--no-renames",
    "--diff-algorithm=myers",
    "--unified=3",
    "--inter-hunk-context=0",
    "--no-color",
    "--no-notes",
    "--no-thread",
    "--no-attach",
    "--encode-email-headers",
    "--filename-max-length=64",
]


def format_patches(cfg: QueueConfig, base: str, tip: str, dest: Path) -> list[Path]:
    """`git format-patch` base..tip into dest as 0001-slug.patch, ...; returns the files."""
    listing = out(cfg.tree, *FORMAT_PATCH, "--start-number=1", "-o", str(dest), f"{base}..{tip}")
    return [Path(line) for line in listing.splitlines() if line.strip()]


def run_refresh(cfg: QueueConfig) -> Report:
    report = Report("refresh", data={"tree": str(cfg.tree), "branch": cfg.branch})
    base = require_base(cfg)
    busy = am_in_progress(cfg.tree)
    if busy:
        raise QueueError(f"a {busy} is in progress in {cfg.tree}: finish it before `make refresh`")
    dirty = dirty_files(cfg.tree)
    if dirty:
        raise QueueError(
            f"{cfg.tree} has uncommitted changes that refresh would not save:\n  "
            + "\n  ".join(dirty[:20])
            + "\nCommit them (a new commit, or `git commit --amend` / `git rebase -i` into the "
            "patch they belong to), then re-run `make refresh`."
        )
    commits = branch_commits(cfg, base)
    if commits is None or not out(cfg.tree, "rev-parse", "--verify", "-q", cfg.branch):
        raise QueueError(
            f"{cfg.branch} is missing or not based on {cfg.base_ref}: run `make apply`"
        )
    merges = out(cfg.tree, "rev-list", "--merges", f"{base}..{cfg.branch}")
    if merges:
        raise QueueError(
            f"{cfg.branch} has merge commits ({merges.split()[0][:12]}): a queue is linear"
        )

    old_entries, _ = parse_series(cfg.series) if cfg.series.is_file() else ([], [])
    old = {e.name for e in old_entries}
    cfg.patches_dir.mkdir(parents=True, exist_ok=True)
    changed, same = [], []
    with tempfile.TemporaryDirectory() as tmp:
        new_files = format_patches(cfg, base, cfg.branch, Path(tmp))
        names = [p.name for p in new_files]
        for p in new_files:
            target = cfg.patches_dir / p.name
            data = p.read_bytes()
            if target.is_file() and target.read_bytes() == data:
                same.append(p.name)
            else:
                target.write_bytes(data)
                changed.append(p.name)
    removed = sorted(old - set(names))
    for name in removed:
        (cfg.patches_dir / name).unlink(missing_ok=True)
    write_series(cfg.series, names)
    for name in changed:
        say("refresh", f"wrote   {name}")
    for name in removed:
        say("refresh", f"removed {name} (no longer on {cfg.branch})")
    say(
        "refresh",
        f"{len(names)} patch(es): {len(same)} unchanged, {len(changed)} written, "
        f"{len(removed)} removed",
    )
    report.data.update(patches=names, written=changed, removed=removed, commits=len(commits))
    return report
