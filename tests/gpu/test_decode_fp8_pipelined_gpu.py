"""The pipelined FP8 decode candidate (scripts/kerneltools/fp8_decode_pipelined.py) + v0.5.9's
combine against the float64 reference, on a GPU: the matrix of test_decode_fp8_gpu.py (T in
{1, 3, 64, 65, 257}, H in {8, 16, 32, 128}, all / prefix 700 / one / none / random holes with
out-of-range ids, NaN bytes in slot 0, k_scale in {1, 0.5, 2}) in both GEMM flavours, plus what
the pipeline adds: several tiles per workgroup with whole -1 tiles between valid ones (the tile
skip inside a running pipeline), three stages, one tile per workgroup, bit-stability across
repeats, CUDA-graph replay, and the relative L2 error of each flavour.

Tolerances are those of test_decode_fp8_gpu.py (why: see its docstring); the bf16 flavour is
also held to 1% relative L2 (it rounds only P to bf16 and the output to bf16).
"""

from __future__ import annotations

import sys

import pytest
import torch

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip(
        "needs a CUDA GPU (run on the device: see docs/kernels.md)", allow_module_level=True
    )

from scripts.kerneltools import fp8_decode_pipelined as fdp  # noqa: E402
from scripts.kerneltools.kernels import load_tilelang_kernel_module  # noqa: E402
from scripts.kerneltools.reference import (  # noqa: E402
    quantize_kv,
    quantize_q_per_head,
    sparse_mla_reference,
)
from scripts.kerneltools.shapes import (  # noqa: E402
    CASES,
    D_TAIL,
    D_V,
    EXTRA_HEADS,
    NUM_SLOTS,
    PIPELINED_OVERRIDE_CASES,
    SM_SCALE,
    TOPK,
)
from tests.gpu.test_decode_fp8_gpu import check, make_indices, poison_allocator  # noqa: E402

FP8 = torch.float8_e4m3fn
MMA_MODES = ("bf16", "fp8")
BF16_REL_L2_TOL = 0.01


@pytest.fixture(scope="module")
def tk(sglang_tree):
    return load_tilelang_kernel_module(sglang_tree)


@pytest.fixture(scope="module")
def device(tk):
    """(arch, compute units): passed to the launcher, which queries nothing itself."""
    return sys.modules["sglang.srt.layers.attention.nsa.tilelang_fp8_kernel"].device_arch()


def run_pipelined(tk, device, q, kv, idx, scale, mma, **overrides):
    arch, cu = device
    num_tokens = q.shape[0]
    out = fdp.pipelined_sparse_fwd_fp8(
        tk._fp8_combine_kernel, q, kv, idx.view(num_tokens, 1, TOPK), SM_SCALE, D_V, scale,
        arch=arch, cu_count=cu, mma_dtype=mma, **overrides,
    )  # fmt: skip
    return out.view(num_tokens, q.shape[1], D_V)


def tile_holes(num_tokens: int, gen: torch.Generator, tile: int = 64) -> torch.Tensor:
    """Valid ids in every other tile of `tile` slots, whole tiles of -1 between them (and a
    partly valid tile), so a workgroup with several tiles skips some mid-pipeline."""
    idx = torch.full((num_tokens, TOPK), -1, dtype=torch.int32)
    for t in range(num_tokens):
        ids = torch.randperm(NUM_SLOTS - 1, generator=gen)[:TOPK] + 1
        for start in range(0, TOPK, 2 * tile):
            idx[t, start : start + tile] = ids[start : start + tile].to(torch.int32)
        idx[t, tile * 2 + tile // 2 : tile * 3] = -1  # tile 2: half valid
    return idx


def run_case(tk, device, num_tokens, num_heads, pattern, kv_scale, nan_slot0, seed, mma,
             q_std=1.0, **overrides):  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    q = (torch.randn(num_tokens, num_heads, D_V + D_TAIL, generator=gen) * q_std).to(torch.bfloat16)
    kv8 = quantize_kv(torch.randn(NUM_SLOTS, D_V + D_TAIL, generator=gen), kv_scale, FP8)
    if nan_slot0:
        kv8.view(torch.uint8)[0] = 0x7F  # e4m3fn NaN in every byte of slot 0
    if pattern == "tile-holes":
        indices = tile_holes(num_tokens, gen)
    else:
        indices = make_indices(pattern, num_tokens, gen, avoid_slot0=nan_slot0)
    q_d, kv_d, idx_d = q.cuda(), kv8.cuda().view(NUM_SLOTS, 1, -1), indices.cuda()
    scale_d = torch.tensor([kv_scale], dtype=torch.float32, device="cuda")
    poison_allocator(num_tokens * num_heads * D_V * 2 * 32)
    out = run_pipelined(tk, device, q_d, kv_d, idx_d, scale_d, mma, **overrides).double()
    q_ref = quantize_q_per_head(q_d, FP8) if mma == "fp8" else q_d.double()
    ref = sparse_mla_reference(q_ref, kv8.cuda().double() * kv_scale, idx_d, SM_SCALE, D_V)
    return (q_d, kv_d, idx_d, scale_d), out, ref


def rel_l2(out, ref, idx) -> float:
    live = ((idx >= 0) & (idx < NUM_SLOTS)).any(dim=-1)
    return ((out[live] - ref[live]).norm() / ref[live].norm()).item()


def _seed(case) -> int:
    t, h, pattern, kv_scale, _ = case
    return (t * 1009 + h * 101 + len(pattern) * 7 + int(kv_scale * 4)) % 2**31


@pytest.mark.parametrize("mma", MMA_MODES, ids=str)
@pytest.mark.parametrize(
    "case",
    CASES,
    ids=lambda c: "T{}-H{}-{}-s{}-{}".format(c[0], c[1], c[2], c[3], "nan0" if c[4] else "clean"),
)
def test_matches_reference(tk, device, case, mma):
    inputs, out, ref = run_case(tk, device, *case, seed=_seed(case), mma=mma)
    check(out, ref, inputs[2], case)
    if mma == "bf16" and case[2] != "none":
        assert rel_l2(out, ref, inputs[2]) <= BF16_REL_L2_TOL, case


@pytest.mark.parametrize("mma", MMA_MODES, ids=str)
@pytest.mark.parametrize("num_heads", EXTRA_HEADS)
def test_other_head_counts(tk, device, num_heads, mma):
    inputs, out, ref = run_case(tk, device, 33, num_heads, "holes", 0.5, True, num_heads, mma)
    check(out, ref, inputs[2], f"H{num_heads}")


@pytest.mark.parametrize(
    "num_tokens, num_heads, mma, overrides",
    PIPELINED_OVERRIDE_CASES,
    ids=lambda v: str(v).replace(" ", ""),
)
@pytest.mark.parametrize("pattern", ["tile-holes", "prefix700", "holes"])
def test_pipeline_shapes(tk, device, num_tokens, num_heads, mma, overrides, pattern):
    # Several tiles per workgroup (and whole -1 tiles skipped inside the pipeline), three
    # stages, and a single tile per workgroup.
    inputs, out, ref = run_case(
        tk, device, num_tokens, num_heads, pattern, 2.0, True, 77, mma, **dict(overrides)
    )
    check(out, ref, inputs[2], (num_tokens, num_heads, mma, overrides, pattern))


@pytest.mark.parametrize("mma", MMA_MODES, ids=str)
def test_large_q_magnitudes(tk, device, mma):
    inputs, out, ref = run_case(tk, device, 8, 16, "all", 1.0, False, 3, mma, q_std=3000.0)
    check(out, ref, inputs[2], "q_std=3000")


@pytest.mark.parametrize("mma", MMA_MODES, ids=str)
def test_relative_error_per_flavour(tk, device, mma, record_property):
    # The figure the issue asks for: relative L2 against float64, DeepSeek-V3.2 decode shape.
    inputs, out, ref = run_case(tk, device, 64, 16, "all", 1.0, False, 21, mma)
    rel = rel_l2(out, ref, inputs[2])
    record_property(f"rel_l2_{mma}", rel)
    print(f"\npipelined {mma} GEMMs: relative L2 vs float64 = {rel:.5f}")
    assert rel <= (BF16_REL_L2_TOL if mma == "bf16" else 0.03)


def test_dropped_scale_would_be_caught(tk, device):
    (q, kv, idx, _), _, ref = run_case(tk, device, 4, 16, "all", 2.0, False, 11, "bf16")
    one = torch.ones(1, dtype=torch.float32, device="cuda")
    wrong = run_pipelined(tk, device, q, kv, idx, one, "bf16").double()
    assert rel_l2(wrong, ref, idx) > 0.3


@pytest.mark.parametrize("mma", MMA_MODES, ids=str)
@pytest.mark.parametrize("num_tokens", [5, 8, 32, 64])
def test_repeated_runs_bitwise_identical(tk, device, num_tokens, mma):
    (q, kv, idx, scale), first, _ = run_case(tk, device, num_tokens, 16, "holes", 1.0, True, 5, mma)
    for _ in range(5):
        again = run_pipelined(tk, device, q, kv, idx, scale, mma).double()
        assert torch.equal(again, first), "run-to-run difference"


@pytest.mark.parametrize("mma", MMA_MODES, ids=str)
def test_cuda_graph_replay_follows_scale_and_indices(tk, device, mma):
    (q, kv, idx, scale), _, _ = run_case(tk, device, 8, 16, "prefix700", 1.0, False, 9, mma)
    run_pipelined(tk, device, q, kv, idx, scale, mma)  # compile + warm up outside capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = run_pipelined(tk, device, q, kv, idx, scale, mma)
    graph.replay()
    base = out.clone()
    scale.fill_(2.0)
    graph.replay()
    assert torch.equal(out, run_pipelined(tk, device, q, kv, idx, scale, mma))
    assert not torch.equal(out, base)
    idx[:, 100:] = -1  # in-place index change: the replay must see it too
    graph.replay()
    assert torch.equal(out, run_pipelined(tk, device, q, kv, idx, scale, mma))
