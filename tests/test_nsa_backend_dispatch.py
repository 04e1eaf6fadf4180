"""Integration of the NSA attention backend changes (patch 0008) and of the FP8 dispatch, on
the real patched modules with narrow stubs (no GPU, no kernels):

- nsa_backend.py: every forward mode that reaches TileLang (decode, extend, target verify,
  draft extend) hands the kernel the raw FP8 cache and the layer's own k_scale tensor; a bf16
  cache gets no scale; a Q the model already concatenated (q_rope=None, the MI355 fused path)
  is passed through, not split and re-concatenated; MHA_ONE_SHOT is off for the raw layout.
- tilelang_kernel.py's FP8 dispatch: the long-prefill chunk loop (partial-buffer cap shrunk)
  and the shared-memory limit the device reports, with the compiled kernels stubbed.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch
from nsa_backend_loader import ForwardModeStub, load_nsa_backend, make_backend
from pool_loader import load_layout_module

from scripts.kerneltools.loader import install_stub

FN = torch.float8_e4m3fn
H, D_V, D_ROPE, TOPK, T = 4, 512, 64, 128, 3
KERNEL_MODULE = "sglang.srt.layers.attention.nsa.tilelang_kernel"


@pytest.fixture(scope="module")
def layout(sglang_tree: Path) -> types.ModuleType:
    return load_layout_module(sglang_tree, "_backend_test_nsa_kv_layout")


@pytest.fixture(scope="module")
def backend_mod(sglang_tree: Path, layout: types.ModuleType) -> types.ModuleType:
    return load_nsa_backend(sglang_tree, layout, "_nsa_backend_under_test")


class _Pool:
    """The KV pool as the backend sees it: records writes, hands out the layer's cache."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.cache = torch.zeros(64, 1, D_V + D_ROPE, dtype=torch.uint8).view(dtype)
        self.writes = []

    def set_mla_kv_buffer(self, layer, loc, k, k_rope):
        self.writes.append((layer, loc, k, k_rope))

    def get_key_buffer(self, layer_id):
        return self.cache


@pytest.fixture
def kernel_calls(monkeypatch):
    """Replace the TileLang dispatch module with a recorder (imported at call time)."""
    calls = []

    def tilelang_sparse_fwd(**kwargs):
        calls.append(kwargs)
        return torch.zeros(kwargs["q"].shape[0], kwargs["q"].shape[1], D_V)

    stub = types.ModuleType(KERNEL_MODULE)
    stub.tilelang_sparse_fwd = tilelang_sparse_fwd
    monkeypatch.setitem(sys.modules, KERNEL_MODULE, stub)
    return calls


def make_layer(k_scale=0.25):
    return types.SimpleNamespace(
        is_cross_attention=False,
        layer_id=0,
        tp_q_head_num=H,
        tp_k_head_num=1,
        v_head_dim=D_V,
        head_dim=D_V + D_ROPE,
        scaling=0.125,
        k_scale=torch.tensor(k_scale),
    )


def make_batch(mode, dtype):
    return types.SimpleNamespace(
        forward_mode=ForwardModeStub(mode),
        token_to_kv_pool=_Pool(dtype),
        out_cache_loc=torch.arange(T),
    )


def run(backend, mode, batch, layer, *, fused_q=False):
    gen = torch.Generator().manual_seed(len(mode))
    topk = torch.randint(-1, 64, (T, TOPK), generator=gen, dtype=torch.int32)
    if fused_q:  # the MI355 fused RoPE + cache path: Q already 576 wide, K already stored
        q = torch.randn(T, H, D_V + D_ROPE, generator=gen).bfloat16()
        args = dict(q=q, k=None, v=None, q_rope=None, k_rope=None, save_kv_cache=False)
    else:
        q = torch.randn(T, H * D_V, generator=gen).bfloat16()
        q_rope = torch.randn(T, H * D_ROPE, generator=gen).bfloat16()
        k = torch.randn(T, 1, D_V, generator=gen).bfloat16()
        k_rope = torch.randn(T, 1, D_ROPE, generator=gen).bfloat16()
        args = dict(q=q, k=k, v=k, q_rope=q_rope, k_rope=k_rope)
    forward = backend.forward_decode if mode == "decode" else backend.forward_extend
    forward(layer=layer, forward_batch=batch, topk_indices=topk, **args)
    return args, topk


MODES = ["decode", "extend", "target_verify", "draft_extend"]


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_hands_the_raw_fp8_cache_and_the_layer_scale(
    backend_mod, layout, kernel_calls, mode
):
    backend = make_backend(backend_mod, layout.NsaKvLayout.RAW_FP8)
    batch, layer = make_batch(mode, FN), make_layer()
    args, topk = run(backend, mode, batch, layer)
    (call,) = kernel_calls
    assert call["kv"] is batch.token_to_kv_pool.cache
    assert call["kv_scale"] is layer.k_scale  # the layer's tensor: graphs replay its value
    assert torch.equal(call["indices"], topk.unsqueeze(1))
    want_q = torch.cat([args["q"].view(T, H, D_V), args["q_rope"].view(T, H, D_ROPE)], dim=-1)
    assert torch.equal(call["q"], want_q)
    assert (call["sm_scale"], call["d_v"]) == (layer.scaling, D_V)
    (write,) = batch.token_to_kv_pool.writes  # K is stored once, by the pool
    assert write[0] is layer and write[2] is args["k"]


@pytest.mark.parametrize("mode", MODES)
def test_a_bf16_cache_gets_no_scale(backend_mod, layout, kernel_calls, mode):
    backend = make_backend(backend_mod, layout.NsaKvLayout.BF16)
    run(backend, mode, make_batch(mode, torch.bfloat16), make_layer())
    assert kernel_calls[0]["kv_scale"] is None


@pytest.mark.parametrize("mode", MODES)
def test_an_already_concatenated_q_is_passed_through(backend_mod, layout, kernel_calls, mode):
    backend = make_backend(backend_mod, layout.NsaKvLayout.RAW_FP8)
    batch = make_batch(mode, FN)
    args, _ = run(backend, mode, batch, make_layer(), fused_q=True)
    (call,) = kernel_calls
    assert call["q"].data_ptr() == args["q"].data_ptr()  # no split + re-concatenation
    assert torch.equal(call["q"], args["q"])
    assert batch.token_to_kv_pool.writes == []  # the fused kernel already stored K


@pytest.mark.parametrize(
    "mode, impl", [("extend", "prefill"), ("target_verify", "decode"), ("draft_extend", "decode")]
)
def test_extend_modes_route_by_phase(backend_mod, layout, kernel_calls, monkeypatch, mode, impl):
    # Mixed implementations make the routing visible: speculative extends use the decode one.
    prefill, decode = (
        ("tilelang", "flashmla_sparse")
        if impl == "prefill"
        else (
            "flashmla_sparse",
            "tilelang",
        )
    )
    backend = make_backend(backend_mod, layout.NsaKvLayout.BF16, prefill, decode)
    other = []
    monkeypatch.setattr(backend, "_forward_flashmla_sparse", lambda **kw: other.append(kw))
    run(backend, mode, make_batch(mode, torch.bfloat16), make_layer())
    assert len(kernel_calls) == 1 and other == []


def _prefill_batch(dtype):
    batch = make_batch("extend", dtype)
    batch.seq_lens_cpu = torch.tensor([100, 200])
    batch.get_max_chunk_capacity = lambda: 1 << 20
    return batch


@pytest.mark.parametrize(
    "tag, want_mha", [("raw_fp8", False), ("scaled_fp8_656", True), ("plain_fp8", True)]
)
def test_mha_one_shot_is_off_for_the_raw_layout(backend_mod, layout, tag, want_mha):
    # A short FP8 prefill on sm_90 qualifies for MHA_ONE_SHOT, whose FP8 prefix dequantisation
    # reads only the 656-byte layout: the raw layout must stay on MLA.
    install_stub("sglang.srt.utils", get_device_sm=lambda: 90, is_blackwell=lambda: False)
    try:
        backend = make_backend(backend_mod, layout.NsaKvLayout(tag))
        backend.nsa_index_topk = 2048
        backend._force_attn_forward_mla = False
        backend.enable_auto_select_prefill_impl = False
        backend.set_nsa_prefill_impl(_prefill_batch(FN))
        assert backend.use_mha is want_mha
    finally:
        del sys.modules["sglang.srt.utils"]


# --- the FP8 dispatch in tilelang_kernel.py, kernels stubbed ----------------------------------


@pytest.fixture(scope="module")
def tk(sglang_tree: Path) -> types.ModuleType:
    from scripts.kerneltools.kernels import load_tilelang_kernel_module

    return load_tilelang_kernel_module(sglang_tree)


class _FakeProps:
    def __init__(self, major, minor, sms, smem_optin):
        self.major, self.minor, self.multi_processor_count = major, minor, sms
        self.shared_memory_per_block_optin = smem_optin
        self.gcnArchName = ""


def _fake_device(monkeypatch, props):
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *a: props)
    monkeypatch.setattr(torch.version, "hip", None)


@pytest.fixture
def fake_kernels(tk, monkeypatch):
    """Stub the compiled partial + combine; record each launch's token range."""
    fp8k = sys.modules["sglang.srt.layers.attention.nsa.tilelang_fp8_kernel"]
    launches, configs = [], []

    def build(cfg, target):
        configs.append(cfg)

        def partial(q4, kv4, idx4, scale):
            launches.append(q4.shape[1])
            t = q4.shape[1]
            # Each split returns the token's own Q latent: the output shows which token landed
            # where after the chunks are stitched together.
            o = q4[..., :D_V].unsqueeze(2).expand(1, t, cfg.num_splits, q4.shape[2], D_V)
            return o.contiguous(), torch.zeros(1, t, cfg.num_splits, q4.shape[2])

        return partial

    monkeypatch.setattr(fp8k, "build_sparse_mla_decode_partial_fp8", build)
    monkeypatch.setattr(
        tk, "_fp8_combine_kernel", lambda *a: lambda po, pl: po[:, :, 0].contiguous()
    )
    return fp8k, launches, configs


def _fp8_inputs(num_tokens, num_heads=H, topk=2048):
    gen = torch.Generator().manual_seed(num_tokens)
    q = torch.randn(num_tokens, num_heads, D_V + D_ROPE, generator=gen).bfloat16()
    kv = torch.zeros(16, 1, D_V + D_ROPE, dtype=torch.uint8).view(FN)
    idx = torch.zeros(num_tokens, 1, topk, dtype=torch.int32)
    return q, kv, idx, torch.ones(1)


def test_long_prefill_is_chunked_and_stitched_in_order(tk, fake_kernels, monkeypatch):
    fp8k, launches, configs = fake_kernels
    _fake_device(monkeypatch, _FakeProps(9, 0, 132, 227 * 1024))
    q, kv, idx, scale = _fp8_inputs(1000)
    # One token's partial output is num_splits * H * d_v * 2 bytes; cap it at ~300 tokens.
    probe = fp8k.select_decode_fp8_config(
        arch="sm_90", cu_count=132, num_tokens=1000, num_heads=H, d_v=D_V, d_tail=D_ROPE,
        topk=2048, sm_scale=0.1, kv_dtype=FN,
    )  # fmt: skip
    per_token = probe.num_splits * H * D_V * 2
    monkeypatch.setattr(fp8k, "MAX_PARTIAL_BYTES", per_token * 300)
    out = tk.tilelang_sparse_fwd_fp8(q, kv, idx, 0.1, D_V, kv_scale=scale)
    assert launches == [300, 300, 300, 100]
    assert torch.equal(out[0], q[..., :D_V])  # every token's result in its own row


def test_short_batches_are_one_launch(tk, fake_kernels, monkeypatch):
    _, launches, _ = fake_kernels
    _fake_device(monkeypatch, _FakeProps(9, 0, 132, 227 * 1024))
    q, kv, idx, scale = _fp8_inputs(7)
    out = tk.tilelang_sparse_fwd_fp8(q, kv, idx, 0.1, D_V, kv_scale=scale)
    assert launches == [7] and torch.equal(out[0], q[..., :D_V])


def test_a_missing_scale_is_an_error_not_a_default(tk, fake_kernels, monkeypatch):
    _fake_device(monkeypatch, _FakeProps(9, 0, 132, 227 * 1024))
    q, kv, idx, _ = _fp8_inputs(2)
    for bad in (None, torch.ones(1, dtype=torch.float64), torch.ones(2)):
        with pytest.raises(ValueError, match="layer's k_scale"):
            tk.tilelang_sparse_fwd(q, kv, idx, 0.1, D_V, kv_scale=bad)


@pytest.mark.parametrize(
    "props",
    [
        _FakeProps(9, 0, 132, 227 * 1024),  # H100/H200
        _FakeProps(12, 0, 188, 99 * 1024),  # sm_120: same table row, less than half the memory
        _FakeProps(9, 0, 132, 80 * 1024),  # a partitioned device reporting less
    ],
    ids=["sm_90", "sm_120", "sm_90-80KiB"],
)
@pytest.mark.parametrize("num_heads", [16, 20, 32, 128])
def test_the_chosen_configuration_fits_the_reported_shared_memory(
    tk, fake_kernels, monkeypatch, props, num_heads
):
    _, _, configs = fake_kernels
    _fake_device(monkeypatch, props)
    q, kv, idx, scale = _fp8_inputs(4, num_heads=num_heads)
    tk.tilelang_sparse_fwd_fp8(q, kv, idx, 0.1, D_V, kv_scale=scale)
    (cfg,) = configs
    assert cfg.shared_bytes() <= props.shared_memory_per_block_optin


def test_a_device_too_small_for_any_configuration_names_the_flag(tk, fake_kernels, monkeypatch):
    _fake_device(monkeypatch, _FakeProps(9, 0, 132, 32 * 1024))
    q, kv, idx, scale = _fp8_inputs(4)
    with pytest.raises(ValueError, match="allows 32768 B. Use --kv-cache-dtype bfloat16"):
        tk.tilelang_sparse_fwd_fp8(q, kv, idx, 0.1, D_V, kv_scale=scale)
