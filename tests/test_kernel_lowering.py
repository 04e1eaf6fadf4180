"""The NSA TileLang kernels lowered for sm_90, gfx942 and gfx950 on the CPU, and checked on the
code the lowering produces (scripts/kerneltools/lower.py, one subprocess per call): for sm_90
with the CPU venv's tilelang (0.1.9), for gfx942/gfx950 with tilelang 0.1.15 in .venv-hip (the
only release that generates HIP source without ROCm). No GPU is needed.

- Every FP8 decode configuration the per-arch table picks (inner_iter > 1 included) lowers,
  uses FP8 matrix instructions exactly when its GEMMs are FP8, and fits the arch's shared memory
  (LDS) as the lowering reports it; the figures are printed (`pytest -s`) and in docs/kernels.md.
- No cross-warp reduction can have its shared scratch overwritten before every warp has read it
  (the tilelang 0.1.9 race) in the FP8 kernel or in the bf16 kernels patch 0002 patches. The
  check is shown failing on v0.5.9's unpatched bf16 decode kernel on sm_90 (the real race) and,
  for every lowered kernel whose scratch shares bytes with a later tile, on its lowered code
  with the barriers after the reductions deleted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LOWER = "scripts.kerneltools.lower"
KiB = 1024
# Shared memory one workgroup may use, as the kernels are launched. gfx942: 64 KiB of LDS. gfx950
# (MI350/MI355): 160 KiB of LDS per CU, and a workgroup may use all of it: v0.5.9's own gfx950
# bf16 kernels need ~92 KiB (test_bf16_kernels prints it). sm_90: 227 KiB of opt-in dynamic
# shared memory (TileLang's launcher raises the limit for every kernel).
LDS_LIMIT = {"gfx942": 64 * KiB, "gfx950": 160 * KiB, "sm_90": 227 * KiB}
ARCHES = ["sm_90", "gfx942", "gfx950"]
FP8_FORMAT = {"sm_90": "float8_e4m3fn", "gfx942": "float8_e4m3fnuz", "gfx950": "float8_e4m3fn"}
# DeepSeek-V3.2's 128 attention heads at TP 16, 8, 4, 2, 1.
DISPATCH_HEADS = ["8", "16", "32", "64", "128"]


def _clean_env() -> dict[str, str]:
    """os.environ minus what `import tilelang` in this process exported (its own library and
    source paths): the subprocess may run another tilelang release."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TVM_", "TL_"))}
    env.pop("PYTHONPATH", None)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _python(arch: str) -> Path:
    if not arch.startswith("gfx"):
        return Path(sys.executable)
    python = REPO / ".venv-hip" / "bin" / "python"
    if not python.exists():
        pytest.fail("no .venv-hip (tilelang with HIP codegen): run `make env-hip`")
    return python


@cache
def lower(tree: Path, arch: str, *args: str) -> tuple[dict, ...]:
    """Rows of `lower --tree tree --arch arch *args` (cached: several tests read one run)."""
    cmd = [str(_python(arch)), "-m", LOWER, "--tree", str(tree), "--arch", arch, *args]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=1200, env=_clean_env(), cwd=REPO
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert rows, f"no output from {' '.join(cmd[1:])}:\n{proc.stderr[-3000:]}"
    failed = [r for r in rows if not r.get("ok")]
    assert not failed, json.dumps(failed, indent=1)
    return tuple(rows)


def _where(r: dict) -> str:
    keys = ("kernel", "arch", "rev", "heads", "d_tail", "mma_dtype", "inner_iter")
    return " ".join(f"{k}={r[k]}" for k in keys if k in r)


def assert_no_reduction_hazard(r: dict) -> None:
    assert r["reductions_checked"] >= 1, f"no shared-memory reduction found: {_where(r)}"
    assert not r["reduction_hazards"], (
        f"a reduction's scratch can be overwritten before every warp read it: {_where(r)}\n"
        + json.dumps(r["reduction_hazards"], indent=1)
    )


def assert_check_catches_stripped_barriers(r: dict) -> None:
    """The mutation: the same lowered code without the barriers after its reductions. Where a
    reduction's scratch shares bytes with a tile written later, the check must then fail;
    where every scratch has bytes of its own, there is nothing to catch."""
    if r["reductions_sharing_scratch"]:
        assert r["stripped_barriers"] >= 1 and r["stripped_hazards"], (
            f"deleting the barriers after the reductions went unnoticed: {_where(r)}"
        )
    else:
        assert not r["stripped_hazards"], _where(r)


def assert_fits(r: dict) -> None:
    limit = LDS_LIMIT[r["arch"]]
    assert 0 < r["lds_bytes"] <= limit, f"{r['lds_bytes']} B of LDS > {limit} B: {_where(r)}"
    # The dispatch checks the device's shared memory with the Python estimate: it must bound
    # what the lowering allocates, inner_iter > 1 included.
    if "estimated_shared_bytes" in r:
        assert r["lds_bytes"] <= r["estimated_shared_bytes"], (
            f"lowered {r['lds_bytes']} B > estimate {r['estimated_shared_bytes']} B: {_where(r)}"
        )


# --- the FP8 decode kernel --------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHES)
def test_every_dispatched_fp8_config(sglang_tree, arch):
    rows = lower(sglang_tree, arch, "--dispatch", "--heads", *DISPATCH_HEADS, "--d-tail", "64")
    print(f"\n{arch}: FP8 decode configurations the dispatch picks, lowered")
    print("| heads | h_per_block | GEMMs | inner_iter | LDS B (dynamic + static) | estimate B |")
    for r in rows:
        print(
            f"| {','.join(map(str, r['heads_covered']))} | {r['h_per_block']} | "
            f"{r['mma_dtype']} | {r['inner_iter']} | {r['lds_bytes']} "
            f"({r['lds_dynamic_bytes']} + {r['lds_static_bytes']}) | "
            f"{r['estimated_shared_bytes']} |"
        )
    # every split count the table can pick for topk 2048 / block_I 64 is there
    assert {r["inner_iter"] for r in rows} == {1, 2, 4, 8, 16, 32}
    assert {h for r in rows for h in r["heads_covered"]} == set(map(int, DISPATCH_HEADS))
    # tilelang packs the scratch into a later tile's bytes at inner_iter 1 (each reduction gets
    # bytes of its own in the loop): there the barriers matter, and the mutation must be caught
    assert any(r["reductions_sharing_scratch"] for r in rows)
    for r in rows:
        assert r["fp8"] == FP8_FORMAT[arch]
        assert r["fp8_matrix_instruction"] == (r["mma_dtype"] == "fp8"), _where(r)
        assert_fits(r)
        assert_no_reduction_hazard(r)
        assert_check_catches_stripped_barriers(r)


@pytest.mark.parametrize(
    "arch, args",
    [
        ("sm_90", ("--mma", "fp8", "--heads", "1", "16", "32")),
        ("sm_90", ("--mma", "bf16", "--heads", "128")),
        ("gfx942", ("--heads", "1", "128")),
        ("gfx950", ("--heads", "1", "128")),
    ],
    ids=["sm_90-fp8-gemms", "sm_90-bf16-gemms", "gfx942", "gfx950"],
)
def test_other_fp8_shapes(sglang_tree, arch, args):
    """GEMM flavours the table does not pick on sm_90 (the GPU tests run both), one head, and no
    rope tail (d_tail 0: no tail GEMM)."""
    rows = lower(sglang_tree, arch, *args, "--d-tail", "64", "0")
    for r in rows:
        assert r["fp8_matrix_instruction"] == (r["mma_dtype"] == "fp8"), _where(r)
        assert_fits(r)
        assert_no_reduction_hazard(r)
        assert_check_catches_stripped_barriers(r)


# --- the bf16 kernels patch 0002 patches --------------------------------------------------------


@pytest.mark.parametrize("kernel", ["bf16_decode", "bf16_v1"])
@pytest.mark.parametrize("arch", ARCHES)
def test_bf16_kernels(sglang_tree, arch, kernel):
    """Patched: no reduction hazard. Their LDS is v0.5.9's (printed, not ours to bound)."""
    rows = lower(sglang_tree, arch, "--kernel", kernel, "--heads", "16", "128", "--d-tail", "64")
    for r in rows:
        print(
            f"\n{_where(r)}: LDS {r['lds_bytes']} B, {r['reductions_checked']} shared "
            f"reductions, {r['reductions_sharing_scratch']} sharing their scratch"
        )
        assert not r["fp8_matrix_instruction"]
        assert_no_reduction_hazard(r)
        assert_check_catches_stripped_barriers(r)
    if kernel == "bf16_decode":
        # at 16 heads its scratch shares S_shared's bytes on every toolchain here
        assert rows[0]["heads"] == 16 and rows[0]["reductions_sharing_scratch"]


def test_check_finds_the_race_in_unpatched_v059_on_sm90(sglang_tree):
    """The check fails on what patch 0002 fixes: v0.5.9's decode kernel under tilelang 0.1.9,
    where the last reduction's scratch and S_shared are the same bytes and nothing orders the
    reduction's reads before the next write of S_shared."""
    rows = lower(
        sglang_tree,
        "sm_90",
        "--kernel",
        "bf16_decode",
        "--rev",
        "upstream/v0.5.9",
        "--heads",
        "16",
        "--d-tail",
        "64",
    )
    for r in rows:
        assert r["reduction_hazards"], f"the v0.5.9 race was not found: {_where(r)}"
        for h in r["reduction_hazards"]:
            assert h["scratch"][0] == h["written"][0] == "dyn"
            assert h["written"][1] < h["scratch"][2] and h["scratch"][1] < h["written"][2]
