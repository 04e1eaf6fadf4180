"""The padding guards of the 0.5.23 series in the lowered TileLang kernels (no GPU).

Runs scripts/kerneltools/lower_v0_5_23.py in `.venv-hip` (tilelang 0.1.15, the release that emits
HIP source without ROCm): the bf16 and FP8 decode partials for gfx942/gfx950 (and the FP8 one
for sm_90a) and v1 for sm_90a lower; their generated source masks indices past the cache,
zeroes masked KV rows (partials) and guards 0/0 (v1); the dynamic shared memory is what the
unpatched kernels ask for. On unpatched 0.5.23 every guard is missing. The numerics of these
kernels need a GPU: tests/gpu.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "kerneltools" / "lower_v0_5_23.py"
# Dynamic shared memory of the unpatched 0.5.23 kernels under tilelang 0.1.15 (bytes).
BASE_SHARED = {
    ("fp8_partial", "gfx942"): 46336,
    ("fp8_partial", "gfx950"): 46336,
    ("fp8_partial", "sm_90a"): 47360,
    ("bf16_partial", "gfx942"): 92160,
    ("bf16_partial", "gfx950"): 92160,
    ("v1", "sm_90a"): 151552,
}


def _clean_env() -> dict[str, str]:
    # `import tilelang` in this process exports its own library paths (TVM_*, TL_*); the
    # subprocess runs another tilelang release.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TVM_", "TL_"))}
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture(scope="module")
def lowered(tree_v0_5_23: Path) -> dict:
    python = REPO / ".venv-hip" / "bin" / "python"
    if not python.exists():
        pytest.skip("no .venv-hip (tilelang with HIP codegen): run `make env-hip`")
    proc = subprocess.run(
        [str(python), str(SCRIPT), "--tree", str(tree_v0_5_23)],
        capture_output=True,
        text=True,
        timeout=1200,
        env=_clean_env(),
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert rows, proc.stderr[-2000:]
    return {(r["kernel"], r["arch"]): r for r in rows}


@pytest.mark.parametrize("case", sorted(BASE_SHARED), ids=lambda c: f"{c[0]}-{c[1]}")
def test_kernel_lowers_with_the_padding_guards(lowered, case):
    row = lowered[case]
    assert row["ok"], row.get("error")
    missing = [name for name, found in row["guards"].items() if not found]
    assert not missing, f"{case}: no {', '.join(missing)} in the generated source"
    assert row["shared_bytes"] == BASE_SHARED[case]
