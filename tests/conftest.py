"""Shared pytest fixtures: where the patched sglang tree is, and how to load its modules alone.

The patched tree is produced by `make apply` (default `build/sglang`, the upstream repository
layout with `python/sglang/...`). `SGLANG_TREE` overrides it, e.g. to point at a work-in-progress
checkout. Modules are loaded by file path with their sglang imports stubbed (DESIGN.md §10), so the
tests need only torch/triton/tilelang, not the whole sglang dependency tree.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def sglang_tree_path() -> Path:
    return Path(os.environ.get("SGLANG_TREE", REPO_ROOT / "build" / "sglang")).resolve()


@pytest.fixture(scope="session")
def sglang_tree() -> Path:
    tree = sglang_tree_path()
    pkg = tree / "python" / "sglang"
    if not pkg.is_dir():
        pytest.fail(
            f"no patched sglang tree at {tree}: run `make apply` first (or set SGLANG_TREE)"
        )
    return tree
