"""What the tooling last synchronised between a patch directory and its branch.

`make apply` and `make refresh` record, in the tree's git directory, the sha256 of every patch
file they read or wrote and the branch tip they left. With it, refresh can tell a patch file that
changed because its commit changed (fine: the commit wins) from a patch file edited by hand since
(refusing: overwriting it would lose the edit), and apply can tell a branch nobody touched since
(safe to rebuild) from one with new work on it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from scripts.patchqueue.gitutil import out


@dataclass
class SyncState:
    files: dict[str, str] = field(default_factory=dict)  # patch name -> sha256 of its bytes
    tip: str | None = None  # the branch tip right after the last successful apply/refresh


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _state_path(tree: Path, branch: str) -> Path:
    gitdir = Path(out(tree, "rev-parse", "--absolute-git-dir"))
    return gitdir / "patchqueue" / f"{branch}.json"


def load_state(tree: Path, branch: str, patches_dir: Path) -> SyncState | None:
    """The recorded state, or None when none was recorded for this patch directory."""
    path = _state_path(tree, branch)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if data.get("patches_dir") != str(patches_dir.resolve()):
        return None
    return SyncState(files=dict(data.get("files", {})), tip=data.get("tip"))


def save_state(
    tree: Path, branch: str, patches_dir: Path, names: list[str], tip: str | None
) -> None:
    files = {n: file_sha(patches_dir / n) for n in names if (patches_dir / n).is_file()}
    path = _state_path(tree, branch)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"patches_dir": str(patches_dir.resolve()), "files": files, "tip": tip}
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def edited_since(state: SyncState | None, patches_dir: Path, names: list[str]) -> list[str]:
    """The patch files whose bytes differ from what apply/refresh last read or wrote."""
    if state is None:
        return []
    return [
        n
        for n in names
        if (patches_dir / n).is_file() and state.files.get(n) != file_sha(patches_dir / n)
    ]
