"""Load the patched memory_pool.py (the MLA/NSA KV pools) alone, for the CPU and GPU tests.

memory_pool.py imports about a dozen sglang modules; each is replaced by the narrowest stub
the MLA pool's raw-FP8 paths need. The store kernel module and the layout module come in as
already-loaded modules (interpreted or compiled, as the caller chose). The stubs are removed
from sys.modules afterwards so they cannot leak into other tests' module loads.
"""

from __future__ import annotations

import contextlib
import types
from pathlib import Path

import torch

from scripts.kerneltools.loader import install_stub, load_tree_module, restored_sys_modules


def load_layout_module(tree: Path, name: str) -> types.ModuleType:
    """nsa_kv_layout.py (with the fp8_kv_config.py constants it imports) as module `name`."""
    with restored_sys_modules():
        load_tree_module(
            tree,
            "srt/layers/attention/nsa/fp8_kv_config.py",
            "sglang.srt.layers.attention.nsa.fp8_kv_config",
        )
        return load_tree_module(tree, "srt/mem_cache/nsa_kv_layout.py", name)


def _row_copy(kv_buffer, loc, nope, rope):
    # Upstream's generic two-source row copy, in torch (the Triton original needs a GPU).
    kv_buffer[loc] = torch.cat([nope, rope], dim=-1)


def load_memory_pool(
    tree: Path, store: types.ModuleType, layout: types.ModuleType, name: str
) -> types.ModuleType:
    class _Adapter:
        @staticmethod
        def create(enable):
            return types.SimpleNamespace(region=lambda *a, **k: contextlib.nullcontext())

    stubs = {
        "sglang.jit_kernel.kvcache": {"can_use_store_cache": None, "store_cache": None},
        "sglang.srt.configs.mamba_utils": {"BaseLinearStateParams": object},
        "sglang.srt.constants": {"GPU_MEMORY_TYPE_KV_CACHE": "kv_cache"},
        "sglang.srt.environ": {"envs": None},
        "sglang.srt.layers.attention.nsa": {"index_buf_accessor": None},
        "sglang.srt.layers.attention.nsa.quant_k_cache": {
            "quantize_k_cache": None,
            "quantize_k_cache_separate": None,
        },
        "sglang.srt.layers.radix_attention": {"RadixAttention": object},
        "sglang.srt.mem_cache.fp8_kv_store": {
            "store_mla_kv_fp8_raw": store.store_mla_kv_fp8_raw,
        },
        "sglang.srt.mem_cache.nsa_kv_layout": {"NsaKvLayout": layout.NsaKvLayout},
        "sglang.srt.mem_cache.utils": {
            "get_mla_kv_buffer_triton": None,
            "maybe_init_custom_mem_pool": lambda device: (False, None, None),
            "set_mla_kv_buffer_triton": _row_copy,
            "set_mla_kv_scale_buffer_triton": None,
        },
        "sglang.srt.utils": {
            **{f: (lambda: False) for f in ("is_cpu", "is_cuda", "is_hip", "is_npu")},
            "cpu_has_amx_support": lambda: False,
            "next_power_of_2": None,
        },
        "sglang.srt.utils.custom_op": {"register_custom_op": lambda fn, **_: fn},
        "sglang.srt.utils.torch_memory_saver_adapter": {"TorchMemorySaverAdapter": _Adapter},
    }
    with restored_sys_modules():
        for mod_name, attrs in stubs.items():
            install_stub(mod_name, **attrs)
        return load_tree_module(tree, "srt/mem_cache/memory_pool.py", name)
