"""The gfx950 fused RoPE + KV-write path of 0.5.23's ROCm MLA forward (forward_mla_rocm.py).

- Mode-aware: the fused path is taken when the DSA backend that reads *this* forward is
  tilelang/triton (decode backend for decode/verify/draft-extend-v2, prefill backend for
  extend). Unpatched 0.5.23 ORs the two backends, so with a mixed pair it fuses (and skips RoPE)
  for a phase whose backend expects the unfused form.
- Dtype-aware: with an FP8 cache the DSA consumers get bf16 Q (they quantize it per head, with
  the cache's k_scale) instead of the fused kernel's unscaled FP8 cast; a bf16 cache is written
  without the k_scale divide, since no bf16 reader multiplies it back.

The module is loaded with aiter off and its sglang imports stubbed; the AITER kernel is replaced
by a recorder. Written against both APIs (the series passes the forward batch and a consumer
flag) so that the same assertions fail on unpatched 0.5.23.
"""

from __future__ import annotations

import inspect
import types
from pathlib import Path

import pytest
import torch
from v0523_modules import load_forward_mla_rocm

MODES = {
    "decode": "is_decode_or_idle",
    "target_verify": "is_target_verify",
    "draft_extend_v2": "is_draft_extend_v2",
    "extend": None,
}


def _forward_batch(mode: str):
    methods = {m: (lambda m=m: m == MODES[mode]) for m in MODES.values() if m}
    return types.SimpleNamespace(
        forward_mode=types.SimpleNamespace(**methods), out_cache_loc=torch.arange(2)
    )


@pytest.fixture
def mla_rocm(tree_v0_5_23: Path, monkeypatch) -> types.ModuleType:
    mod = load_forward_mla_rocm(tree_v0_5_23)
    monkeypatch.setattr(mod, "_use_aiter_gfx95", True, raising=False)
    return mod


def _use_backends(monkeypatch, mod, prefill: str, decode: str) -> None:
    kernel = types.SimpleNamespace(dsa_prefill_backend=prefill, dsa_decode_backend=decode)
    monkeypatch.setattr(mod, "get_exec", lambda: types.SimpleNamespace(kernel=kernel))


def _fuses(mod, attn, mode: str) -> bool:
    predicate = mod.DeepseekMLARocmForwardMixin._skip_rope_for_dsa_tilelang_fused
    if "forward_batch" in inspect.signature(predicate).parameters:
        return predicate(attn, _forward_batch(mode))
    return predicate(attn)  # unpatched: one answer for every mode


@pytest.mark.parametrize(
    "prefill, decode, expected",
    [
        ("triton", "triton", {"decode": True, "target_verify": True, "extend": True}),
        ("tilelang", "aiter", {"decode": False, "target_verify": False, "extend": True}),
        ("aiter", "triton", {"decode": True, "draft_extend_v2": True, "extend": False}),
        ("aiter", "aiter", {"decode": False, "extend": False}),
    ],
)
def test_fused_path_follows_this_forwards_backend(mla_rocm, monkeypatch, prefill, decode, expected):
    _use_backends(monkeypatch, mla_rocm, prefill, decode)
    attn = types.SimpleNamespace(current_attention_backend="dsa")
    got = {mode: _fuses(mla_rocm, attn, mode) for mode in expected}
    assert got == expected


def test_no_fusion_without_the_dsa_attention_backend(mla_rocm, monkeypatch):
    _use_backends(monkeypatch, mla_rocm, "triton", "triton")
    attn = types.SimpleNamespace(current_attention_backend="aiter")
    assert not _fuses(mla_rocm, attn, "decode")


class _HiSparsePool:  # stands in for HiSparseDSATokenToKVPool: never this pool here
    pass


def _fused_call(mod, monkeypatch, kv_cache_dtype: str) -> dict:
    seen: dict = {}

    def recorder(q_nope, q_pe, k_nope, k_pe, kv, loc, pos, cos, sin, k_scale, neox, **kw):
        seen.update(k_scale=k_scale, **kw)
        return q_nope, None, k_pe, None

    pool = types.SimpleNamespace(get_key_buffer=lambda layer_id: None)
    monkeypatch.setattr(mod, "fused_qk_rope_cat_and_cache_mla", recorder, raising=False)
    monkeypatch.setattr(mod, "get_token_to_kv_pool", lambda: pool)
    monkeypatch.setattr(mod, "HiSparseDSATokenToKVPool", _HiSparsePool)
    attn = types.SimpleNamespace(
        kv_cache_dtype=kv_cache_dtype,
        current_attention_backend="dsa",
        attn_mqa=types.SimpleNamespace(k_scale=torch.tensor(0.37), layer_id=0),
        rotary_emb=types.SimpleNamespace(cos_cache=None, sin_cache=None, is_neox_style=False),
    )
    q = torch.zeros(2, 16, 512, dtype=torch.bfloat16)
    args = (attn, q, q[..., :64], q[:, :1], q[:, :1, :64], torch.arange(2), torch.arange(2))
    fn = mod._fused_rope_cat_and_cache
    if "dsa_consumer" in inspect.signature(fn).parameters:
        fn(*args, dsa_consumer=True)
    else:
        fn(*args)  # unpatched: the DSA call site passes nothing more
    return seen


def test_fp8_cache_keeps_q_bf16_for_the_dsa_kernels(mla_rocm, monkeypatch):
    seen = _fused_call(mla_rocm, monkeypatch, "fp8_e4m3")
    assert seen["q_out_dtype"] == torch.bfloat16, "Q was cast to FP8 without a scale"
    assert float(seen["k_scale"]) == pytest.approx(0.37)  # the FP8 cache holds k / k_scale


def test_bf16_cache_is_written_without_the_k_scale_divide(mla_rocm, monkeypatch):
    seen = _fused_call(mla_rocm, monkeypatch, "bfloat16")
    assert seen["k_scale"] is None, "a bf16 cache would hold k / k_scale, read back as k"
