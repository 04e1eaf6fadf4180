"""Run git with a fixed, isolated configuration so that every result is reproducible."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Identity of the commits the tooling makes: fixed, so commit ids depend on content only.
QUEUE_NAME = "sglang-nsa-fp8 queue"
QUEUE_EMAIL = "queue@sglang-nsa-fp8.invalid"
UPSTREAM_NAME = "sglang upstream"
UPSTREAM_EMAIL = "upstream@sglang.invalid"


# Inherited settings that would point git elsewhere or change its output (proxies etc. stay).
_DROP = {
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_NAMESPACE",
}
_DROP_PREFIX = ("GIT_CONFIG", "GIT_AUTHOR_", "GIT_COMMITTER_")


class GitError(RuntimeError):
    def __init__(self, args: list[str], proc: subprocess.CompletedProcess[str]):
        self.proc = proc
        out = (proc.stderr or "").strip() or (proc.stdout or "").strip()
        super().__init__(f"git {' '.join(args)} failed ({proc.returncode}): {out}")


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for git: no user/system config (aliases, diff.* or format.* settings would
    change patch bytes), C locale (messages are parsed), no prompts, no inherited GIT_DIR."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP and not k.startswith(_DROP_PREFIX)}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        LC_ALL="C",
        LANGUAGE="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_COMMITTER_NAME=QUEUE_NAME,
        GIT_COMMITTER_EMAIL=QUEUE_EMAIL,
        GIT_AUTHOR_NAME=QUEUE_NAME,
        GIT_AUTHOR_EMAIL=QUEUE_EMAIL,
    )
    env.update(extra or {})
    return env


def git(
    repo: Path | None,
    *args: str,
    check: bool = True,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `git -C repo args...`; raise GitError on failure when `check`."""
    cmd = ["git"] + (["-C", str(repo)] if repo is not None else []) + list(args)
    proc = subprocess.run(
        cmd,
        input=input,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="surrogateescape",
        env=git_env(env),
    )
    if check and proc.returncode != 0:
        raise GitError(list(args), proc)
    return proc


def out(repo: Path | None, *args: str, env: dict[str, str] | None = None) -> str:
    return git(repo, *args, env=env).stdout.strip()


def rev(repo: Path, ref: str) -> str | None:
    """The commit id `ref` names, or None."""
    proc = git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return proc.stdout.strip() or None


def is_repo(path: Path) -> bool:
    return (path / ".git").exists()


def am_in_progress(repo: Path) -> str | None:
    """Name the unfinished git operation in `repo` (am, rebase, merge, cherry-pick), if any."""
    gitdir = Path(out(repo, "rev-parse", "--absolute-git-dir"))
    for marker, what in (
        ("rebase-apply/applying", "git am"),
        ("rebase-apply", "git rebase"),
        ("rebase-merge", "git rebase"),
        ("MERGE_HEAD", "git merge"),
        ("CHERRY_PICK_HEAD", "git cherry-pick"),
    ):
        if (gitdir / marker).exists():
            return what
    return None


def dirty_files(repo: Path) -> list[str]:
    """Modified, staged or untracked (not ignored) paths."""
    text = git(repo, "status", "--porcelain", "--untracked-files=all").stdout
    return [line for line in text.splitlines() if line.strip()]
