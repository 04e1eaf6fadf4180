"""The k_scale contract end to end on a GPU, through the real patched modules: the NSA backend's
forward_decode (nsa_backend.py) stores the new tokens' K through the pool (memory_pool.py and
the compiled Triton store) with k_scale != 1, and reads the cache back through its TileLang
path (tilelang_kernel.py + the FP8 decode kernel) with the layer's k_scale; compared with a
float64 reference. A second test captures that decode step in a CUDA graph and replays it
after the layer's scale changed in place.

Reference: every K row (the context written through the pool first, and the step's own
tokens) is quantised by the independent oracle (torch's RNE cast of K * fp32(1/k_scale),
saturated), dequantised and multiplied by k_scale in float64; the attention itself is the
float64 reference of scripts/kerneltools/reference.py. Tolerance as in
test_decode_fp8_gpu.py (relative L2 <= 3%); a store or a reader that ignored k_scale is off
by >= 50%.
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

from nsa_backend_loader import ForwardModeStub, load_nsa_backend, make_backend  # noqa: E402
from pool_loader import load_layout_module, load_memory_pool  # noqa: E402

from scripts.kerneltools.kernels import FP8_MODULE, load_tilelang_kernel_module  # noqa: E402
from scripts.kerneltools.kv_store_oracle import reference as stored_bytes  # noqa: E402
from scripts.kerneltools.loader import load_tree_module  # noqa: E402
from scripts.kerneltools.reference import quantize_q_per_head, sparse_mla_reference  # noqa: E402
from scripts.kerneltools.shapes import D_TAIL, D_V, SM_SCALE, TOPK  # noqa: E402

FN = torch.float8_e4m3fn
SLOTS = 4096
NUM_TOKENS = 8
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
    backend_mod = load_nsa_backend(sglang_tree, layout, "_fp8_roundtrip_backend")
    tk = load_tilelang_kernel_module(sglang_tree)  # what _forward_tilelang imports
    return types.SimpleNamespace(
        store=store, layout=layout, pool=pool_mod, backend=backend_mod, tk=tk
    )


class Step:
    """One decode step of NUM_TOKENS tokens with H heads over a pool of SLOTS rows."""

    def __init__(self, m, num_heads: int, k_scale: float, seed: int):
        gen = torch.Generator().manual_seed(seed)
        self.pool = m.pool.MLATokenToKVPool(
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
        assert self.pool.kv_cache_store_fp8_raw
        loaded = torch.nn.Parameter(torch.tensor(k_scale, device="cuda"), requires_grad=False)
        self.layer = types.SimpleNamespace(
            layer_id=0,
            k_scale=loaded,
            k_scale_float=k_scale,
            is_cross_attention=False,
            tp_q_head_num=num_heads,
            tp_k_head_num=1,
            v_head_dim=D_V,
            head_dim=D_V + D_TAIL,
            scaling=SM_SCALE,
        )
        m.store.prepare_raw_fp8_k_scales([self.layer], "cuda")  # the once-at-load check
        assert self.layer.k_scale is loaded
        self.backend = make_backend(m.backend, m.layout.NsaKvLayout.RAW_FP8)
        # The context: K for every slot, written through the pool as a prefill would.
        self.k = torch.randn(SLOTS, D_V + D_TAIL, generator=gen).to(torch.bfloat16)
        kd = self.k.cuda()
        self.pool.set_mla_kv_buffer(
            self.layer, torch.arange(SLOTS, device="cuda"), kd[:, None, :D_V], kd[:, None, D_V:]
        )
        # This step's tokens: slots SLOTS-NUM_TOKENS.., new K written by forward_decode itself.
        self.loc = torch.arange(SLOTS - NUM_TOKENS, SLOTS)
        self.k[self.loc] = torch.randn(NUM_TOKENS, D_V + D_TAIL, generator=gen).bfloat16()
        self.q = torch.randn(NUM_TOKENS, num_heads, D_V + D_TAIL, generator=gen).bfloat16()
        idx = torch.stack(
            [torch.randperm(SLOTS - NUM_TOKENS, generator=gen)[:TOPK] for _ in range(NUM_TOKENS)]
        )
        idx[:, 1200:] = -1
        idx[:, 0] = self.loc  # each token attends to its own new K
        self.idx = idx.to(torch.int32)
        self.batch = types.SimpleNamespace(
            forward_mode=ForwardModeStub("decode"),
            token_to_kv_pool=self.pool,
            out_cache_loc=self.loc.cuda(),
        )
        new_k = self.k[self.loc].cuda()
        self.args = dict(
            q=self.q[..., :D_V].reshape(NUM_TOKENS, -1).cuda(),
            q_rope=self.q[..., D_V:].reshape(NUM_TOKENS, -1).cuda(),
            k=new_k[:, None, :D_V],
            v=new_k[:, None, :D_V],
            k_rope=new_k[:, None, D_V:],
            topk_indices=self.idx.cuda(),
        )

    def run(self) -> torch.Tensor:
        out = self.backend.forward_decode(layer=self.layer, forward_batch=self.batch, **self.args)
        return out.view(NUM_TOKENS, self.q.shape[1], D_V)

    def stored(self) -> torch.Tensor:
        # The pool allocates size + page_size rows; slots 0..SLOTS-1 are the ones written.
        return self.pool.get_key_buffer(0).view(torch.uint8)[:SLOTS, 0].cpu()

    def expected(self, k_scale: float) -> torch.Tensor:
        kv_ref = stored_bytes(self.k, k_scale, FN).view(FN).double() * k_scale
        # The Q the kernel computes with: FP8 per head when the dispatch picks FP8 GEMMs.
        fp8k = sys.modules[FP8_MODULE]
        arch, cu_count = fp8k.device_arch()
        cfg = fp8k.select_decode_fp8_config(
            arch=arch,
            cu_count=cu_count,
            num_tokens=NUM_TOKENS,
            num_heads=self.q.shape[1],
            d_v=D_V,
            d_tail=D_TAIL,
            topk=TOPK,
            sm_scale=SM_SCALE,
            kv_dtype=FN,
            max_shared_bytes=fp8k.device_shared_bytes(),
        )
        q = self.q.cuda()
        q_ref = quantize_q_per_head(q, FN) if cfg.mma_dtype == "fp8" else q.double()
        return sparse_mla_reference(q_ref, kv_ref.cuda(), self.idx.cuda(), SM_SCALE, D_V)


def rel_l2(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref).norm() / ref.norm()).item()


@pytest.mark.parametrize("k_scale", [0.37, 3.0])
@pytest.mark.parametrize("num_heads", [16, 128])
def test_backend_decode_stores_and_reads_with_the_layer_scale(modules, k_scale, num_heads):
    step = Step(modules, num_heads, k_scale, seed=num_heads + int(k_scale * 100))
    out = step.run()
    torch.cuda.synchronize()
    assert torch.equal(step.stored(), stored_bytes(step.k, k_scale, FN)), "pool bytes differ"
    ref = step.expected(k_scale)
    assert torch.isfinite(out).all()
    rel = rel_l2(out, ref)
    assert rel <= REL_L2_TOL, f"relative L2 error {rel:.4f}"
    # The same bytes read as if k_scale were 1 on the output side must be far off.
    wrong = rel_l2(out / k_scale, ref)
    assert wrong > 0.3, f"dropping k_scale on read should be caught, got {wrong:.3f}"


def test_graph_replay_follows_an_in_place_scale_change(modules):
    step = Step(modules, 16, 0.5, seed=21)
    step.run()  # compile + warm up outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):  # fails if the store or the decode syncs with the host
        out = step.run()
    graph.replay()
    torch.cuda.synchronize()
    assert rel_l2(out, step.expected(0.5)) <= REL_L2_TOL
    # In place, after capture. The context rows were stored with the old scale: rewrite them
    # with the new one (outside the graph), and poison this step's rows, which only the
    # replayed store writes.
    step.layer.k_scale.fill_(2.0)
    context = torch.arange(SLOTS - NUM_TOKENS, device="cuda")
    kd = step.k[: SLOTS - NUM_TOKENS].cuda()
    step.pool.set_mla_kv_buffer(step.layer, context, kd[:, None, :D_V], kd[:, None, D_V:])
    step.pool.get_key_buffer(0).view(torch.uint8)[step.loc.cuda()] = 0xA5
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(step.stored(), stored_bytes(step.k, 2.0, FN)), "replay kept the old scale"
    rel = rel_l2(out, step.expected(2.0))
    assert rel <= REL_L2_TOL, f"replay after the scale change: relative L2 error {rel:.4f}"
