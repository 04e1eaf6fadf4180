"""Fixtures of the tests against sglang 0.5.23's own modules (the second patch series).

The tree is `build/sglang-v0.5.23` (base `upstream/v0.5.23` + `patches-v0.5.23/series`, made by
`make apply SERIES=v0.5.23`); `SGLANG_TREE_V0_5_23` points elsewhere, e.g. at the bare base commit
to watch the tests fail on unpatched 0.5.23. Without a tree every test here skips, saying so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sparse_mla_reference import FN, FNUZ
from v0523_modules import cpu_launch_facts, load_sparse_mla, triton_interpreter

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


@pytest.fixture(scope="module")
def interp() -> Iterator[None]:
    """The Triton interpreter for one test module (it must be on before the kernels load)."""
    with triton_interpreter():
        yield


@pytest.fixture(scope="module", params=[FN, FNUZ], ids=["e4m3fn", "e4m3fnuz"])
def sparse_mla(request, tree_v0_5_23: Path, interp: None):
    """(triton_sparse_mla, triton_sparse_mla_decode, FP8 format) for one FP8 flavour, loaded
    once per test module under a module-specific name."""
    fmt = request.param
    tag = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_v0523_")
    mla, dec = load_sparse_mla(tree_v0_5_23, f"{tag}_{fmt}", fnuz=fmt == FNUZ)
    cpu_launch_facts(mla, dec)
    return mla, dec, fmt
