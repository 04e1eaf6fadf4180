"""Load single 0.5.23 kernel modules from the tree, under the Triton interpreter, with narrow stubs.

Reuses scripts/kerneltools/loader.py. Each load runs inside a snapshot of `sys.modules`, so the stub
`sglang.*` modules installed here never leak into the v0.5.9 tests (they load other stubs under
the same names). The platform facts the kernel modules read at import are stubbed to "CUDA-like,
e4m3fn"; `load_sparse_mla(..., fnuz=True)` loads the MI300 flavour (FP8 max 240).
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from scripts.kerneltools.loader import install_stub, load_tree_module

DSA = "kernels/ops/attention/dsa"
STUBS = {
    "sglang.kernels.ops.attention.metadata": {"q8kv8_topk_length_from_indices": None},
    "sglang.kernels.ops.quantization.fp8_kernel": {"is_fp8_fnuz": lambda: False},
    "sglang.srt.utils": {
        "get_device_core_count": lambda device_id=0: 8,
        "is_gfx95_supported": lambda: False,
    },
    "sglang.kernels.jit.utils": {"is_arch_support_pdl": lambda: False},
    "sglang.srt.runtime_context": {"get_parallel": None},
}


@contextlib.contextmanager
def _isolated_sglang_modules() -> Iterator[None]:
    saved = {k: v for k, v in sys.modules.items() if k == "sglang" or k.startswith("sglang.")}
    try:
        yield
    finally:
        for k in [k for k in sys.modules if k == "sglang" or k.startswith("sglang.")]:
            del sys.modules[k]
        sys.modules.update(saved)


# Interpreter float types that torch can convert with correct round-to-nearest-even.
_TORCH_FLOAT = {
    "fp64": torch.float64,
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "fp8e4nv": torch.float8_e4m3fn,
    "fp8e4b8": torch.float8_e4m3fnuz,
}
_UINT = {8: torch.uint8, 16: torch.int16, 32: torch.int32, 64: torch.int64}


def _fix_interpreter() -> None:
    """Two triton 3.6 interpreter defects that would blur what the tests measure:

    - it calls int() on a 1-element array (an error in numpy >= 2.3) when a loop bound is
      computed in the kernel (`tl.range(0, tl.cdiv(...))`): read the element instead;
    - its float down-conversion drops the carry of a mantissa that rounds up (31.75 -> e4m3fn
      gives 16, not 32) and truncates fp32 -> bf16: convert through torch (RNE) instead, as the
      GPUs do. Float types torch lacks keep the interpreter's own conversion;
    - it has no IR type for float8_e4m3fnuz (fp8e4b8), although its builder does: map it.
    """
    import triton.runtime.interpreter as interp

    if getattr(interp._patch_lang_tensor, "_v0523_fixed", False):
        return
    original_patch, original_convert = interp._patch_lang_tensor, interp._convert_float
    original_core = interp._patch_lang_core

    def patch_lang_tensor(tensor, scope):
        original_patch(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    def convert_float(input, input_dtype, output_dtype, rounding_mode):
        src, dst = _TORCH_FLOAT.get(input_dtype.name), _TORCH_FLOAT.get(output_dtype.name)
        rtz = rounding_mode is not None and rounding_mode != interp._ir.ROUNDING_MODE.RTNE
        if src is None or dst is None or rtz:
            return original_convert(input, input_dtype, output_dtype, rounding_mode)
        bits = np.ascontiguousarray(input).view(f"uint{input_dtype.primitive_bitwidth}")
        raw = torch.from_numpy(bits.astype(f"int{input_dtype.primitive_bitwidth}", copy=True))
        out = raw.view(src).to(dst).view(_UINT[output_dtype.primitive_bitwidth]).numpy()
        return out.view(f"uint{output_dtype.primitive_bitwidth}")

    def patch_lang_core(lang, scope):
        original_core(lang, scope)
        to_ir = lang.dtype.to_ir

        def to_ir_with_fnuz(self, builder):
            if self.name == "fp8e4b8":
                return builder.get_fp8e4b8_ty()
            return to_ir(self, builder)

        scope.set_attr(lang.dtype, "to_ir", to_ir_with_fnuz)

    patch_lang_tensor._v0523_fixed = True
    interp._patch_lang_tensor = patch_lang_tensor
    interp._patch_lang_core = patch_lang_core
    interp._convert_float = convert_float


@contextlib.contextmanager
def triton_interpreter() -> Iterator[None]:
    """TRITON_INTERPRET=1 while kernels are decorated and run (triton reads it lazily too)."""
    with contextlib.suppress(ImportError):
        import triton.experimental.gluon  # noqa: F401  (imported lazily by the interpreter)
    _fix_interpreter()
    old = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        with _interpreted_language_helpers():
            yield
    finally:
        if old is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = old


@contextlib.contextmanager
def _interpreted_language_helpers() -> Iterator[None]:
    """triton.language's own @jit helpers (tl.zeros, tl.cdiv, ...) were decorated when triton was
    first imported, usually by another test module before TRITON_INTERPRET was set; an interpreted
    kernel cannot call them. Swap in interpreted twins for as long as the interpreter is on."""
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    swapped: list[tuple[object, str, object]] = []
    for module in (tl, tl.standard, tl.math):
        for name, value in list(vars(module).items()):
            if isinstance(value, JITFunction):
                swapped.append((module, name, value))
                setattr(module, name, InterpretedFunction(value.fn))
    try:
        yield
    finally:
        for module, name, value in reversed(swapped):
            setattr(module, name, value)


def _assert_interpreted(fn: object) -> None:
    from triton.runtime.interpreter import InterpretedFunction

    assert isinstance(fn, InterpretedFunction), (
        "this triton decided TRITON_INTERPRET before decoration; run pytest with TRITON_INTERPRET=1"
    )


def load_sparse_mla(
    tree: Path, tag: str, *, fnuz: bool = False, interpreted: bool = True, stubs=None
) -> tuple[types.ModuleType, types.ModuleType]:
    """0.5.23's triton_sparse_mla and triton_sparse_mla_decode (on the CPU not yet launchable:
    see cpu_launch_facts). `interpreted=False` for compiled kernels on a GPU, with `stubs`
    giving the device's facts."""
    stubs = dict(stubs or STUBS)
    stubs["sglang.kernels.ops.quantization.fp8_kernel"] = {"is_fp8_fnuz": lambda: fnuz}
    with _isolated_sglang_modules():
        mla = load_tree_module(
            tree,
            f"{DSA}/triton_sparse_mla.py",
            "sglang.kernels.ops.attention.dsa.triton_sparse_mla",
            stubs,
        )
        dec = load_tree_module(
            tree,
            f"{DSA}/triton_sparse_mla_decode.py",
            "sglang.kernels.ops.attention.dsa.triton_sparse_mla_decode",
        )
    if interpreted:
        _assert_interpreted(mla._sparse_mla_fused_kernel)
    for mod in (mla, dec):
        mod.__name__ = f"{mod.__name__}_{tag}"
    return mla, dec


def load_mla_buffer(tree: Path, *, interpreted: bool = True) -> types.ModuleType:
    with _isolated_sglang_modules():
        mod = load_tree_module(
            tree,
            "kernels/ops/kvcache/mla_buffer.py",
            "sglang.kernels.ops.kvcache.mla_buffer",
            STUBS,
        )
    if interpreted:
        _assert_interpreted(mod.set_mla_kv_buffer_fp8_quant_kernel)
    return mod


def cpu_launch_facts(mla: types.ModuleType, dec: types.ModuleType, num_cu: int = 8) -> None:
    """The launch facts the kernels ask the device for (CU count, shared memory), fixed for the
    CPU; the autotuned single-pass kernel gets one config (nothing to time on a CPU)."""
    import triton

    for mod in (mla, dec):
        mod._cu_count = lambda device=None: num_cu
        mod._sparse_mla_block_k = lambda kv: 16
    mla._sparse_mla_fwd_split_dim_kernel.configs = [
        triton.Config({"BLOCK_N": 16}, num_warps=4, num_stages=1)
    ]


def load_tilelang_kernel(
    tree: Path, *, fnuz: bool = False, cu_count: int = 304
) -> types.ModuleType:
    """0.5.23's tilelang_kernel on a "HIP" host (its kernels are built lazily: nothing compiles
    at import, so the host-side wrapper `tilelang_sparse_fwd` can be driven with stand-in
    kernels on the CPU)."""
    stubs = {
        "sglang.kernels.ops.quantization.fp8_kernel": {"is_fp8_fnuz": lambda: fnuz},
        "sglang.srt.utils": {
            "is_gfx95_supported": lambda: not fnuz,
            "is_hip": lambda: True,
            "get_device_core_count": lambda device_id=0: cu_count,
        },
    }
    with _isolated_sglang_modules():
        return load_tree_module(
            tree,
            f"{DSA}/tilelang_kernel.py",
            "sglang.kernels.ops.attention.dsa.tilelang_kernel",
            stubs,
        )


class _PermissiveModule(types.ModuleType):
    """A stub module that has every attribute: a decorator factory whose decorator returns its
    function unchanged (the registries a module fills at import are irrelevant here)."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def anything(*args, **kwargs):
            return lambda fn: fn

        return anything


def load_overrides(tree: Path) -> types.ModuleType:
    """0.5.23's srt/arg_groups/overrides.py, its sglang imports replaced by permissive stubs
    (the DSA checks under test use only torch)."""
    permissive = [
        "sglang.srt.arg_groups.arg_utils",
        "sglang.srt.arg_groups.model_override_base",
        "sglang.srt.arg_groups.prefill_buffer_ceiling",
        "sglang.srt.arg_groups.model_overrides",
        "sglang.srt.environ",
        "sglang.srt.model_executor.cuda_graph_config",
        "sglang.srt.runtime_context",
        "sglang.srt.utils.common",
    ]
    with _isolated_sglang_modules():
        for name in permissive:
            install_stub(name)
            sys.modules[name].__class__ = _PermissiveModule
        return load_tree_module(
            tree, "srt/arg_groups/overrides.py", "sglang.srt.arg_groups.overrides"
        )


def load_forward_mla_rocm(tree: Path) -> types.ModuleType:
    """0.5.23's ROCm MLA forward mixin with aiter off at import (`_use_aiter*` False: nothing
    from aiter is imported); a test switches `_use_aiter_gfx95` on in the module and replaces
    the AITER kernels it calls."""
    permissive = [
        "sglang.srt.layers.deep_gemm_wrapper",
        "sglang.srt.layers.dcp",
        "sglang.srt.layers.layer_boundary",
        "sglang.srt.layers.logits_processor",
        "sglang.srt.layers.quantization.fp8_utils",
        "sglang.srt.lora.deepseek_mla_correction",
        "sglang.srt.mem_cache.hisparse_memory_pool",
        "sglang.srt.mem_cache.memory_pool",
        "sglang.srt.model_executor.forward_batch_info",
        "sglang.srt.model_executor.forward_context",
        "sglang.srt.model_executor.runner_backend_utils.tc_piecewise_cuda_graph",
        "sglang.srt.models.deepseek_common.attention_forward_methods.forward_mla",
        "sglang.srt.runtime_context",
        "sglang.srt.state_capturer.indexer_topk",
        "sglang.srt.utils",
    ]
    off = types.SimpleNamespace(get=lambda: False)
    explicit = {
        "sglang.kernels.ops.quantization.fp8_kernel": {
            "fp8_dtype": torch.float8_e4m3fn,
            "per_token_group_quant_mla_deep_gemm_masked_fp8": None,
        },
        "sglang.srt.environ": {"envs": types.SimpleNamespace(SGLANG_EXPERIMENTAL_LORA_OPTI=off)},
        "sglang.srt.models.deepseek_common.utils": {
            "FORWARD_ABSORB_CORE_ATTENTION_BACKENDS": ("dsa", "nsa", "tilelang", "triton"),
            "_is_block_scale_fp8": False,
            "_is_gfx95_supported": False,
            "_use_aiter": False,
            "_use_aiter_bpreshuffle_gfx95": False,
            "_use_aiter_gfx95": False,
        },
    }
    with _isolated_sglang_modules():
        for name in permissive:
            install_stub(name)
            sys.modules[name].__class__ = _PermissiveModule
        for name, attrs in explicit.items():
            install_stub(name, **attrs)
        return load_tree_module(
            tree,
            "srt/models/deepseek_common/attention_forward_methods/forward_mla_rocm.py",
            "sglang.srt.models.deepseek_common.attention_forward_methods.forward_mla_rocm",
        )


def _sglang_imports(path: Path) -> list[str]:
    """The sglang modules a file imports at its top level (`from sglang.x import ...`)."""
    import ast

    names = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sglang."):
            names.append(node.module)
    return names


def load_with_stubbed_imports(
    tree: Path, relpath: str, module_name: str, explicit: dict[str, dict]
) -> types.ModuleType:
    """Load one 0.5.23 module with every top-level sglang import stubbed: `explicit` gives the
    attributes that matter (platform flags read at import, names the test uses), every other
    imported module is permissive."""
    path = tree / "python" / "sglang" / relpath
    with _isolated_sglang_modules():
        for name in _sglang_imports(path):
            if name not in explicit:
                install_stub(name)
                sys.modules[name].__class__ = _PermissiveModule
        for name, attrs in explicit.items():
            install_stub(name, **attrs)
        return load_tree_module(tree, relpath, module_name)
