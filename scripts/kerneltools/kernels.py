"""Load the patched NSA TileLang modules (FP8 kernel + tilelang_kernel.py) without sglang.

`tilelang_kernel.py` imports three sglang helpers at module level; they are stubbed with the
platform facts of the machine the tests run on (or of the arch a lowering test targets).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

from .loader import install_stub, load_tree_module

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
