"""`make export`: the queue as upstream wants it, for opening PRs.

A branch `nsa-fp8-upstream` in the tree with the patches meant for upstream (status Pending or
Submitted) and their `Upstream-Status:` lines removed, plus an mbox (cover letter + patches).
Accepted patches are already upstream and Inappropriate ones are ours only: the cover letter
lists them as not exported.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from scripts.patchqueue.apply import AM_ARGS, QueueError, load_queue, require_base
from scripts.patchqueue.check import apply_problem
from scripts.patchqueue.config import QueueConfig
from scripts.patchqueue.gitutil import git, out
from scripts.patchqueue.patchfile import STATUS_LINE
from scripts.patchqueue.refresh import FORMAT_PATCH
from scripts.patchqueue.report import Report, say

EXPORTED = ("Pending", "Submitted")


def run_export(cfg: QueueConfig, title: str | None = None) -> Report:
    base = require_base(cfg)
    queue = load_queue(cfg)
    branch = f"{cfg.branch}-upstream"
    report = Report("export", data={"branch": branch, "base": cfg.base_ref})
    sent, kept = [], []
    for entry, info in queue:
        exported = (info.status_value or "").split(" ")[0] in EXPORTED
        (sent if exported else kept).append((entry, info))
    cfg.export_dir.mkdir(parents=True, exist_ok=True)
    mbox = cfg.export_dir / f"{cfg.branch}.mbox"
    with tempfile.TemporaryDirectory(prefix="queue-export-") as tmp:
        work = Path(tmp) / "work"
        git(cfg.tree, "worktree", "add", "--detach", "-f", str(work), base)
        try:
            for entry, info in sent:
                am = git(work, *AM_ARGS, str(info.path), check=False)
                if am.returncode != 0:
                    problem = apply_problem(
                        info,
                        git(work, "apply", "--check", str(info.path), check=False).stderr,
                    )
                    git(work, "am", "--abort", check=False)
                    raise QueueError(
                        f"{entry.name} does not apply without the patches left out of the export "
                        f"({', '.join(e.name for e, _ in kept)}): {problem}"
                    )
                msg = out(work, "log", "-1", "--format=%B")
                clean = "\n".join(ln for ln in msg.splitlines() if not STATUS_LINE.match(ln))
                date = out(work, "log", "-1", "--format=%aD")
                git(
                    work,
                    "commit",
                    "-q",
                    "--amend",
                    "--allow-empty-message",
                    "-m",
                    clean.strip() + "\n",
                    env={"GIT_COMMITTER_DATE": date},
                )
            git(work, "branch", "-f", branch, "HEAD")
            patches = (
                out(
                    work,
                    *[a for a in FORMAT_PATCH if a != "--no-numbered"],
                    "--numbered",
                    "--stdout",
                    f"{base}..HEAD",
                )
                if sent
                else ""
            )
        finally:
            git(cfg.tree, "worktree", "remove", "--force", str(work), check=False)
    cover = cover_letter(cfg, title, sent, kept)
    mbox.write_text(cover + (patches + "\n" if patches else ""), encoding="utf-8")
    say(
        "export",
        f"branch {branch} in {cfg.tree}: {len(sent)} patch(es) on {cfg.base_ref}",
    )
    say("export", f"mbox with cover letter: {mbox}")
    for e, i in kept:
        say("export", f"not exported: {e.name} ({i.status_value})")
    report.data.update(
        mbox=str(mbox),
        exported=[e.name for e, _ in sent],
        kept=[e.name for e, _ in kept],
    )
    return report


def cover_letter(cfg: QueueConfig, title: str | None, sent: list, kept: list) -> str:
    n = len(sent)
    title = (
        title or f"FP8 KV cache + FP8 TileLang sparse-MLA decode for NSA (against sglang {cfg.tag})"
    )
    lines = [
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001",
        "From: sglang-nsa-fp8 <queue@sglang-nsa-fp8.invalid>",
        "Date: Thu, 1 Jan 1970 00:00:00 +0000",
        f"Subject: [PATCH 0/{n}] {title}",
        "",
        f"This series applies to sglang {cfg.tag} ({cfg.base_ref}). Each patch and its status:",
        "",
    ]
    for k, (_, info) in enumerate(sent, 1):
        lines += [
            f"[{k}/{n}] {info.subject}",
            f"      Upstream-Status: {info.status_value}",
        ]
        if info.purpose:
            lines.append(f"      {info.purpose}")
    if kept:
        lines += ["", "Kept in the fork, not part of this series:"]
        for e, info in kept:
            lines.append(f"  {e.name}: {info.subject} (Upstream-Status: {info.status_value})")
    return "\n".join(lines) + "\n\n"
