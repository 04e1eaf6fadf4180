"""The gfx950 MHA prefix read of a raw FP8 DSA cache multiplies k_scale back (forward_mha.py).

Chunked prefill with MHA_ONE_SHOT reads the cached prefix back as bf16 through the pool's
`get_mla_kv_buffer`, which only casts. The cache holds k / k_scale of the MLA layer (attn_mqa)
that wrote it, so unpatched 0.5.23 feeds the prefix to attention off by that factor. The pool
and the backend are stand-ins; the method under test is 0.5.23's own.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch
from v0523_modules import load_with_stubbed_imports

RANK, ROPE = 512, 64


@pytest.fixture
def mha(tree_v0_5_23: Path) -> types.ModuleType:
    flags = {"_is_cuda": False, "_is_hip": True, "_is_musa": False, "_is_npu": False}
    return load_with_stubbed_imports(
        tree_v0_5_23,
        "srt/models/deepseek_common/attention_forward_methods/forward_mha.py",
        "sglang.srt.models.deepseek_common.attention_forward_methods.forward_mha",
        {"sglang.srt.models.deepseek_common.utils": flags | {"_use_aiter_gfx95": True}},
    )


@pytest.mark.parametrize("k_scale", [0.37, None])
def test_prefix_read_multiplies_the_writers_k_scale(mha, monkeypatch, k_scale):
    g = torch.Generator().manual_seed(3)
    fp8 = (torch.randn(6, 1, RANK + ROPE, generator=g) * 8).to(torch.float8_e4m3fn)

    class Pool:  # the pool's read: a plain FP8 -> bf16 cast, as get_mla_kv_buffer does
        def get_mla_kv_buffer(self, layer, loc, dst_dtype):
            rows = fp8[loc].to(dst_dtype)
            return rows[..., :RANK], rows[..., RANK:]

    backend = types.SimpleNamespace(
        forward_metadata=types.SimpleNamespace(page_table_1_flattened=torch.tensor([4, 0, 2]))
    )
    monkeypatch.setattr(mha, "resolve_attn_backend", lambda fb: backend)
    monkeypatch.setattr(mha, "filter_dcp_local_kv_indices", lambda kv_indices: kv_indices)
    monkeypatch.setattr(
        mha, "get_attn_backend", lambda: types.SimpleNamespace(kv_index_translator=None)
    )
    monkeypatch.setattr(mha, "get_token_to_kv_pool", lambda: Pool())
    attn = types.SimpleNamespace(
        attn_mha=types.SimpleNamespace(layer_id=0),
        attn_mqa=types.SimpleNamespace(
            layer_id=0, k_scale=None if k_scale is None else torch.tensor(k_scale)
        ),
        kv_lora_rank=RANK,
    )
    kv_a, k_pe = mha.DeepseekMHAForwardMixin._get_mla_kv_buffer_from_fp8_for_dsa(attn, None)
    want = fp8[[4, 0, 2], 0].double() * (1.0 if k_scale is None else k_scale)
    got = torch.cat([kv_a.double(), k_pe[:, 0].double()], dim=-1)
    torch.testing.assert_close(got, want, rtol=2**-8, atol=0)  # bf16 rounding only
