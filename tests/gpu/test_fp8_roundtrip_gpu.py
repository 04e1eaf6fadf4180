"""The k_scale contract end to end on a GPU: K written through the real pool store (patched
memory_pool.py + the compiled Triton store) with k_scale != 1, read back through the real
decode dispatch (tilelang_sparse_fwd with the layer's k_scale, as nsa_backend passes it),
against a float64 reference; and a captured CUDA graph of store + decode replayed after the
layer's scale changed in place.

Reference: K is quantised by the independent oracle (torch's RNE cast of K * fp32(1/k_scale),
saturated), dequantised and multiplied by k_scale in float64; the attention itself is the
float64 reference of decode_reference.py. Tolerance as in test_decode_fp8_gpu.py (relative L2
<= 3%); a store or a reader that ignored k_scale would be off by >= 50%.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip(
        "needs a CUDA GPU (run on the device: see docs/kernels.md)", allow_module_level=True
    )

from decode_cases import D_TAIL, D_V, SM_SCALE, TOPK  # noqa: E402
from decode_reference import quantize_q_per_head, sparse_mla_reference  # noqa: E402
from kv_store_oracle import reference as stored_bytes  # noqa: E402
from nsa_kernels import FP8_MODULE, load_tilelang_kernel_module  # noqa: E402
from pool_loader import load_layout_module, load_memory_pool  # noqa: E402
from sglang_loader import load_tree_module  # noqa: E402

FN = torch.float8_e4m3fn
SLOTS = 4096
REL_L2_TOL = 0.03


@pytest.fixture(scope="module")
def modules(sglang_tree: Path):
    old = os.environ.pop("TRITON_INTERPRET", None)  # compiled Triton, whatever the caller set
    try:
        store = load_tree_module(
            sglang_tree, "srt/mem_cache/fp8_kv_store.py", "_fp8_roundtrip_store"
        )
    finally:
        if old is not None:
            os.environ["TRITON_INTERPRET"] = old
    layout = load_layout_module(sglang_tree, "_fp8_roundtrip_layout")
    pool_mod = load_memory_pool(sglang_tree, store, layout, "_fp8_roundtrip_pool")
    tk = load_tilelang_kernel_module(sglang_tree)
    return types.SimpleNamespace(store=store, layout=layout, pool=pool_mod, tk=tk)


def make_pool_and_layer(m, k_scale: float):
    pool = m.pool.MLATokenToKVPool(
        size=SLOTS,
        page_size=1,
        dtype=FN,
        kv_lora_rank=D_V,
        qk_rope_head_dim=D_TAIL,
        layer_num=1,
        device="cuda",
        enable_memory_saver=False,
        use_nsa=True,
        kv_layout=m.layout.NsaKvLayout.RAW_FP8,
    )
    assert pool.kv_cache_store_fp8_raw
    loaded = torch.nn.Parameter(torch.tensor(k_scale, device="cuda"), requires_grad=False)
    layer = types.SimpleNamespace(layer_id=0, k_scale=loaded, k_scale_float=k_scale)
    m.store.prepare_raw_fp8_k_scales([layer], "cuda")  # the once-at-load check
    assert layer.k_scale is loaded
    return pool, layer


def inputs(num_tokens: int, num_heads: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    k = torch.randn(SLOTS, D_V + D_TAIL, generator=gen).to(torch.bfloat16)
    q = torch.randn(num_tokens, num_heads, D_V + D_TAIL, generator=gen).to(torch.bfloat16)
    idx = torch.stack([torch.randperm(SLOTS, generator=gen)[:TOPK] for _ in range(num_tokens)])
    idx[:, 1200:] = -1
    return k, q, idx.to(torch.int32)


def expected(q, k, idx, k_scale: float) -> torch.Tensor:
    kv_ref = stored_bytes(k, k_scale, FN).view(FN).double() * k_scale
    # The Q the kernel computes with: FP8 per head when the dispatch picks FP8 GEMMs.
    fp8k = sys.modules[FP8_MODULE]
    arch, cu_count = fp8k.device_arch()
    cfg = fp8k.select_decode_fp8_config(
        arch=arch,
        cu_count=cu_count,
        num_tokens=q.shape[0],
        num_heads=q.shape[1],
        d_v=D_V,
        d_tail=D_TAIL,
        topk=TOPK,
        sm_scale=SM_SCALE,
        kv_dtype=FN,
        max_shared_bytes=fp8k.device_shared_bytes(),
    )
    q_ref = quantize_q_per_head(q.cuda(), FN) if cfg.mma_dtype == "fp8" else q.cuda().double()
    return sparse_mla_reference(q_ref, kv_ref.cuda(), idx.cuda(), SM_SCALE, D_V)


def rel_l2(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref).norm() / ref.norm()).item()


def store_then_decode(m, pool, layer, k, q, idx):
    loc = torch.arange(SLOTS, device="cuda")
    kd = k.cuda()
    pool.set_mla_kv_buffer(layer, loc, kd[:, None, :D_V], kd[:, None, D_V:])
    out = m.tk.tilelang_sparse_fwd(
        q,
        pool.get_key_buffer(0).view(SLOTS, 1, D_V + D_TAIL),
        idx.view(q.shape[0], 1, TOPK),
        SM_SCALE,
        D_V,
        kv_scale=layer.k_scale,
    )
    return out.view(q.shape[0], q.shape[1], D_V)


@pytest.mark.parametrize("k_scale", [0.37, 3.0])
@pytest.mark.parametrize("num_heads", [16, 128])
def test_pool_store_then_decode_matches_float64(modules, k_scale, num_heads):
    pool, layer = make_pool_and_layer(modules, k_scale)
    k, q, idx = inputs(8, num_heads, seed=num_heads + int(k_scale * 100))
    out = store_then_decode(modules, pool, layer, k, q.cuda(), idx.cuda())
    stored = pool.get_key_buffer(0).view(torch.uint8)[:, 0].cpu()
    assert torch.equal(stored, stored_bytes(k, k_scale, FN)), "pool bytes differ from the oracle"
    ref = expected(q, k, idx, k_scale)
    assert torch.isfinite(out).all()
    rel = rel_l2(out, ref)
    assert rel <= REL_L2_TOL, f"relative L2 error {rel:.4f}"
    # The same bytes read as if k_scale were 1 must be far off (the scale is applied on read).
    wrong = rel_l2(out / k_scale, ref)
    assert wrong > 0.3, f"dropping k_scale on read should be caught, got {wrong:.3f}"


def test_graph_replay_follows_an_in_place_scale_change(modules):
    num_tokens, num_heads = 8, 16
    pool, layer = make_pool_and_layer(modules, 0.5)
    k, q, idx = inputs(num_tokens, num_heads, seed=21)
    qd, idxd = q.cuda(), idx.cuda()
    store_then_decode(modules, pool, layer, k, qd, idxd)  # compile + warm up outside capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):  # fails if the store or the decode syncs with the host
        out = store_then_decode(modules, pool, layer, k, qd, idxd)
    graph.replay()
    torch.cuda.synchronize()
    assert rel_l2(out, expected(q, k, idx, 0.5)) <= REL_L2_TOL
    layer.k_scale.fill_(2.0)  # in place, after capture
    graph.replay()
    torch.cuda.synchronize()
    stored = pool.get_key_buffer(0).view(torch.uint8)[:, 0].cpu()
    assert torch.equal(stored, stored_bytes(k, 2.0, FN)), "the replayed store kept the old scale"
    rel = rel_l2(out, expected(q, k, idx, 2.0))
    assert rel <= REL_L2_TOL, f"replay after the scale change: relative L2 error {rel:.4f}"
