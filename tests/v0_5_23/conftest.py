"""Fixtures of the tests against sglang 0.5.23's own modules (the second patch series).

The tree is `build/sglang-v0.5.23` (base `upstream/v0.5.23` + `patches-v0.5.23/series`, made by
`make apply SERIES=v0.5.23`); `SGLANG_TREE_V0_5_23` points elsewhere, e.g. at the bare base commit
to watch the tests fail on unpatched 0.5.23. Without a tree every test here skips, saying so.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def tree_v0_5_23_path() -> Path:
    default = REPO_ROOT / "build" / "sglang-v0.5.23"
    return Path(os.environ.get("SGLANG_TREE_V0_5_23", default)).resolve()


@pytest.fixture(scope="session")
def tree_v0_5_23() -> Path:
    tree = tree_v0_5_23_path()
    if not (tree / "python" / "sglang" / "kernels").is_dir():
        pytest.skip(
            f"no sglang 0.5.23 tree at {tree}: run `make apply SERIES=v0.5.23` "
            "(or set SGLANG_TREE_V0_5_23)"
        )
    return tree
