"""CPU checks of the pipelined FP8 decode candidate (scripts/kerneltools/fp8_decode_pipelined.py).

- source_facts on short snippets (each fact shown true and false);
- config selection and its errors;
- lowering, in a subprocess: sm_90 with the CPU venv's tilelang (0.1.9), gfx942/gfx950 with
  tilelang 0.1.15 (.venv-hip). From the device source: the KV gather is 128-bit on every target;
  on sm_90 it is 16-byte cp.async, predicated on 0 <= slot < N (zero-fill), with >= 2 tiles in
  flight whenever a workgroup has >= 2 tiles; no reduction-scratch hazard (lowered.py); lowered
  LDS within the arch budget and within the Python estimate;
- the same gather checks applied to patch 0007's kernel fail (it has no async copies, and its
  bf16-GEMM flavour gathers 64 bits at a time), so they can tell the two apart.

The lowered LDS, registers (sm_90, nvcc) and configs are printed as a table (pytest -s) and
recorded in docs/kernels.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scripts.kerneltools import fp8_decode_pipelined as fdp
from scripts.kerneltools import source_facts as sf
from scripts.kerneltools.shapes import deepseek_shape

REPO = Path(__file__).resolve().parent.parent
HIP_PYTHON = REPO / ".venv-hip" / "bin" / "python"
MAX_SHARED = {"sm_90": 227 * 1024, "gfx942": 64 * 1024, "gfx950": 160 * 1024}

# --- source_facts on snippets ----------------------------------------------------------------

ASYNC_GUARDED = (
    "    tl::cp_async_gs_conditional<16>((&(((fp8_e4_t*)buf_dyn_shmem)[x])), "
    "(&(KV[((int64_t)Indices[i]) * (int64_t)576])), ((Indices[i] < seq_len_kv) && "
    "(0 <= Indices[i])));"
)
ASYNC_PLAIN = "    tl::cp_async_gs<16>((&(((fp8_e4_t*)buf_dyn_shmem)[x])), (&(KV[s * 576])));"
SYNC_128 = "      condval_1 = *(fp8_e4_16_t*)(KV + (((int64_t)slot[i]) * (int64_t)576));"
SYNC_64 = "      condval_1 = *(fp8_e4_8_t*)(KV + (((int64_t)slot[i]) * (int64_t)576));"
SCALAR = "      kv_shared[i] = ((bfloat16_t)KV[((int64_t)slot[i]) * (int64_t)576 + d]);"


def test_gather_widths_from_each_form():
    assert sf.gather_load_bits(ASYNC_GUARDED) == [128]
    assert sf.gather_load_bits(SYNC_128) == [128]
    assert sf.gather_load_bits(SYNC_64) == [64]
    assert sf.gather_load_bits(SCALAR) == [8]
    assert sf.gather_load_bits("  q[i] = *(uint4*)(Q + i);") == []  # not the KV buffer


def test_async_copy_predicate():
    (copy,) = sf.async_gather_copies(ASYNC_GUARDED)
    assert copy[:2] == (16, True) and sf.predicate_guards_slot_range(copy[2])
    (plain,) = sf.async_gather_copies(ASYNC_PLAIN)
    assert plain[:2] == (16, False) and not sf.predicate_guards_slot_range(plain[2])
    assert not sf.predicate_guards_slot_range("((Indices[i] < seq_len_kv)))")  # no lower end


def test_pipeline_depth_and_prologue():
    loop = "  for (int it = 0; it < 3; ++it) {\n"
    piped = ASYNC_GUARDED + "\n  tl::cp_async_commit();\n" + loop + "    tl::cp_async_wait<1>();\n"
    assert sf.cuda_pipeline_depth(piped) == 2
    assert sf.gather_before_loop(piped)
    serial = loop + SYNC_128 + "\n"
    assert sf.cuda_pipeline_depth(serial) == 0
    assert not sf.gather_before_loop(serial)


# --- configuration ---------------------------------------------------------------------------


def _select(**overrides):
    args = dict(arch="sm_90", cu_count=132, num_tokens=1, num_heads=16)
    args.update(overrides)
    return fdp.select_pipelined_config(**deepseek_shape(**args))


@pytest.mark.parametrize(
    "arch, heads, want",
    [
        ("sm_90", 16, (16, 64, "bf16")),
        ("sm_90", 128, (64, 64, "fp8")),
        ("gfx942", 128, (32, 32, "fp8")),
        ("gfx950", 128, (64, 64, "fp8")),
    ],
)
def test_arch_table(arch, heads, want):
    kv = torch.float8_e4m3fnuz if arch == "gfx942" else torch.float8_e4m3fn
    cfg = _select(arch=arch, num_heads=heads, kv_dtype=kv)
    assert (cfg.h_per_block, cfg.block_I, cfg.mma_dtype) == want
    assert cfg.num_stages >= 2
    assert cfg.shared_bytes() <= fdp.arch_tuning(arch).max_shared_bytes


def test_bf16_flavour_narrows_the_head_block_to_fit():
    # Q + two FP8 stages + the bf16 tile at 64 heads exceed Hopper's 227 KiB: 32 heads fit.
    cfg = _select(num_heads=128, mma_dtype="bf16")
    assert (cfg.h_per_block, cfg.head_blocks) == (32, 4)
    assert cfg.shared_bytes() <= 227 * 1024 and _select(num_heads=128).h_per_block == 64


def test_split_count_fills_the_device_and_pipelines_large_batches():
    assert _select(num_tokens=1).num_splits == 32
    big = _select(num_tokens=128)
    assert big.inner_iter >= 2 and 128 * big.num_splits >= 132  # >= 2 tiles per workgroup
    assert _select(num_tokens=128, inner_iter=4).inner_iter == 4


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(d_v=500), "d_v"),
        (dict(d_tail=48), "d_tail"),
        (dict(topk=2000), "multiple of block_I"),
        (dict(num_stages=1), "num_stages"),
        (dict(mma_dtype="fp16"), "mma_dtype"),
        (dict(arch="sm_80"), "sm_90"),
        (dict(kv_dtype=torch.float8_e5m2), "fp8_e4m3"),
        (dict(arch="gfx942", kv_dtype=torch.float8_e4m3fnuz, mma_dtype="bf16"), "shared memory"),
    ],
)
def test_bad_configs_fail_before_jit(overrides, message):
    with pytest.raises(ValueError, match=message):
        _select(**overrides)


# --- lowering --------------------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    """os.environ minus what `import tilelang` here exported: the subprocess may run another
    tilelang release."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TVM_", "TL_"))}
    env.pop("PYTHONPATH", None)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _lower(python: Path, arch: str, *args: str) -> list[dict]:
    proc = subprocess.run(
        [str(python), "-m", "scripts.kerneltools.lower_pipelined", "--arch", arch, *args],
        capture_output=True,
        text=True,
        timeout=1200,
        env=_clean_env(),
        cwd=REPO,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert rows, f"no output from lower_pipelined ({arch}):\n{proc.stderr[-3000:]}"
    failed = [r for r in rows if not r.get("ok")]
    assert not failed, json.dumps(failed, indent=1)
    _print_table(rows)
    return rows


def _print_table(rows: list[dict]) -> None:
    for r in rows:
        regs = f" regs {r['registers']} spills {r['spill_store_bytes']}" if "registers" in r else ""
        print(
            f"\n{r['kernel']:9s} {r['arch']} T={r['T']} H={r['H']} {r.get('mma_dtype')} "
            f"h/wg={r.get('h_per_block')} block_I={r.get('block_I')} "
            f"inner={r.get('inner_iter', 1)} stages={r.get('num_stages', '-')} "
            f"LDS {r['shared_bytes']} B (est. {r.get('estimated_shared_bytes')}) "
            f"gather bits {r['gather_load_bits']} async16 {r['gather_async_16B']} "
            f"depth {r['pipeline_depth']} prologue {r['gather_before_tile_loop']}{regs}",
            end="",
        )


def gather_is_128_bit(row: dict) -> bool:
    return row["gather_min_bits"] == 128


def gather_is_async_and_pipelined(row: dict) -> bool:
    """16-byte cp.async, every copy zero-filling invalid slots, >= 2 tiles in flight when the
    workgroup has >= 2 tiles."""
    deep_enough = row["pipeline_depth"] >= 2 or row.get("inner_iter", 1) < 2
    return row["gather_async_16B"] > 0 and row["gather_async_all_guarded"] and deep_enough


def _check_common(rows: list[dict], arch: str) -> None:
    for r in rows:
        assert gather_is_128_bit(r), f"KV gather not 128-bit: {r}"
        assert r["barrier_after_shared_reductions"], f"reduction scratch race possible: {r}"
        assert 0 < r["shared_bytes"] <= MAX_SHARED[arch], r
        assert r["shared_bytes"] <= r["estimated_shared_bytes"], "the Python LDS estimate is low"


@pytest.fixture(scope="module")
def sm90_rows() -> list[dict]:
    regs = ["--regs"] if shutil.which("nvcc") else []
    rows = _lower(
        Path(sys.executable), "sm_90", "--tokens", "1", "128", "--heads", "16", "128", *regs
    )
    rows += _lower(
        Path(sys.executable), "sm_90", "--tokens", "128", "--heads", "16", "--mma", "fp8", *regs
    )
    return rows


def test_sm90_gather_is_async_16_byte_and_pipelined(sm90_rows):
    assert {r["mma_dtype"] for r in sm90_rows} == {"bf16", "fp8"}
    assert any(r["inner_iter"] >= 2 for r in sm90_rows)
    _check_common(sm90_rows, "sm_90")
    for r in sm90_rows:
        assert gather_is_async_and_pipelined(r), f"gather not pipelined cp.async: {r}"
        if r["inner_iter"] >= 2:
            assert r["pipeline_depth"] >= 2 and r["gather_before_tile_loop"], r


def test_sm90_checks_reject_patch_0006(sglang_tree):
    rows = _lower(
        Path(sys.executable),
        "sm_90",
        "--kernel",
        "series",
        "--tree",
        str(sglang_tree),
        "--heads",
        "16",
    )
    rows += _lower(
        Path(sys.executable),
        "sm_90",
        "--kernel",
        "series",
        "--tree",
        str(sglang_tree),
        "--heads",
        "16",
        "--mma",
        "bf16",
    )
    for r in rows:
        assert not gather_is_async_and_pipelined(r), f"series has no async gather: {r}"
        assert r["pipeline_depth"] == 0
    assert not all(gather_is_128_bit(r) for r in rows), "series's bf16 flavour gathers 64 bits"


@pytest.mark.parametrize("arch", ["gfx942", "gfx950"])
def test_hip_gather_is_128_bit(arch):
    if not HIP_PYTHON.exists():
        pytest.fail("no .venv-hip (tilelang with HIP codegen): run `make env-hip`")
    rows = _lower(HIP_PYTHON, arch, "--tokens", "1", "128", "--heads", "16", "128")
    _check_common(rows, arch)
    want = "float8_e4m3fnuz" if arch == "gfx942" else "float8_e4m3fn"
    assert {r["fp8"] for r in rows} == {want}
    if arch == "gfx950":
        # tilelang 0.1.15 software-pipelines the gather there once a workgroup has more tiles
        # than stages (not on gfx942, and not at inner_iter == num_stages).
        deep = [r for r in rows if r["inner_iter"] > r["num_stages"]]
        assert deep and all(r["gather_before_tile_loop"] for r in deep), rows


def test_hip_check_rejects_patch_0006_bf16_gather(sglang_tree):
    if not HIP_PYTHON.exists():
        pytest.fail("no .venv-hip (tilelang with HIP codegen): run `make env-hip`")
    args = ["--kernel", "series", "--tree", str(sglang_tree), "--heads", "16", "--mma", "bf16"]
    (row,) = _lower(HIP_PYTHON, "gfx950", *args)
    assert row["gather_min_bits"] == 64 and not gather_is_128_bit(row), row
