"""The raw-FP8 KV store kernel (patch 0006) compiled for gfx942 and gfx950 on the CPU.

Triton's wheel carries the AMDGPU LLVM backend and links the code object itself, so
`triton.compile(..., target=GPUTarget("hip", arch, 64))` gives AMDGCN assembly and an hsaco
without ROCm or a GPU (scripts/kerneltools/triton_amd.py). Each arch is compiled for the FP8
format it stores (gfx942: e4m3fnuz, gfx950: e4m3fn) and for both launch shapes the module picks
(one row per program for decode, several for long prefills). The kernel must compile, use no
scratch memory and spill no register; the register and LDS figures are printed (`pytest -s`)
and recorded in docs/kernels.md. Nothing here runs the kernel: its numerics are
tests/test_fp8_kv_store.py (interpreter) and tests/gpu/test_fp8_kv_store_gpu.py.
"""

from __future__ import annotations

import pytest
import triton
import triton.language as tl

from scripts.kerneltools import triton_amd

ARCHES = sorted(triton_amd.ARCH_FORMAT)


@pytest.fixture(scope="module")
def store(sglang_tree):
    return triton_amd.load_store_module(sglang_tree)


def _print(row: dict) -> None:
    print(
        f"\n{row['arch']} {row['fp8']} {row['launch']} (rows/program {row['block_t']}, "
        f"{row['num_warps']} warps): VGPR {row['vgpr']}, AGPR {row['agpr']}, SGPR {row['sgpr']}, "
        f"spills {row['vgpr_spill']}/{row['sgpr_spill']}, scratch {row['scratch_bytes']} B, "
        f"LDS {row['lds_bytes']} B, occupancy {row['occupancy_waves_per_simd']} waves/SIMD, "
        f"stores {row['store_instructions']}"
    )


def assert_no_spills(row: dict) -> None:
    assert row["scratch_bytes"] == 0, f"uses scratch memory: {row}"
    assert row["vgpr_spill"] == 0 and row["sgpr_spill"] == 0, f"spills registers: {row}"


@pytest.mark.parametrize("arch", ARCHES)
def test_store_kernel_compiles_for_amd_without_spills(store, arch):
    fmt = triton_amd.ARCH_FORMAT[arch]
    for launch, block_t, warps in triton_amd.launch_configs(store):
        row = dict(
            launch=launch, **triton_amd.compile_store_kernel(store, arch, fmt, block_t, warps)
        )
        _print(row)
        assert row["hsaco_is_elf"] and row["hsaco_bytes"] > 0
        assert row["vgpr"] and row["sgpr"], row  # the code object's metadata was read
        assert_no_spills(row)
        assert row["lds_bytes"] == 0, row  # an elementwise kernel: nothing goes through LDS
        assert row["store_instructions"], row  # the FP8 codes reach global memory


def test_spill_check_fails_on_an_oversized_tile(store):
    """The mutation: 64 rows per program on one wave needs more registers than exist."""
    row = triton_amd.compile_store_kernel(store, "gfx942", "float8_e4m3fnuz", 64, 1)
    with pytest.raises(AssertionError, match="spills|scratch"):
        assert_no_spills(row)


def test_formats_follow_the_arch():
    assert triton_amd.ARCH_FORMAT == {"gfx942": "float8_e4m3fnuz", "gfx950": "float8_e4m3fn"}
    assert triton_amd.constexpr_values("float8_e4m3fnuz", 1)["IS_FNUZ"] is True
    assert triton_amd.constexpr_values("float8_e4m3fn", 1)["IS_FNUZ"] is False


@triton.jit
def _scale_by_pointer(
    dst_ptr, nope_ptr, k_scale_ptr, num_tokens, nope_stride_t, NOPE_DIM: tl.constexpr
):
    # the shape the store kernel takes when k_scale is read through a pointer
    t = tl.program_id(0)
    d = tl.arange(0, NOPE_DIM)
    x = tl.load(nope_ptr + t * nope_stride_t + d).to(tl.float32) / tl.load(k_scale_ptr)
    tl.store(dst_ptr + t * NOPE_DIM + d, x.to(tl.uint8), mask=t < num_tokens)


@triton.jit
def _unknown_argument(dst_ptr, mystery, NOPE_DIM: tl.constexpr):
    tl.store(dst_ptr + tl.arange(0, NOPE_DIM), mystery)


def test_signature_is_built_from_the_kernels_own_arguments():
    src = triton_amd.build_source(_scale_by_pointer, "float8_e4m3fn", 1)
    assert src.signature == {
        "dst_ptr": "*u8",
        "nope_ptr": "*bf16",
        "k_scale_ptr": "*fp32",
        "num_tokens": "i32",
        "nope_stride_t": "i32",
        "NOPE_DIM": "constexpr",
    }
    # pointers and row strides carry Triton's divisibility-by-16 specialisation
    assert set(src.attrs) == {(0,), (1,), (2,), (4,)}
    compiled = triton.compile(src, target=triton_amd.amd_target("gfx942"))
    assert compiled.asm["hsaco"][:4] == b"\x7fELF"


def test_unknown_argument_is_named():
    with pytest.raises(KeyError, match="'mystery'.*ARG_TYPES"):
        triton_amd.build_source(_unknown_argument, "float8_e4m3fn", 1)
