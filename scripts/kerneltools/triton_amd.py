"""Compile the raw-FP8 KV store kernel (patch 0006) for AMD GPUs on a machine without one.

    python -m scripts.kerneltools.triton_amd --tree build/sglang [--arch gfx942 gfx950]

Triton's own wheel carries the AMDGPU LLVM backend and its linker, so `triton.compile` with a
`GPUTarget("hip", arch, 64)` goes from the kernel to AMDGCN assembly and an hsaco code object
without ROCm. One JSON object per (arch, launch configuration) on stdout: registers (VGPR,
AGPR, SGPR), scratch (spills), LDS, occupancy, and the code object's size.

The kernel's signature is built from its own argument list (the JIT function's arg_names and
constexprs) and the tables below, keyed by argument name: an argument the tables do not know
fails with a message naming it, instead of compiling something other than what sglang launches.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .loader import load_module_file

STORE_MODULE = "srt/mem_cache/fp8_kv_store.py"
STORE_KERNEL = "_store_mla_kv_fp8_raw_kernel"
# FP8 format each AMD arch stores: MI300 (gfx942) e4m3fnuz, MI350/MI355 (gfx950) e4m3fn.
ARCH_FORMAT = {"gfx942": "float8_e4m3fnuz", "gfx950": "float8_e4m3fn"}
NOPE, ROPE = 512, 64  # DeepSeek-V3.2: 512 latent + 64 rope elements per row
ROW_STRIDE = NOPE + ROPE  # the sources are views of one bf16 [T, 576] latent; the pool's rows

# The Triton type of each runtime argument as sglang launches the kernel (bf16 sources, int64
# slot ids, uint8 pool view). A stride of 1 is a constant: Triton specialises ints equal to 1.
ARG_TYPES: dict[str, str | int] = {
    "dst_ptr": "*u8",
    "loc_ptr": "*i64",
    "nope_ptr": "*bf16",
    "rope_ptr": "*bf16",
    "inv_scale": "fp32",
    "num_tokens": "i32",
    "num_slots": "i32",
    "dst_stride_t": "i32",
    "dst_stride_d": 1,
    "nope_stride_t": "i32",
    "nope_stride_d": 1,
    "rope_stride_t": "i32",
    "rope_stride_d": 1,
}
# Names the tables resolve by pattern: a scale handed over as a pointer (one fp32 element).
ARG_PATTERNS: list[tuple[str, str | int]] = [(r"\w*scale\w*_ptr", "*fp32")]
# Multiples of 16 at every launch (Triton marks them `tt.divisibility`): the pointers (torch
# allocations; the rope view starts 1024 bytes into a row) and the row strides (576).
DIVISIBLE_BY_16 = re.compile(r"\w+_ptr|\w+_stride_t")


def constexpr_values(fmt: str, block_t: int) -> dict[str, int | bool]:
    """The kernel's compile-time parameters for one FP8 format and tokens per program."""
    return {
        "NOPE_DIM": NOPE,
        "ROPE_DIM": ROPE,
        "BLOCK_NOPE": NOPE,
        "BLOCK_ROPE": ROPE,
        "BLOCK_T": block_t,
        "IS_FNUZ": fmt == "float8_e4m3fnuz",
    }


def arg_type(name: str) -> str | int:
    if name in ARG_TYPES:
        return ARG_TYPES[name]
    for pattern, value in ARG_PATTERNS:
        if re.fullmatch(pattern, name):
            return value
    raise KeyError(
        f"{STORE_KERNEL} has an argument {name!r} that scripts/kerneltools/triton_amd.py does "
        "not know: add its Triton type to ARG_TYPES (or ARG_PATTERNS)"
    )


def build_source(kernel, fmt: str, block_t: int):
    """An ASTSource for `kernel` (a triton JITFunction) as sglang launches it."""
    from triton.compiler import ASTSource

    constexpr_names = {kernel.arg_names[i] for i in kernel.constexprs}
    values = constexpr_values(fmt, block_t)
    unknown = sorted(constexpr_names - set(values))
    if unknown:
        raise KeyError(
            f"{STORE_KERNEL} has constexpr(s) {unknown} that constexpr_values() does not set"
        )
    signature, constants, attrs = {}, {}, {}
    for i, name in enumerate(kernel.arg_names):
        if name in constexpr_names:
            signature[name], constants[name] = "constexpr", values[name]
            continue
        kind = arg_type(name)
        if isinstance(kind, int):  # specialised to a constant, as at run time
            signature[name], constants[name] = "constexpr", kind
            continue
        signature[name] = kind
        if DIVISIBLE_BY_16.fullmatch(name):
            attrs[(i,)] = [["tt.divisibility", 16]]
    return ASTSource(kernel, signature, constexprs=constants, attrs=attrs)


def launch_configs(store) -> list[tuple[str, int, int]]:
    """(name, tokens per program, warps) for a decode step and a long prefill chunk, from the
    module's own launch heuristic."""
    return [(name, *store._launch_config(t)) for name, t in (("decode", 1), ("prefill", 32768))]


def amd_target(arch: str):
    from triton.backends.compiler import GPUTarget

    return GPUTarget("hip", arch, 64)  # wave64: gfx9 data-centre GPUs


def compile_store_kernel(store, arch: str, fmt: str, block_t: int, num_warps: int) -> dict:
    import triton

    kernel = getattr(store, STORE_KERNEL)
    compiled = triton.compile(
        build_source(kernel, fmt, block_t),
        target=amd_target(arch),
        options={"num_warps": num_warps},
    )
    asm = compiled.asm
    meta = {}
    for key, pattern in (
        ("vgpr", r"\.vgpr_count:\s+(\d+)"),
        ("agpr", r"\.agpr_count:\s+(\d+)"),
        ("sgpr", r"\.sgpr_count:\s+(\d+)"),
        ("vgpr_spill", r"\.vgpr_spill_count:\s+(\d+)"),
        ("sgpr_spill", r"\.sgpr_spill_count:\s+(\d+)"),
        ("scratch_bytes", r"\.private_segment_fixed_size:\s+(\d+)"),
        ("lds_static_bytes", r"\.group_segment_fixed_size:\s+(\d+)"),
    ):
        found = re.findall(pattern, asm["amdgcn"])
        meta[key] = int(found[0]) if found else None
    # LDS: what the code object declares plus what Triton asks for at launch (its "shared")
    meta["lds_bytes"] = (meta["lds_static_bytes"] or 0) + compiled.metadata.shared
    occupancy = re.findall(r";\s*Occupancy:\s*(\d+)", asm["amdgcn"])
    return dict(
        arch=arch,
        fp8=fmt,
        block_t=block_t,
        num_warps=num_warps,
        triton=triton.__version__,
        occupancy_waves_per_simd=int(occupancy[0]) if occupancy else None,
        hsaco_bytes=len(asm["hsaco"]),
        hsaco_is_elf=asm["hsaco"][:4] == b"\x7fELF",
        store_instructions=sorted(set(re.findall(r"\b(?:global|buffer)_store_\w+", asm["amdgcn"]))),
        **meta,
    )


def load_store_module(tree: Path):
    return load_module_file(Path(tree) / "python" / "sglang" / STORE_MODULE, "nsa_fp8_kv_store")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tree", required=True)
    ap.add_argument("--arch", nargs="+", default=list(ARCH_FORMAT), choices=list(ARCH_FORMAT))
    args = ap.parse_args()
    store = load_store_module(Path(args.tree))
    for arch in args.arch:
        for name, block_t, warps in launch_configs(store):
            row = compile_store_kernel(store, arch, ARCH_FORMAT[arch], block_t, warps)
            print(json.dumps(dict(launch=name, **row)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
