"""Compile a Triton kernel for an AMD GPU on a machine without one, and read its resource use.

`compile_for_amd(jit_fn, signature, constexprs, arch)` runs Triton's own AMD backend (the same
passes as on a ROCm host: TTIR -> TTGIR -> LLVM IR -> AMDGCN -> HSACO, linked in-process) for a
`GPUTarget("hip", arch, 64)`, and returns what the AMDGCN metadata says about the kernel:
VGPRs/AGPRs/SGPRs, spills, LDS and scratch. No ROCm install or GPU is needed; only `triton`.

    from scripts.kerneltools.amd_compile import compile_for_amd
    usage = compile_for_amd(kernel, {"x_ptr": "*bf16", "n": "i32"}, {"BLOCK": 128}, "gfx942")
    assert usage.spills == 0
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping

ARCHES = ("gfx942", "gfx950")  # MI300 (e4m3fnuz), MI355 (e4m3fn)
WAVE_SIZE = 64


@dataclass(frozen=True)
class AmdUsage:
    """Resource use of one compiled kernel, from the AMDGCN `.amdhsa` / metadata directives."""

    kernel: str
    arch: str
    num_warps: int
    vgpr: int  # architected VGPRs (.vgpr_count)
    agpr: int  # accumulation VGPRs (.agpr_count; 0 where the arch has none)
    sgpr: int
    vgpr_spill: int
    sgpr_spill: int
    lds_bytes: int  # LDS the kernel allocates (Triton's shared-memory size; all of it is dynamic)
    scratch_bytes: int  # per-lane private memory (.private_segment_fixed_size)

    @property
    def spills(self) -> int:
        return self.vgpr_spill + self.sgpr_spill

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"spills": self.spills}


_FIELDS = {
    "vgpr": r"\.vgpr_count:\s+(\d+)",
    "agpr": r"\.agpr_count:\s+(\d+)",
    "sgpr": r"\.sgpr_count:\s+(\d+)",
    "vgpr_spill": r"\.vgpr_spill_count:\s+(\d+)",
    "sgpr_spill": r"\.sgpr_spill_count:\s+(\d+)",
    "lds_bytes": r"\.group_segment_fixed_size:\s+(\d+)",
    "scratch_bytes": r"\.private_segment_fixed_size:\s+(\d+)",
}


def parse_amdgcn(asm: str) -> dict[str, int]:
    """The resource fields of the (single-kernel) AMDGCN metadata; a missing field is 0."""
    values = {}
    for name, pattern in _FIELDS.items():
        match = re.search(pattern, asm)
        values[name] = int(match.group(1)) if match else 0
    if not re.search(_FIELDS["vgpr"], asm):
        raise ValueError("no .vgpr_count in the AMDGCN: not an AMD kernel object?")
    return values


def unwrap_jit(fn: Any) -> Any:
    """The JITFunction inside an Autotuner/Heuristics wrapper (or `fn` itself)."""
    from triton.runtime.jit import JITFunction

    while not isinstance(fn, JITFunction):
        if not hasattr(fn, "fn"):
            raise TypeError(f"{fn!r} is not a @triton.jit function")
        fn = fn.fn
    return fn


def compile_for_amd(
    fn: Any,
    signature: Mapping[str, str],
    constexprs: Mapping[str, Any],
    arch: str,
    *,
    num_warps: int = 4,
    num_stages: int = 2,
) -> AmdUsage:
    """Compile `fn` (a @triton.jit function, or an Autotuner around one) for `arch`.

    `signature` maps every runtime argument to a Triton type string ("*bf16", "*fp8e4b8",
    "*fp8e4nv", "fp32", "i32", ...); `constexprs` gives every tl.constexpr argument (defaults
    included if the kernel relies on them: pass them explicitly to make the check reproducible).
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    jit_fn = unwrap_jit(fn)
    if arch not in ARCHES:
        raise ValueError(f"arch {arch!r}: use one of {', '.join(ARCHES)}")
    full_signature = dict(signature)
    for name in constexprs:
        full_signature[name] = "constexpr"
    missing = [a for a in jit_fn.arg_names if a not in full_signature]
    if missing:
        raise ValueError(f"{jit_fn.__name__}: no type or constexpr value for {', '.join(missing)}")
    src = ASTSource(fn=jit_fn, signature=full_signature, constexprs=dict(constexprs))
    compiled = triton.compile(
        src,
        target=GPUTarget("hip", arch, WAVE_SIZE),
        options={"num_warps": num_warps, "num_stages": num_stages},
    )
    values = parse_amdgcn(compiled.asm["amdgcn"])
    values["lds_bytes"] = max(values["lds_bytes"], int(compiled.metadata.shared))
    return AmdUsage(kernel=jit_fn.__name__, arch=arch, num_warps=num_warps, **values)
