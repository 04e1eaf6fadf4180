"""The raw-FP8 k_scale contract of the 0.5.23 series, on 0.5.23's own Triton kernels (CPU).

Writer: `set_mla_kv_buffer_triton_fp8_quant` stores saturate(k / k_scale) and skips loc < 0.
Readers: the Triton sparse-MLA decode (fused and split-K) and prefill entry points multiply the
scale back. Both FP8 flavours run (e4m3fn: MI355/NVIDIA, e4m3fnuz: MI300). Every test fails on
unpatched 0.5.23 (no k_scale, NaN on fnuz overflow, a write to row -1) and passes on the series.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch
from sparse_mla_reference import (
    FN,
    FNUZ,
    FP8_MAX,
    random_fp8_cache,
    random_indices,
    rel_l2,
    sparse_mla_reference,
)
from v0523_modules import (
    cpu_launch_facts,
    load_mla_buffer,
)

from scripts.kerneltools.upstream_triton import decode_call

NOPE, ROPE = 512, 64
POISON = 0xA5
K_SCALE = 0.37  # a checkpoint-like scale far from 1: ignoring it is a gross error
FORMATS = [pytest.param(FN, id="e4m3fn"), pytest.param(FNUZ, id="e4m3fnuz")]


@pytest.fixture(scope="module")
def mla_buffer(tree_v0_5_23: Path, interp: None) -> types.ModuleType:
    return load_mla_buffer(tree_v0_5_23)


# --- writer -------------------------------------------------------------------------------------


def _store(mla_buffer, rows, loc, k_scale, n_slots: int, fmt: torch.dtype = FN):
    """Write rows at loc into a poisoned pool of n_slots; the pool is a view that starts one row
    into its allocation, so a write to row -1 lands in the returned guard row."""
    alloc = torch.full((n_slots + 1, 1, NOPE + ROPE), POISON, dtype=torch.uint8)
    pool = alloc[1:]
    # No k_scale argument for None, so the same call runs on unpatched 0.5.23 too.
    kwargs = {} if k_scale is None else {"k_scale": k_scale}
    mla_buffer.set_mla_kv_buffer_triton_fp8_quant(
        pool,
        loc,
        rows[:, None, :NOPE].contiguous(),
        rows[:, None, NOPE:].contiguous(),
        fmt,
        **kwargs,
    )
    return alloc[0, 0], pool[:, 0]


def _fp8_ulp(y: torch.Tensor, fmt: torch.dtype) -> torch.Tensor:
    _, exp = torch.frexp(y.float())
    min_subnormal = 2.0**-9 if fmt == FN else 2.0**-10
    return torch.maximum(torch.exp2(exp.float() - 4), torch.tensor(min_subnormal))


@pytest.mark.parametrize("fmt", FORMATS)
def test_store_divides_by_k_scale(mla_buffer, fmt):
    g = torch.Generator().manual_seed(10)
    rows = (torch.randn(4, NOPE + ROPE, generator=g) * 20).to(torch.bfloat16)
    loc = torch.tensor([1, 3, 4, 6], dtype=torch.int64)
    _, pool = _store(mla_buffer, rows, loc, torch.tensor(K_SCALE), 8, fmt)
    want = rows.double() / K_SCALE
    got = pool[loc].view(fmt).double()
    inside = want.abs() <= FP8_MAX[fmt]
    # Round to nearest: within half an FP8 ulp of k / k_scale; beyond the range: saturated.
    assert ((got - want).abs() <= _fp8_ulp(want, fmt) / 2)[inside].all()
    assert (got[~inside].abs() == FP8_MAX[fmt]).all()
    untouched = torch.ones(8, dtype=torch.bool)
    untouched[loc] = False
    assert (pool[untouched] == POISON).all()


@pytest.mark.parametrize("fmt", FORMATS)
def test_store_saturates_to_the_format_max(mla_buffer, fmt):
    big = FP8_MAX[fmt]
    rows = torch.full((2, NOPE + ROPE), 1000.0)
    rows[:, :6] = torch.tensor([big / 2, big + 16, 2 * big, 1e4, 3e38, 0.0])
    rows[1] = -rows[1]
    loc = torch.tensor([1, 2], dtype=torch.int64)
    _, pool = _store(mla_buffer, rows.to(torch.bfloat16), loc, None, 4, fmt)
    got = pool[loc].view(fmt).float()
    # e4m3fnuz has no inf: an unclamped cast stores NaN from 248 up.
    assert not got.isnan().any(), "an overflowing value was stored as NaN"
    assert (got[0, 1:5] == big).all() and (got[0, 6:] == big).all()
    assert (got[1, 1:5] == -big).all() and (got[1, 6:] == -big).all()
    assert got[0, 0] == big / 2 and got[0, 5] == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_store_saturates_after_the_divide(mla_buffer, fmt):
    rows = torch.full((1, NOPE + ROPE), 200.0).to(torch.bfloat16)
    loc = torch.tensor([1], dtype=torch.int64)
    _, pool = _store(mla_buffer, rows, loc, torch.tensor(0.25), 4, fmt)
    assert (pool[1].view(fmt).float() == FP8_MAX[fmt]).all()


def test_store_skips_negative_locs_and_the_reserved_slot(mla_buffer):
    rows = torch.ones(3, NOPE + ROPE, dtype=torch.bfloat16)
    loc = torch.tensor([-1, 0, 2], dtype=torch.int64)
    guard, pool = _store(mla_buffer, rows, loc, None, 4)
    assert (guard == POISON).all(), "loc = -1 wrote the row before the pool"
    assert (pool[0] == POISON).all(), "the reserved slot 0 was written"
    assert (pool[2].view(FN).float() == 1.0).all()


def test_store_rejects_a_per_channel_k_scale(mla_buffer):
    rows = torch.ones(1, NOPE + ROPE, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="per-tensor k_scale"):
        _store(mla_buffer, rows, torch.tensor([1]), torch.ones(4), 4)


# --- readers ------------------------------------------------------------------------------------

SM_SCALE = 0.06
# NUM_GROUPS = 1: the interpreter cannot evaluate `(_G + g)[None, :]` (constexpr + tensor).
D_V, D_TAIL = 128, 64


def _inputs(fmt, seed: int, t: int, n: int = 96, topk: int = 64, h: int = 16):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(t, h, D_V + D_TAIL, generator=g).to(torch.bfloat16)
    kv = random_fp8_cache(n, D_V + D_TAIL, fmt, g)
    idx = random_indices(t, topk, n, g)
    return q, kv, idx


@pytest.mark.parametrize("kv_splits", [1, 4], ids=["fused", "split_k"])
def test_triton_decode_multiplies_k_scale_back(sparse_mla, kv_splits):
    _, dec, fmt = sparse_mla
    q, kv, idx = _inputs(fmt, 20 + kv_splits, t=3)
    out = decode_call(
        dec,
        q,
        kv,
        idx[:, None, :],
        SM_SCALE,
        D_V,
        kv_splits=kv_splits,
        workspace=[],
        k_scale=torch.tensor(K_SCALE),
    )[0]
    want = sparse_mla_reference(q, kv, idx, SM_SCALE, D_V, k_scale=K_SCALE)
    # FP8 Q and FP8 P in the kernel: a few percent; a missing scale is off by far more than 1.
    assert rel_l2(out, want) < 0.1


@pytest.mark.parametrize("num_cu", [1, 64], ids=["single_pass", "split_k"])
def test_triton_prefill_multiplies_k_scale_back(sparse_mla, num_cu):
    mla, dec, fmt = sparse_mla
    cpu_launch_facts(mla, dec, num_cu=num_cu)
    q, kv, idx = _inputs(fmt, 30 + num_cu, t=4)
    out = mla.triton_sparse_mla_fwd(
        q[..., :D_V],
        q[..., D_V:],
        kv,
        idx[:, None, :],
        SM_SCALE,
        D_V,
        k_scale=torch.tensor(K_SCALE),
    )[0]
    cpu_launch_facts(mla, dec)
    want = sparse_mla_reference(q, kv, idx, SM_SCALE, D_V, k_scale=K_SCALE)
    assert rel_l2(out, want) < 0.1


def test_triton_decode_without_k_scale_is_unscaled(sparse_mla):
    # None keeps the 1.0 meaning: a bf16 checkpoint's layers carry no k_scale.
    _, dec, fmt = sparse_mla
    q, kv, idx = _inputs(fmt, 40, t=2)
    out = decode_call(dec, q, kv, idx[:, None, :], SM_SCALE, D_V, kv_splits=1, workspace=[])[0]
    assert rel_l2(out, sparse_mla_reference(q, kv, idx, SM_SCALE, D_V)) < 0.1


def test_triton_rejects_a_per_channel_k_scale(sparse_mla):
    _, dec, fmt = sparse_mla
    q, kv, idx = _inputs(fmt, 41, t=1)
    with pytest.raises(ValueError, match="one-element float32 k_scale"):
        decode_call(
            dec,
            q,
            kv,
            idx[:, None, :],
            SM_SCALE,
            D_V,
            workspace=[],
            k_scale=torch.ones(4),
        )
