"""Facts about a decode kernel's KV gather, read from the device source TileLang generates.

Pure text functions (no TileLang import), so they are unit-tested on short snippets and applied
to lowered CUDA (sm_90) and HIP (gfx942/gfx950) sources by `lower_pipelined`. The gather is any
read of the buffer named `KV`:

- a synchronous vector load `*(T*)(KV + ...)`, whose width comes from the type `T`;
- a scalar read `KV[...]` outside an async copy (one element, 8 bits for FP8);
- an async copy `tl::cp_async_gs<N>(dst, &(KV[...]))` or its `_conditional` form (N bytes; the
  conditional form zero-fills the destination when its predicate is false).
"""

from __future__ import annotations

import re

# Vector types TileLang's CUDA/HIP codegen uses for a load, and their width in bits.
VECTOR_BITS = {
    "fp8_e4_16_t": 128,
    "fp8_e4_8_t": 64,
    "fp8_e4_4_t": 32,
    "fp8_e4_2_t": 16,
    "uint4": 128,
    "int4": 128,
    "uint2": 64,
    "int2": 64,
    "uint1": 32,
    "int": 32,
    "unsigned int": 32,
    "ushort": 16,
}
_VECTOR_LOAD = re.compile(r"\*\((\w+(?: \w+)?)\*\)\(KV \+")
_ASYNC_COPY = re.compile(r"tl::cp_async_gs(_conditional)?<(\d+)>\(")
_ASYNC_WAIT = re.compile(r"tl::cp_async_wait<(\d+)>\(\)")
_SCALAR_READ = re.compile(r"(?<![\w&(])KV\[")


def gather_load_bits(source: str) -> list[int]:
    """Width in bits of every KV read in the source (async copies included), in order."""
    widths = []
    for line in source.splitlines():
        if "KV" not in line:
            continue
        asyncs = [m for m in _ASYNC_COPY.finditer(line) if "KV[" in line[m.end() :]]
        widths += [8 * int(m.group(2)) for m in asyncs]
        for m in _VECTOR_LOAD.finditer(line):
            widths.append(VECTOR_BITS.get(m.group(1), 0))
        if not asyncs:
            widths += [8] * len(_SCALAR_READ.findall(line))
    return widths


def async_gather_copies(source: str) -> list[tuple[int, bool, str]]:
    """(bytes, conditional, predicate text) of every async copy whose source is KV."""
    out = []
    for line in source.splitlines():
        m = _ASYNC_COPY.search(line)
        if not m or "KV[" not in line[m.end() :]:
            continue
        conditional = bool(m.group(1))
        # The predicate is the last argument: everything after the source operand's `])),`.
        predicate = line.rsplit("])),", 1)[-1] if conditional else ""
        out.append((int(m.group(2)), conditional, predicate))
    return out


def predicate_guards_slot_range(predicate: str, bound: str = "seq_len_kv") -> bool:
    """The copy's predicate tests the slot id against both ends of the pool: `0 <= slot` and
    `slot < <bound>`, so `-1` and out-of-range ids are zero-filled, not read."""
    return "0 <=" in predicate and f"< {bound}" in predicate


def cuda_pipeline_depth(source: str) -> int:
    """Tiles in flight in a cp.async pipeline: 1 + the largest N of `cp_async_wait<N>` (the
    wait that lets N later copy groups stay outstanding while the oldest one is consumed);
    0 without async copies."""
    waits = [int(n) for n in _ASYNC_WAIT.findall(source)]
    if not _ASYNC_COPY.search(source):
        return 0
    return 1 + max(waits, default=0)


def gather_before_loop(source: str, loop_var: str = "it") -> bool:
    """Some KV read is issued before the tile loop starts: a software-pipeline prologue (the
    tile loop is `for (int <loop_var> = ...`)."""
    head, sep, _ = source.partition(f"for (int {loop_var} = ")
    return bool(sep) and bool(gather_load_bits(head))
