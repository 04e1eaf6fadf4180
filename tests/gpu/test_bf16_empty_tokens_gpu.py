"""Padded top-k rows on a GPU, for every decode kernel of the NSA TileLang backend:

- a token whose every index is -1 (a padded row of a captured graph) gives finite zeros from
  v1 (MI300's bf16 path), v2 (CUDA's), the split partial + combine (MI355's) and the FP8
  kernel; the other tokens of the same batch match the float64 reference;
- with NaN in the memory just before the KV buffer (row -1 of the view the kernel gets), the
  kernels 0001 patches (v1 and the split kernel) stay finite and correct: unpatched, they gather
  row -1 for every -1 index and 0 * NaN poisons P @ V.

Outputs land in NaN-poisoned memory, so "zeros" cannot come from a fresh allocation.
Tolerance: bf16 inputs, bf16 P and outputs: relative L2 <= 1% (test_bf16_decode_gpu.py).
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip(
        "needs a CUDA GPU (run on the device: see docs/kernels.md)", allow_module_level=True
    )

from scripts.kerneltools.kernels import compile_bf16_decode, load_tilelang_kernel_module  # noqa: E402
from scripts.kerneltools.reference import (  # noqa: E402
    quantize_kv,
    quantize_q_per_head,
    sparse_mla_reference,
)
from scripts.kerneltools.shapes import D_TAIL, D_V, SM_SCALE, TOPK  # noqa: E402

SLOTS = 4096
NUM_TOKENS = 6
EMPTY = (1, 4)  # tokens whose every index is -1


@pytest.fixture(scope="module")
def tk(sglang_tree):
    return load_tilelang_kernel_module(sglang_tree)


def poison_allocator(nbytes: int) -> None:
    blob = torch.full((nbytes // 2 + 64,), float("nan"), dtype=torch.bfloat16, device="cuda")
    del blob


def make_inputs(num_heads: int, seed: int, kv_rows_before: int = 0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(NUM_TOKENS, num_heads, D_V + D_TAIL, generator=gen).bfloat16().cuda()
    base = torch.randn(SLOTS + kv_rows_before, 1, D_V + D_TAIL, generator=gen).bfloat16().cuda()
    base[:kv_rows_before] = float("nan")  # the memory just before the buffer
    kv = base[kv_rows_before:]  # the view a kernel is handed
    idx = torch.stack([torch.randperm(SLOTS, generator=gen)[:TOPK] for _ in range(NUM_TOKENS)])
    idx[:, 900:] = -1  # padded tail: every token has -1 entries
    idx[:, 5::7] = -1  # and holes
    for t in EMPTY:
        idx[t] = -1
    return q, kv, idx.to(torch.int32).cuda()


def check(out: torch.Tensor, q, kv, idx, what: str, tol: float = 1e-2):
    out = out.view(NUM_TOKENS, q.shape[1], D_V).double()
    assert torch.isfinite(out).all(), f"{what}: non-finite output"
    for t in EMPTY:
        assert (out[t] == 0).all(), f"{what}: token {t} has no valid index, must give zeros"
    keep = [t for t in range(NUM_TOKENS) if t not in EMPTY]
    ref = sparse_mla_reference(q.double(), kv[:, 0].double(), idx, SM_SCALE, D_V)
    o, r = out[keep], ref[keep]
    rel = ((o - r).norm() / r.norm()).item()
    assert rel <= tol, f"{what}: relative L2 error {rel:.4f}"


def run_v1(tk, q, kv, idx):
    # MI300's configuration (gfx942 path of tilelang_sparse_fwd).
    kernel = tk.sparse_attention_fwd_kernel_v1(
        q.shape[1], D_V, D_TAIL, TOPK, sm_scale=SM_SCALE, block_I=32, num_stages=1, threads=128
    )
    return kernel(q.unsqueeze(0), kv.unsqueeze(0), idx.view(1, NUM_TOKENS, 1, TOPK))


def run_v2(tk, q, kv, idx):
    try:
        kernel = tk.sparse_attention_fwd_kernel_v2(q.shape[1], D_V, D_TAIL, TOPK, sm_scale=SM_SCALE)
    except TypeError as err:  # tilelang 0.1.9 dropped T.gemm(wg_wait=...), which v2 uses
        if "wg_wait" not in str(err):
            raise
        pytest.skip(
            f"v0.5.9's v2 kernel does not build with this tilelang ({err}); run with "
            "tilelang 0.1.8 (scripts/gpu_suite.sh TL_LAYER, docs/kernels.md)"
        )
    return kernel(q.unsqueeze(0), kv.unsqueeze(0), idx.view(1, NUM_TOKENS, 1, TOPK))


def run_split(tk, q, kv, idx):
    fp8k = __import__("sys").modules["sglang.srt.layers.attention.nsa.tilelang_fp8_kernel"]
    target = fp8k.compile_target(fp8k.device_arch()[0])
    partial, combine = compile_bf16_decode(tk, q.shape[1], D_V, D_TAIL, TOPK, SM_SCALE, target)
    po, pl = partial(q.unsqueeze(0), kv.unsqueeze(0), idx.view(1, NUM_TOKENS, 1, TOPK))
    return combine(po, pl)


RUNNERS = {"v1": run_v1, "v2": run_v2, "split": run_split}


@pytest.mark.parametrize("kernel", list(RUNNERS))
@pytest.mark.parametrize("num_heads", [16, 64])
def test_a_token_without_valid_indices_gives_zeros(tk, kernel, num_heads):
    q, kv, idx = make_inputs(num_heads, seed=num_heads)
    poison_allocator(NUM_TOKENS * num_heads * D_V * 2 * 40)
    check(RUNNERS[kernel](tk, q, kv, idx), q, kv, idx, f"{kernel} H{num_heads}")


@pytest.mark.parametrize("mma", ["bf16", "fp8"])
@pytest.mark.parametrize("num_heads", [16, 64])
def test_fp8_kernel_gives_zeros_too(tk, num_heads, mma):
    q, kv, idx = make_inputs(num_heads, seed=7 + num_heads)
    kv8 = quantize_kv(kv[:, 0].float(), 1.0, torch.float8_e4m3fn).view(SLOTS, 1, -1)
    scale = torch.ones(1, dtype=torch.float32, device="cuda")
    poison_allocator(NUM_TOKENS * num_heads * D_V * 2 * 40)
    out = tk.tilelang_sparse_fwd_fp8(
        q, kv8, idx.view(NUM_TOKENS, 1, TOPK), SM_SCALE, D_V, kv_scale=scale, mma_dtype=mma
    )
    # The Q the kernel computes with: per-head FP8 for FP8 GEMMs.
    q_ref = quantize_q_per_head(q, torch.float8_e4m3fn) if mma == "fp8" else q
    check(out, q_ref, kv8.to(torch.bfloat16), idx, f"fp8 kernel ({mma} GEMMs) H{num_heads}", 3e-2)


@pytest.mark.parametrize("kernel", ["v1", "split"])
def test_nan_before_the_kv_buffer_never_reaches_the_output(tk, kernel):
    """Fails without patch 0001: -1 indices gather the row before the buffer."""
    q, kv, idx = make_inputs(16, seed=99, kv_rows_before=1)
    base = kv._base  # the larger allocation; its row 0 is row -1 of the view
    assert kv.data_ptr() - base.data_ptr() == kv.stride(0) * kv.element_size()
    assert torch.isnan(base[0]).all()
    check(RUNNERS[kernel](tk, q, kv, idx), q, kv, idx, f"{kernel} with NaN at row -1")
