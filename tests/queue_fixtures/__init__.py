"""Builders for the queue tests: a tiny fake upstream (wheel + optional git tag), a project
checkout around it, and patches made with real git commits."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from pathlib import Path

from scripts.patchqueue.apply import run_apply
from scripts.patchqueue.config import QueueConfig
from scripts.patchqueue.gitutil import git, out
from scripts.patchqueue.refresh import run_refresh
from scripts.patchqueue.series import DEFAULT_HEADER
from scripts.patchqueue.source import run_source

VERSION = "0.0.1"
WHEEL = f"sglang-{VERSION}-py3-none-any.whl"

UPSTREAM = {
    "sglang/__init__.py": '__version__ = "0.0.1"\n',
    "sglang/srt/__init__.py": "",
    "sglang/srt/server_args.py": "".join(
        f"def option_{i}(value):\n    return value + {i}\n\n\n" for i in range(12)
    )
    + "already_upstream = True\n",
    "sglang/srt/utils.py": "".join(f"CONST_{i} = {i}\n" for i in range(30)),
}
AUTHOR = {
    "GIT_AUTHOR_NAME": "Patch Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-02T03:04:05+0000",
}


def build_wheel(path: Path, files: dict[str, str], version: str = VERSION) -> str:
    """A wheel with `files` and a RECORD; returns its sha256."""
    record = []
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in sorted(files.items()):
            data = text.encode()
            zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(data)}")
        record.append(f"sglang-{version}.dist-info/RECORD,,")
        info = zipfile.ZipInfo(
            f"sglang-{version}.dist-info/RECORD", date_time=(2026, 1, 1, 0, 0, 0)
        )
        zf.writestr(info, "\n".join(record) + "\n")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_git_upstream(path: Path, files: dict[str, str], tag: str = f"v{VERSION}") -> str:
    """A git repository in upstream layout (python/sglang/...) with `tag`; returns its URL."""
    for name, text in files.items():
        target = path / "python" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (path / "README.md").write_text("fake upstream\n")
    git(path.parent, "init", "-q", str(path))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "upstream release", env=AUTHOR)
    git(path, "tag", tag)
    return path.as_uri()


def make_project(
    tmp_path: Path, name: str = "proj", files: dict[str, str] | None = None, source: bool = True
) -> QueueConfig:
    """A project checkout (its own git repo) with an empty series, sourced from a fake wheel."""
    root = tmp_path / name
    (root / "patches").mkdir(parents=True)
    wheel = tmp_path / f"{name}-{WHEEL}"
    sha = build_wheel(wheel, files or UPSTREAM)
    (root / "versions.env").write_text(
        f"SGLANG_VERSION={VERSION}\nSGLANG_TAG=v{VERSION}\nSGLANG_WHEEL={WHEEL}\n"
        f"SGLANG_WHEEL_SHA256={sha}\nSGLANG_GIT_URL={(tmp_path / 'upstream').as_uri()}\n"
    )
    (root / "patches" / "series").write_text(DEFAULT_HEADER)
    (root / ".gitignore").write_text("/build/\n")
    git(tmp_path, "init", "-q", str(root))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project", env=AUTHOR)
    cfg = QueueConfig.for_root(root)
    if source:
        run_source(cfg, "wheel", wheel)
    return cfg


def add_series(
    cfg: QueueConfig, version: str, wheel: str, files: dict[str, str] | None = None
) -> tuple[str, Path]:
    """Declare a second series v<version> in the project (pins, an empty patches-v<version>/
    series); returns its name and its wheel (built, not yet sourced)."""
    name = f"v{version}"
    key = "SGLANG_" + name.upper().replace(".", "_")
    path = cfg.root.parent / f"{cfg.root.name}-{wheel}"
    text = dict(files or UPSTREAM)
    text["sglang/__init__.py"] = f'__version__ = "{version}"\n'
    sha = build_wheel(path, text, version)
    lock = cfg.root / "versions.env"
    lock.write_text(
        lock.read_text()
        + f"QUEUE_SERIES={cfg.tag},{name}\n{key}_VERSION={version}\n{key}_TAG={name}\n"
        f"{key}_WHEEL={wheel}\n{key}_WHEEL_SHA256={sha}\n"
    )
    (cfg.root / f"patches-{name}").mkdir()
    (cfg.root / f"patches-{name}" / "series").write_text(DEFAULT_HEADER)
    return name, path


def wheel_of(cfg: QueueConfig) -> Path:
    return cfg.root.parent / f"{cfg.root.name}-{WHEEL}"


def commit(
    tree: Path,
    edits: dict[str, str | None],
    subject: str,
    body: str = "Why: the tests need a change here.",
    status: str | None = "Upstream-Status: Pending",
) -> str:
    """Commit `edits` (repository path -> new text, None deletes) on the current branch."""
    for path, text in edits.items():
        target = tree / path
        if text is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    git(tree, "add", "-A")
    msg = subject + "\n\n" + body + ("\n\n" + status if status else "") + "\n"
    git(tree, "commit", "-q", "-m", msg, env=AUTHOR)
    return out(tree, "rev-parse", "HEAD")


def read(tree: Path, path: str) -> str:
    return (tree / path).read_text()


SERVER_ARGS = "python/sglang/srt/server_args.py"
UTILS = "python/sglang/srt/utils.py"


def queue_with(cfg: QueueConfig, *changes: tuple[dict[str, str | None], str]) -> list[str]:
    """Apply the (empty) queue, commit each change on nsa-fp8, refresh: returns the patch names."""
    run_apply(cfg)
    for edits, subject in changes:
        commit(cfg.tree, edits(cfg) if callable(edits) else edits, subject)
    return run_refresh(cfg).data["patches"]


def edited(cfg: QueueConfig, path: str, old: str, new: str) -> dict[str, str | None]:
    text = read(cfg.tree, path)
    assert old in text, f"{old!r} not in {path}"
    return {path: text.replace(old, new, 1)}


def change(path: str, old: str, new: str):
    """Like `edited`, but read the file when the change is committed (after earlier ones)."""
    return lambda cfg: edited(cfg, path, old, new)


def patch_against(
    cfg: QueueConfig,
    ref: str,
    path: str,
    old: str,
    new: str,
    subject: str,
    status: str = "Upstream-Status: Pending",
) -> bytes:
    """A format-patch replacing `old` by `new` in `path`, made on a side branch from `ref`."""
    from scripts.patchqueue.refresh import format_patches

    side = cfg.root.parent / "side"
    git(cfg.tree, "worktree", "add", "-q", "--detach", str(side), ref)
    try:
        text = (side / path).read_text()
        assert old in text, f"{old!r} not in {path} at {ref}"
        tip = commit(side, {path: text.replace(old, new, 1)}, subject, status=status)
        dest = cfg.root.parent / "side-patches"
        (made,) = format_patches(cfg, f"{tip}~1", tip, dest)
        data = made.read_bytes()
        made.unlink()
        return data
    finally:
        git(cfg.tree, "worktree", "remove", "--force", str(side))


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
