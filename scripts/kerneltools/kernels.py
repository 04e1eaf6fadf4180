"""Load the patched NSA TileLang modules (FP8 kernel + tilelang_kernel.py) without sglang.

`tilelang_kernel.py` imports three sglang helpers at module level; they are stubbed with the
platform facts of the machine the tests run on (or of the arch a lowering test targets).
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

from .loader import install_stub, load_module_file, load_tree_module, tree_file_text

FP8_MODULE = "sglang.srt.layers.attention.nsa.tilelang_fp8_kernel"
KERNEL_MODULE = "sglang.srt.layers.attention.nsa.tilelang_kernel"


def load_fp8_kernel_module(tree: Path) -> types.ModuleType:
    if FP8_MODULE in sys.modules:
        return sys.modules[FP8_MODULE]
    return load_tree_module(tree, "srt/layers/attention/nsa/tilelang_fp8_kernel.py", FP8_MODULE)


def load_tilelang_kernel_module(
    tree: Path, *, is_hip: bool = False, is_gfx95: bool = False, is_fnuz: bool = False
) -> types.ModuleType:
    """tilelang_kernel.py with its sglang imports stubbed (DESIGN.md §10.1)."""
    if KERNEL_MODULE in sys.modules:
        return sys.modules[KERNEL_MODULE]
    fp8k = load_fp8_kernel_module(tree)
    sys.modules["sglang.srt.layers.attention.nsa"].tilelang_fp8_kernel = fp8k
    install_stub("sglang.srt.layers.quantization.fp8_kernel", is_fp8_fnuz=lambda: is_fnuz)
    install_stub("sglang.srt.utils", is_hip=lambda: is_hip, is_gfx95_supported=lambda: is_gfx95)
    return load_tree_module(tree, "srt/layers/attention/nsa/tilelang_kernel.py", KERNEL_MODULE)


def decode_pass_configs() -> dict:
    import tilelang

    # The pass configs of v0.5.9's bf16 decode kernels' @tilelang.jit decorators.
    return {
        tilelang.PassConfigKey.TL_DISABLE_TMA_LOWER: True,
        tilelang.PassConfigKey.TL_DISABLE_WARP_SPECIALIZED: True,
    }


def compile_bf16_decode(
    tk, num_heads: int, d_v: int, d_tail: int, topk: int, sm_scale: float, target: str
):
    """v0.5.9's bf16 decode partial + combine (gfx950 path) for an explicit target, so a kernel
    cache built on another machine is hit. Returns (partial, combine) compiled kernels."""
    import tilelang

    partial = tilelang.compile(
        tk.sparse_mla_fwd_decode_partial.get_tir(
            num_heads, d_v, d_tail, topk, sm_scale=sm_scale, block_I=64, threads=256
        ),
        out_idx=[3, 4],
        target=target,
        pass_configs=decode_pass_configs(),
    )
    combine = tilelang.compile(
        tk.sparse_mla_fwd_decode_combine.get_tir(num_heads, d_v, topk, 4, block_I=64, threads=256),
        out_idx=[2],
        target=target,
        pass_configs=decode_pass_configs(),
    )
    return partial, combine


FP8_KERNEL_PATH = "srt/layers/attention/nsa/tilelang_fp8_kernel.py"
BF16_KERNEL_PATH = "srt/layers/attention/nsa/tilelang_kernel.py"
_SYNC_STATEMENT = re.compile(r"^(?P<indent>\s*)T\.sync_threads\(\)\s*(?:#.*)?$")


def drop_sync_threads(source: str) -> tuple[str, int]:
    """The kernel source with every `T.sync_threads()` statement deleted (a mutation for the
    barrier checks) and how many there were."""
    kept, dropped = [], 0
    for line in source.splitlines(keepends=True):
        if _SYNC_STATEMENT.match(line):
            dropped += 1
            continue
        kept.append(line)
    text = "".join(kept)
    compile(text, "<mutated kernel>", "exec")  # a block left empty would be a SyntaxError
    return text, dropped


def load_kernel_variant(
    tree: Path, relpath: str, module_name: str, workdir: Path, *, rev=None, drop_barriers=False
) -> tuple[types.ModuleType, int]:
    """A kernel module of the tree, at git revision `rev` if given, optionally with its
    `T.sync_threads()` statements deleted; loaded from a copy in `workdir` (TileLang re-reads
    kernel source from the file). Returns (module, barriers dropped)."""
    text = tree_file_text(tree, relpath, rev)
    dropped = 0
    if drop_barriers:
        text, dropped = drop_sync_threads(text)
        if not dropped:
            raise ValueError(f"{relpath} ({rev or 'work tree'}) has no T.sync_threads() to drop")
    path = Path(workdir) / f"{module_name.replace('.', '_')}.py"
    path.write_text(text)
    return load_module_file(path, module_name), dropped
