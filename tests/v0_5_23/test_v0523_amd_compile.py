"""Item 4 of the 0.5.23 series: the Triton kernels it touches compile for gfx942 and gfx950 with
Triton's AMD backend on the CPU (no GPU, no ROCm), and are no heavier than recorded.

The variants an FP8 checkpoint runs (a k_scale; a bf16 query scaled per head) are compiled
from the tree and compared with docs/results/amd-compile-v0.5.23.json, which holds the same
figures for unpatched 0.5.23 (`base`) and for the series (measured with
scripts/kerneltools/amd_compile_v0_5_23.py): a kernel that did not spill upstream must not
spill, and the
per-lane scratch may not exceed the recorded series figure (which each patch header states
against the base). The unpatched tree has no such variants: these tests fail there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECORD = REPO / "docs" / "results" / "amd-compile-v0.5.23.json"
DEPLOYED = ["fused[k_scale+q_scale]", "split_k[k_scale+q_scale]", "kv_store[k_scale]"]


def _recorded() -> dict:
    rows = json.loads(RECORD.read_text(encoding="utf-8"))["rows"]
    return {(r["tree"], r["arch"], r["case"]): r for r in rows}


@pytest.fixture(scope="module")
def cases(tree_v0_5_23: Path) -> dict:
    sys.path.insert(0, str(REPO))
    from scripts.kerneltools.amd_compile_v0_5_23 import kernel_cases, load_modules

    mods = load_modules(tree_v0_5_23)
    return {(arch, c[0]): c for arch in ("gfx942", "gfx950") for c in kernel_cases(mods, arch)}


@pytest.mark.parametrize("arch", ["gfx942", "gfx950"])
@pytest.mark.parametrize("case", DEPLOYED)
def test_touched_kernel_compiles_no_heavier_than_recorded(cases, arch, case):
    from scripts.kerneltools.amd_compile import compile_for_amd

    assert (arch, case) in cases, f"{case}: the tree's kernel has no such variant"
    _, fn, sig, cx, warps = cases[(arch, case)]
    usage = compile_for_amd(fn, sig, cx, arch, num_warps=warps)
    recorded = _recorded()
    base = recorded[("base (upstream v0.5.23)", arch, case.split("[")[0] + "[plain]")]
    series = recorded[("series top", arch, case)]
    if base["spills"] == 0:
        assert usage.spills == 0, f"{arch} {case}: spills where upstream's kernel does not"
    assert usage.scratch_bytes <= series["scratch_bytes"], (
        f"{arch} {case}: {usage.scratch_bytes} B/lane scratch, recorded {series['scratch_bytes']}"
    )
    assert usage.lds_bytes <= series["lds_bytes"]
