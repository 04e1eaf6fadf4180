"""Where the queue's inputs and outputs live. Everything is a parameter, so tests use tmp dirs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scripts.lockfile import read_lock, require

REPO_ROOT = Path(__file__).resolve().parents[2]
BRANCH = "nsa-fp8"


@dataclass(frozen=True)
class QueueConfig:
    root: Path  # the project checkout (holds versions.env, patches/)
    tree: Path  # the upstream git repository the queue applies to (build/sglang)
    patches_dir: Path
    lock: dict[str, str]
    cache_dir: Path  # downloads (wheel)
    reports_dir: Path  # JSON reports
    export_dir: Path
    branch: str = BRANCH

    @property
    def series(self) -> Path:
        return self.patches_dir / "series"

    def shown(self, path: Path) -> str:
        """`path` as messages show it: relative to the project root when inside it."""
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    @property
    def tag(self) -> str:
        return require(self.lock, "SGLANG_TAG")[0]

    @property
    def base_ref(self) -> str:
        """The tag of the base commit in the tree, e.g. `upstream/v0.5.9`."""
        return f"upstream/{self.tag}"

    @classmethod
    def for_root(cls, root: Path = REPO_ROOT, **overrides: object) -> QueueConfig:
        root = Path(root).resolve()
        lock_path = overrides.pop("lock_path", None) or root / "versions.env"
        values: dict[str, object] = dict(
            root=root,
            tree=root / "build" / "sglang",
            patches_dir=root / "patches",
            lock=read_lock(lock_path),  # type: ignore[arg-type]
            cache_dir=root / "build" / "cache",
            reports_dir=root / "build" / "reports",
            export_dir=root / "build" / "export",
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
