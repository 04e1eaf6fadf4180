"""Load the patched nsa_backend.py (NativeSparseAttnBackend) alone, for the CPU and GPU tests.

Each sglang module it imports is replaced by the narrowest stub its TileLang paths need;
helpers those paths must not reach fail when called. The layout module comes in loaded. The
stubs are removed from sys.modules afterwards. SGLANG_NSA_FUSE_TOPK reads True, so the backend
hands the top-k indices to the kernel as the page table (page size 1), without the transform
kernels.
"""

from __future__ import annotations

import types
from pathlib import Path

import torch

from scripts.kerneltools.loader import install_stub, load_tree_module, restored_sys_modules

FLAGS = {"SGLANG_NSA_FUSE_TOPK": True}


class _Flag:
    def __init__(self, name):
        self.name = name

    def get(self):
        return FLAGS.get(self.name, False)


class _Envs:
    def __getattr__(self, name):
        if not name.startswith("SGLANG_"):
            raise AttributeError(name)
        return _Flag(name)


class ForwardModeStub:
    """ForwardMode stand-in: one of decode / extend / target_verify / draft_extend."""

    EXTEND = "extend"

    def __init__(self, name):
        self.name = name

    def is_target_verify(self):
        return self.name == "target_verify"

    def is_draft_extend(self, include_v2=False):
        return self.name == "draft_extend"

    def is_extend_without_speculative(self):
        return self.name == "extend"

    def __eq__(self, other):
        return self.name == other


def load_nsa_backend(tree: Path, layout: types.ModuleType, name: str) -> types.ModuleType:
    def unexpected(*a, **k):
        raise AssertionError("unstubbed sglang helper called")

    class _AttentionBackend:
        pass

    class _MTPMixin:
        pass

    stubs = {
        "sglang.srt.configs.model_config": {
            "get_nsa_index_topk": unexpected,
            "is_deepseek_nsa": unexpected,
        },
        "sglang.srt.environ": {"envs": _Envs()},
        "sglang.srt.layers.attention.base_attn_backend": {"AttentionBackend": _AttentionBackend},
        "sglang.srt.layers.attention.nsa.dequant_k_cache": {"dequantize_k_cache_paged": None},
        "sglang.srt.layers.attention.nsa.nsa_backend_mtp_precompute": {
            "NativeSparseAttnBackendMTPPrecomputeMixin": _MTPMixin,
            "PrecomputedMetadata": object,
            "compute_cu_seqlens": unexpected,
        },
        "sglang.srt.layers.attention.nsa.nsa_indexer": {"BaseIndexerMetadata": object},
        "sglang.srt.layers.attention.nsa.nsa_mtp_verification": {
            "verify_multi_backend_fused_metadata_copy": unexpected,
            "verify_single_backend_fused_metadata_copy": unexpected,
        },
        "sglang.srt.layers.attention.nsa.quant_k_cache": {"quantize_k_cache": unexpected},
        "sglang.srt.layers.attention.nsa.transform_index": {
            "transform_index_page_table_decode": unexpected,
            "transform_index_page_table_prefill": unexpected,
        },
        "sglang.srt.layers.attention.nsa.utils": {
            "can_nsa_prefill_cp_round_robin_split": unexpected,
            "compute_nsa_seqlens": unexpected,
            "is_nsa_enable_prefill_cp": lambda: False,
            "nsa_cp_round_robin_split_data": unexpected,
            "nsa_cp_round_robin_split_q_seqs": unexpected,
            "pad_nsa_cache_seqlens": unexpected,
        },
        "sglang.srt.layers.attention.utils": {
            "concat_mla_absorb_q_general": lambda a, b: torch.cat([a, b], dim=-1),
            "mla_quantize_and_rope_for_fp8": unexpected,
        },
        "sglang.srt.layers.dp_attention": {"get_attention_tp_size": lambda: 1},
        "sglang.srt.mem_cache.nsa_kv_layout": {"NsaKvLayout": layout.NsaKvLayout},
        "sglang.srt.model_executor.forward_batch_info": {
            "ForwardBatch": object,
            "ForwardMode": ForwardModeStub,
        },
        "sglang.srt.utils": {"is_cuda": lambda: True, "is_hip": lambda: False},
        "sgl_kernel.flash_attn": {
            "flash_attn_varlen_func": unexpected,
            "flash_attn_with_kvcache": unexpected,
        },
    }
    with restored_sys_modules():
        for stub_name, attrs in stubs.items():
            install_stub(stub_name, **attrs)
        return load_tree_module(tree, "srt/layers/attention/nsa_backend.py", name)


def make_backend(mod: types.ModuleType, layout_tag, prefill="tilelang", decode="tilelang"):
    """A NativeSparseAttnBackend with only what the forward paths read (no __init__)."""
    backend = object.__new__(mod.NativeSparseAttnBackend)
    backend.forward_metadata = types.SimpleNamespace()
    backend.nsa_prefill_impl, backend.nsa_decode_impl = prefill, decode
    backend.nsa_kv_layout = layout_tag
    backend.nsa_kv_cache_store_fp8 = False
    backend.use_mha = False
    return backend
