"""GPU tests of the 0.5.23 series: 0.5.23's own DSA kernels, compiled, on a CUDA or ROCm GPU.

The CPU tests (tests/v0_5_23) run the same properties under the Triton interpreter at small
shapes; here the DeepSeek-V3.2 shape (H 16, d_v 512, d_tail 64, topk 2048) runs compiled,
against the same float64 reference, in the device's FP8 format (e4m3fnuz on gfx942, else e4m3fn):

- the raw-FP8 store divides by k_scale, saturates and skips loc < 0;
- the Triton sparse-MLA decode (fused, split-K) and prefill multiply k_scale back, quantize a
  bf16 query per head, and mask indices past the cache;
- TileLang (if importable): tilelang_sparse_fwd with k_scale, a NaN slot 0 behind -1 padding,
  and indices past the cache.

Each of them fails on unpatched 0.5.23 (set SGLANG_TREE_V0_5_23 to the base commit's tree).

    SGLANG_TREE_V0_5_23=build/sglang-v0.5.23 python -m pytest tests/gpu/test_v0523_dsa_gpu.py -q
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from scripts.kerneltools.upstream_triton import decode_call

if not torch.cuda.is_available():
    pytest.skip(
        "needs a CUDA or ROCm GPU (torch.cuda.is_available() is False)", allow_module_level=True
    )

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "v0_5_23")]
from sparse_mla_reference import rel_l2, sparse_mla_reference  # noqa: E402
from v0523_modules import (  # noqa: E402
    STUBS,
    load_mla_buffer,
    load_sparse_mla,
    load_tilelang_kernel,
)

DEV = "cuda"
TREE = Path(
    os.environ.get("SGLANG_TREE_V0_5_23", HERE.parents[1] / "build" / "sglang-v0.5.23")
).resolve()
if not (TREE / "python" / "sglang" / "kernels").is_dir():
    pytest.skip(
        f"no sglang 0.5.23 tree at {TREE}: run `make apply SERIES=v0.5.23`", allow_module_level=True
    )

ARCH = getattr(torch.cuda.get_device_properties(0), "gcnArchName", "").split(":")[0]
FNUZ = ARCH.startswith("gfx94")
FMT = torch.float8_e4m3fnuz if FNUZ else torch.float8_e4m3fn
FP8_MAX = torch.finfo(FMT).max
D_V, D_TAIL, H, TOPK, SM_SCALE = 512, 64, 16, 2048, 576**-0.5
K_SCALE = 0.37


@pytest.fixture(scope="module")
def sparse_mla():
    stubs = dict(STUBS)
    stubs["sglang.srt.utils"] = {
        "get_device_core_count": lambda d=0: (
            torch.cuda.get_device_properties(d).multi_processor_count
        ),
        "is_gfx95_supported": lambda: ARCH.startswith("gfx95"),
    }
    return load_sparse_mla(TREE, "gpu", fnuz=FNUZ, interpreted=False, stubs=stubs)


def _cache(n: int, g: torch.Generator, nan_beyond: int = 0) -> torch.Tensor:
    """[n, 1, 576] FP8 cache values; a view of an allocation whose extra rows are NaN."""
    alloc = torch.full((n + nan_beyond, 1, D_V + D_TAIL), float("nan"))
    alloc[:n] = (torch.randn(n, 1, D_V + D_TAIL, generator=g) * 4).clamp(-FP8_MAX, FP8_MAX)
    return alloc.to(FMT).to(DEV)[:n]


def _indices(t: int, n: int, g: torch.Generator, past_end: int = 0) -> torch.Tensor:
    idx = torch.stack([torch.randperm(n, generator=g)[:TOPK] for _ in range(t)]).to(torch.int32)
    idx[:, TOPK // 2 :] = -1  # short sequences: half of the top-k is padding
    if past_end:
        idx[:, 1 : TOPK // 2 : 7] = n + torch.randint(0, past_end, (1,), generator=g).item()
    return idx.to(DEV)


def _query(t: int, g: torch.Generator, outlier: float = 0.0) -> torch.Tensor:
    q = torch.randn(t, H, D_V + D_TAIL, generator=g)
    if outlier:
        q[:, :, 7] = outlier
    return q.to(torch.bfloat16).to(DEV)


def _ref(q, kv, idx, k_scale=1.0):
    return sparse_mla_reference(q.cpu(), kv.cpu(), idx.cpu(), SM_SCALE, D_V, k_scale=k_scale)


@pytest.mark.parametrize("t, kv_splits", [(1, None), (4, 1), (64, None)])
def test_decode_k_scale(sparse_mla, t, kv_splits):
    _, dec = sparse_mla
    g = torch.Generator().manual_seed(t)
    q, kv = _query(t, g), _cache(4096, g)
    idx = _indices(t, 4096, g)
    out = decode_call(
        dec,
        q,
        kv,
        idx[:, None],
        SM_SCALE,
        D_V,
        kv_splits=kv_splits,
        workspace=[],
        k_scale=torch.tensor(K_SCALE, device=DEV),
    )[0]
    assert rel_l2(out.cpu(), _ref(q, kv, idx, K_SCALE)) < 0.05


@pytest.mark.parametrize("t", [4, 1024])
def test_prefill_k_scale(sparse_mla, t):
    mla, _ = sparse_mla
    g = torch.Generator().manual_seed(100 + t)
    q, kv = _query(t, g), _cache(4096, g)
    idx = _indices(t, 4096, g)
    out = mla.triton_sparse_mla_fwd(
        q[..., :D_V],
        q[..., D_V:],
        kv,
        idx[:, None],
        SM_SCALE,
        D_V,
        k_scale=torch.tensor(K_SCALE, device=DEV),
    )[0]
    assert rel_l2(out.cpu(), _ref(q, kv, idx, K_SCALE)) < 0.05


def test_decode_query_with_an_outlier_channel(sparse_mla):
    _, dec = sparse_mla
    g = torch.Generator().manual_seed(7)
    q, kv = _query(2, g, outlier=900.0), _cache(4096, g)
    kv_small = kv.float()
    kv_small[:, :, 7] = 0.02
    kv = kv_small.to(FMT)
    idx = _indices(2, 4096, g)
    out = decode_call(dec, q, kv, idx[:, None], SM_SCALE, D_V, workspace=[])[0]
    assert out.isfinite().all()
    assert rel_l2(out.cpu(), _ref(q, kv, idx)) < 0.05


def test_decode_masks_indices_past_the_cache(sparse_mla):
    _, dec = sparse_mla
    g = torch.Generator().manual_seed(8)
    kv = _cache(4096, g, nan_beyond=64)
    q, idx = _query(3, g), _indices(3, 4096, g, past_end=64)
    out = decode_call(dec, q, kv, idx[:, None], SM_SCALE, D_V, workspace=[])[0]
    assert out.isfinite().all()
    assert rel_l2(out.cpu(), _ref(q, kv, idx)) < 0.05


def test_store_scale_saturation_and_negative_locs():
    buf = load_mla_buffer(TREE, interpreted=False)
    rows = torch.randn(4, D_V + D_TAIL) * 30
    rows[0, :4] = torch.tensor([1e4, -1e4, 300.0, -300.0])
    alloc = torch.full((9, 1, D_V + D_TAIL), 0xA5, dtype=torch.uint8, device=DEV)
    pool = alloc[1:]
    loc = torch.tensor([2, -1, 5, 7], device=DEV)
    rows_d = rows.to(torch.bfloat16).to(DEV)
    buf.set_mla_kv_buffer_triton_fp8_quant(
        pool,
        loc,
        rows_d[:, None, :D_V].contiguous(),
        rows_d[:, None, D_V:].contiguous(),
        FMT,
        k_scale=torch.tensor(K_SCALE, device=DEV),
    )
    alloc = alloc.cpu()
    assert (alloc[0] == 0xA5).all(), "loc = -1 wrote the row before the pool"
    got = alloc[1:][[2, 5, 7], 0].view(FMT).double()
    want = (rows.to(torch.bfloat16).double() / K_SCALE)[[0, 2, 3]].clamp(-FP8_MAX, FP8_MAX)
    assert not got.isnan().any()
    assert ((got - want).abs() <= want.abs() / 16 + 2.0**-9).all()  # within half an FP8 ulp


def test_tilelang_k_scale_and_padding():
    pytest.importorskip("tilelang")
    tl = load_tilelang_kernel(TREE, fnuz=FNUZ)
    tl._is_hip = torch.version.hip is not None
    tl._is_gfx95_supported = ARCH.startswith("gfx95")
    g = torch.Generator().manual_seed(9)
    kv = _cache(4096, g, nan_beyond=64)
    kv_nan0 = kv.clone()
    kv_nan0[0] = float("nan")  # slot 0 poisoned: padding must not read it into the output
    q, idx = _query(4, g), _indices(4, 4096, g, past_end=64)
    idx[idx == 0] = 1
    out = tl.tilelang_sparse_fwd(
        q, kv_nan0, idx[:, None], SM_SCALE, D_V, k_scale=torch.tensor(K_SCALE, device=DEV)
    )[0]
    assert out.isfinite().all()
    assert rel_l2(out.cpu(), _ref(q, kv, idx, K_SCALE)) < 0.05
