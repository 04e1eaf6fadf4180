"""Pipelined FP8 sparse-MLA decode partial kernel (TileLang): a candidate to replace patch 0007's.

Same data contract as patch 0007's `sparse_mla_decode_partial_fp8` (and so as v0.5.9's bf16
decode partial), so v0.5.9's bf16 combine kernel and the float64 test reference apply unchanged:

    q            [1, T, H, d_v + d_tail]  bf16 (quantised per token and head in the kernel
                                          when the GEMMs are FP8)
    kv           [1, N, 1, d_v + d_tail]  FP8 (e4m3fn or e4m3fnuz): the cache holds K / kv_scale
    indices      [1, T, 1, topk]          int32 slot ids; < 0 or >= N means "no token"
    kv_scale     [1]                      fp32, the layer's k_scale
    partial_o    [1, T, G, H, d_v]        bf16, softmax-normalised within the split
    partial_lse  [1, T, G, H]             fp32, log2-domain LSE; -2^30 marks an empty split

What differs from patch 0007, which gathers one tile at a time with synchronous loads (16-byte
in its FP8-GEMM flavour; 8-byte, converted element by element on the way, in its bf16 flavour)
and has nothing in flight while its GEMMs run:

1. The validity of all of a workgroup's slot ids (`0 <= id < N`) is computed once, into
   shared memory (`inner_iter * block_I` bytes), with a per-tile "any valid" flag.
2. The KV gather is software-pipelined: `T.Pipelined(inner_iter, num_stages)` keeps
   `num_stages - 1` tiles in flight while the current one is computed. The gather is a plain
   byte copy of FP8 rows into an FP8 staging tile (no conversion on the way), so TileLang can
   issue it as 16-byte vector copies: `cp.async` with zero-fill for invalid rows on NVIDIA,
   128-bit global loads on AMD. A 576-byte row is 36 such copies.
3. Invalid rows are zero-filled by the copy's predicate (TileLang's safe-memory-access pass
   guards the data-dependent row index; the lowering tests check the guard is there), so a
   NaN byte pattern anywhere in the pool never meets P @ V, and no bytes are read for them.
4. Tiles whose slot ids are all invalid (sequences shorter than topk) skip the GEMMs and the
   softmax update (exact: such a tile would contribute P = 0 and alpha = 1).
5. GEMM flavours: "bf16" (the accurate one, ~0.24% relative L2 today) dequantises the staged FP8
   tile into one bf16 tile in shared memory (FP8 e4m3 values are exact in bf16) and runs bf16
   GEMMs; "fp8" runs FP8 x FP8 GEMMs on the staged bytes with per-head quantised Q and FP8 P,
   as patch 0007 does on AMD.

This module imports only tilelang and torch, so it can be built and lowered for any target on
any host.
"""

# No `from __future__ import annotations`: TileLang evaluates the prim_func annotations.

import math
from dataclasses import dataclass

import tilelang
import tilelang.language as T
import torch

LSE_EMPTY = -(2.0**30)  # log2-LSE of an empty split (the bf16 combine kernel's sentinel)
ROW_MAX_INIT = -(2.0**30)  # finite start of the running max: exp2 never sees inf - inf
LOG2E = 1.4426950408889634


@dataclass(frozen=True)
class FP8Flavour:
    """One e4m3 flavour: TileLang dtype name, largest finite value, softmax P scale (a power of
    two <= max / 1.75, so P * p_scale never overflows and the multiply is exact)."""

    name: str
    torch_dtype: torch.dtype
    max_finite: float
    p_scale: float


E4M3FN = FP8Flavour("float8_e4m3fn", torch.float8_e4m3fn, 448.0, 256.0)
E4M3FNUZ = FP8Flavour("float8_e4m3fnuz", torch.float8_e4m3fnuz, 240.0, 128.0)
FLAVOURS = {f.torch_dtype: f for f in (E4M3FN, E4M3FNUZ)}


def fp8_flavour(dtype: torch.dtype) -> FP8Flavour:
    if dtype not in FLAVOURS:
        raise ValueError(
            f"FP8 sparse-MLA decode supports KV dtypes {sorted(str(d) for d in FLAVOURS)}, "
            f"got {dtype}; use --kv-cache-dtype fp8_e4m3 or bfloat16"
        )
    return FLAVOURS[dtype]


@dataclass(frozen=True)
class PipelinedDecodeConfig:
    """Every JIT parameter of the kernel; compiled kernels are cached by it."""

    num_heads: int
    d_v: int
    d_tail: int
    topk: int
    sm_scale: float
    fp8: FP8Flavour
    block_I: int = 64
    inner_iter: int = 2
    h_per_block: int = 16
    threads: int = 256
    num_stages: int = 2
    mma_dtype: str = "bf16"  # "bf16": dequantised tiles, bf16 GEMMs; "fp8": FP8 GEMMs

    @property
    def num_splits(self) -> int:
        return self.topk // (self.block_I * self.inner_iter)

    @property
    def head_blocks(self) -> int:
        return -(-self.num_heads // self.h_per_block)

    def shared_bytes(self) -> int:
        """Upper estimate of shared memory (LDS), for config selection before any lowering."""
        d_qk = self.d_v + self.d_tail
        mma_item = 1 if self.mma_dtype == "fp8" else 2
        q = self.h_per_block * d_qk * mma_item
        staged = self.num_stages * self.block_I * d_qk  # FP8 staging tiles
        dequant = self.block_I * d_qk * 2 if self.mma_dtype == "bf16" else 0
        p = self.h_per_block * self.block_I * mma_item
        slots = self.inner_iter * self.block_I + self.inner_iter * 4  # row_ok, live
        rows = self.h_per_block * 4 * 4
        reduce_scratch = 2 * self.threads * 4  # cross-warp T.reduce_* exchange buffers
        return q + staged + dequant + p + slots + rows + reduce_scratch


def validate_config(cfg: PipelinedDecodeConfig, max_shared_bytes: int | None = None) -> None:
    """Reject shapes the kernel cannot run, in Python, before any JIT."""
    if cfg.num_heads < 1:
        raise ValueError(f"num_heads must be >= 1, got {cfg.num_heads}")
    if cfg.d_v <= 0 or cfg.d_v % 64:
        raise ValueError(f"d_v (kv_lora_rank) must be a positive multiple of 64, got {cfg.d_v}")
    if cfg.d_tail and (cfg.d_tail % 32 or cfg.d_tail & (cfg.d_tail - 1)):
        raise ValueError(
            f"d_tail (qk_rope_head_dim) must be 0 or a power of two >= 32, got {cfg.d_tail}"
        )
    if cfg.block_I not in (16, 32, 64):
        raise ValueError(f"block_I must be 16, 32 or 64, got {cfg.block_I}")
    if cfg.inner_iter < 1 or cfg.topk <= 0 or cfg.topk % (cfg.block_I * cfg.inner_iter):
        raise ValueError(
            f"topk ({cfg.topk}) must be a positive multiple of block_I * inner_iter "
            f"({cfg.block_I} * {cfg.inner_iter}); pad the index list with -1"
        )
    if cfg.h_per_block not in (16, 32, 64):
        raise ValueError(f"h_per_block must be 16, 32 or 64, got {cfg.h_per_block}")
    if cfg.num_stages < 2:
        raise ValueError(f"num_stages must be >= 2 (tiles in flight), got {cfg.num_stages}")
    if cfg.mma_dtype not in ("fp8", "bf16"):
        raise ValueError(f"mma_dtype must be 'fp8' or 'bf16', got {cfg.mma_dtype!r}")
    if not (math.isfinite(cfg.sm_scale) and cfg.sm_scale > 0):
        raise ValueError(f"sm_scale must be finite and > 0, got {cfg.sm_scale}")
    if max_shared_bytes is not None and cfg.shared_bytes() > max_shared_bytes:
        raise ValueError(
            f"pipelined FP8 decode tile needs ~{cfg.shared_bytes()} B of shared memory, the "
            f"device has {max_shared_bytes} B: lower h_per_block, block_I or num_stages"
        )


def _dynamic(name: str):
    # TileLang renamed T.symbolic to T.dynamic; keep the source version-independent.
    return T.dynamic(name) if hasattr(T, "dynamic") else T.symbolic(name)


# Warp specialisation and TMA stay off: the same source must lower for HIP, and the gather is
# index-driven (no TMA tensor map describes it). A cross-warp T.reduce_* exchanges through a
# shared scratch with no trailing barrier, and TileLang 0.1.9 may place that scratch over later
# shared tiles: every reduction below is followed by T.sync_threads() (patch 0002's race).
PASS_CONFIGS = {
    tilelang.PassConfigKey.TL_DISABLE_TMA_LOWER: True,
    tilelang.PassConfigKey.TL_DISABLE_WARP_SPECIALIZED: True,
}


def pipelined_decode_partial_program(cfg: PipelinedDecodeConfig):
    """The TileLang prim_func for `cfg` (not compiled; see `build_pipelined_decode_partial`)."""
    validate_config(cfg)
    H, D, DT, BI, HB = cfg.num_heads, cfg.d_v, cfg.d_tail, cfg.block_I, cfg.h_per_block
    DQK = D + DT
    G, HBLK, INNER = cfg.num_splits, cfg.head_blocks, cfg.inner_iter
    FP8, FMAX = cfg.fp8.name, cfg.fp8.max_finite
    BF16, F32 = "bfloat16", "float32"
    FP8_MMA = cfg.mma_dtype == "fp8"
    MMA = FP8 if FP8_MMA else BF16
    PSCALE = cfg.fp8.p_scale if FP8_MMA else 1.0
    LOG2_PSCALE = math.log2(PSCALE)
    SM_LOG2 = cfg.sm_scale * LOG2E
    DT_ALLOC = max(DT, 1)  # zero-sized buffers do not lower; the tail is skipped when DT == 0
    SLOTS = INNER * BI

    seq_len = _dynamic("seq_len")
    seq_len_kv = _dynamic("seq_len_kv")

    @T.prim_func
    def main(
        Q: T.Tensor([1, seq_len, H, DQK], BF16),
        KV: T.Tensor([1, seq_len_kv, 1, DQK], FP8),
        Indices: T.Tensor([1, seq_len, 1, cfg.topk], "int32"),
        KVScale: T.Tensor([1], F32),
        Partial_O: T.Tensor([1, seq_len, G, H, D], BF16),
        Partial_Lse: T.Tensor([1, seq_len, G, H], F32),
    ):
        with T.Kernel(seq_len * HBLK, G, threads=cfg.threads) as (bx, by):
            q_shared = T.alloc_shared([HB, D], MMA)
            q_tail_shared = T.alloc_shared([HB, DT_ALLOC], MMA)
            # FP8 staging tiles: T.Pipelined gives each stage its own copy.
            kv8 = T.alloc_shared([BI, D], FP8)
            kt8 = T.alloc_shared([BI, DT_ALLOC], FP8)
            if FP8_MMA:
                kv_mma, kt_mma = kv8, kt8
            else:
                kv_mma = T.alloc_shared([BI, D], BF16)
                kt_mma = T.alloc_shared([BI, DT_ALLOC], BF16)
            p_shared = T.alloc_shared([HB, BI], MMA)
            row_ok = T.alloc_shared([SLOTS], "int8")  # 1: the slot id names a pool row
            live = T.alloc_shared([INNER], "int32")  # 1: the tile has a valid slot

            q_frag = T.alloc_fragment([HB, D], BF16)
            q_tail_frag = T.alloc_fragment([HB, DT_ALLOC], BF16)
            q_amax = T.alloc_fragment([HB], BF16)
            q_amax_tail = T.alloc_fragment([HB], BF16)
            q_amax_shared = T.alloc_shared([HB], F32)
            row_scale = T.alloc_shared([HB], F32)
            acc_s = T.alloc_fragment([HB, BI], F32)
            acc_o = T.alloc_fragment([HB, D], F32)
            m_i = T.alloc_fragment([HB], F32)
            m_prev = T.alloc_fragment([HB], F32)
            alpha = T.alloc_shared([HB], F32)
            l_shared = T.alloc_shared([HB], F32)
            row_sum = T.alloc_fragment([HB], F32)
            l_i = T.alloc_fragment([HB], F32)

            t_i = bx // HBLK
            base = by * SLOTS
            h0 = (bx % HBLK) * HB
            kv_scale = KVScale[0]

            # 1. Validity of all this workgroup's slot ids, once; per-tile liveness.
            for j in T.Parallel(INNER):
                live[j] = 0
            for i in T.Parallel(SLOTS):
                row_ok[i] = T.Cast(
                    "int8",
                    (Indices[0, t_i, 0, base + i] >= 0)
                    & (Indices[0, t_i, 0, base + i] < seq_len_kv),
                )
            T.sync_threads()
            for i in T.Parallel(SLOTS):
                if row_ok[i] != 0:
                    live[i // BI] = 1  # every writer stores the same value

            # 2. Q (head rows past H are zero; no reliance on automatic guards).
            if FP8_MMA:
                for h, d in T.Parallel(HB, D):
                    q_frag[h, d] = T.if_then_else(h0 + h < H, Q[0, t_i, h0 + h, d], T.bfloat16(0))
                T.reduce_absmax(q_frag, q_amax, dim=1)
                T.sync_threads()
                for h in T.Parallel(HB):
                    q_amax_shared[h] = T.Cast(F32, q_amax[h])
                if DT > 0:
                    for h, d in T.Parallel(HB, DT):
                        q_tail_frag[h, d] = T.if_then_else(
                            h0 + h < H, Q[0, t_i, h0 + h, D + d], T.bfloat16(0)
                        )
                    T.reduce_absmax(q_tail_frag, q_amax_tail, dim=1)
                    T.sync_threads()
                    for h in T.Parallel(HB):
                        q_amax_shared[h] = T.max(q_amax_shared[h], T.Cast(F32, q_amax_tail[h]))
                for h in T.Parallel(HB):
                    # q ~= q8 * amax / FMAX; the floor keeps an all-zero row finite.
                    q_amax_shared[h] = T.max(q_amax_shared[h], T.float32(1e-30))
                for h in T.Parallel(HB):
                    row_scale[h] = SM_LOG2 * kv_scale * (q_amax_shared[h] / FMAX)
                for h, d in T.Parallel(HB, D):
                    q_shared[h, d] = T.Cast(
                        FP8,
                        T.clamp(T.Cast(F32, q_frag[h, d]) * (FMAX / q_amax_shared[h]), -FMAX, FMAX),
                    )
                if DT > 0:
                    for h, d in T.Parallel(HB, DT):
                        q_tail_shared[h, d] = T.Cast(
                            FP8,
                            T.clamp(
                                T.Cast(F32, q_tail_frag[h, d]) * (FMAX / q_amax_shared[h]),
                                -FMAX,
                                FMAX,
                            ),
                        )
            else:
                for h, d in T.Parallel(HB, D):
                    q_shared[h, d] = T.if_then_else(h0 + h < H, Q[0, t_i, h0 + h, d], T.bfloat16(0))
                if DT > 0:
                    for h, d in T.Parallel(HB, DT):
                        q_tail_shared[h, d] = T.if_then_else(
                            h0 + h < H, Q[0, t_i, h0 + h, D + d], T.bfloat16(0)
                        )
                for h in T.Parallel(HB):
                    row_scale[h] = SM_LOG2 * kv_scale
            T.fill(acc_o, 0)
            T.fill(l_i, 0)
            T.fill(m_i, ROW_MAX_INIT)
            T.sync_threads()

            for it in T.Pipelined(INNER, num_stages=cfg.num_stages):
                # 3. Gather: plain byte copies of whole FP8 rows, which TileLang issues as
                #    16-byte async copies. The slot id indexes the pool directly: TileLang's
                #    safe-memory-access pass predicates each copy on 0 <= slot < N and a failed
                #    predicate zero-fills the row without reading it. (An explicit if_then_else
                #    here would stop the copy from being made asynchronous; the lowering tests
                #    check that the predicate is there.)
                for i, d in T.Parallel(BI, D):
                    kv8[i, d] = KV[0, Indices[0, t_i, 0, base + it * BI + i], 0, d]
                if DT > 0:
                    for i, d in T.Parallel(BI, DT):
                        kt8[i, d] = KV[0, Indices[0, t_i, 0, base + it * BI + i], 0, D + d]
                if live[it] != 0:
                    if not FP8_MMA:
                        # Dequantise (e4m3 is exact in bf16). Invalid rows are zero already;
                        # the select keeps them zero even if a TileLang drops the predicate.
                        for i, d in T.Parallel(BI, D):
                            kv_mma[i, d] = T.if_then_else(
                                row_ok[it * BI + i] != 0, T.Cast(BF16, kv8[i, d]), T.bfloat16(0)
                            )
                        if DT > 0:
                            for i, d in T.Parallel(BI, DT):
                                kt_mma[i, d] = T.if_then_else(
                                    row_ok[it * BI + i] != 0, T.Cast(BF16, kt8[i, d]), T.bfloat16(0)
                                )
                    # 4. Scores; invalid columns start at -inf.
                    for h, i in T.Parallel(HB, BI):
                        acc_s[h, i] = T.if_then_else(row_ok[it * BI + i] != 0, 0, -T.infinity(F32))
                    T.gemm(
                        q_shared, kv_mma, acc_s, transpose_B=True, policy=T.GemmWarpPolicy.FullCol
                    )
                    if DT > 0:
                        T.gemm(
                            q_tail_shared,
                            kt_mma,
                            acc_s,
                            transpose_B=True,
                            policy=T.GemmWarpPolicy.FullCol,
                        )
                    # 5. Online softmax (row_scale > 0 is constant along a row).
                    T.copy(m_i, m_prev)
                    T.reduce_max(acc_s, m_i, dim=1, clear=False)
                    T.sync_threads()
                    for h in T.Parallel(HB):
                        alpha[h] = T.exp2((m_prev[h] - m_i[h]) * row_scale[h])
                    for h, i in T.Parallel(HB, BI):
                        # P as MMA(P * PSCALE); the row sum adds the rounded values, so the
                        # output is an exactly normalised average of V rows.
                        acc_s[h, i] = T.Cast(
                            F32, T.Cast(MMA, T.exp2((acc_s[h, i] - m_i[h]) * row_scale[h]) * PSCALE)
                        )
                    T.reduce_sum(acc_s, row_sum, dim=1)
                    T.sync_threads()
                    for h in T.Parallel(HB):
                        l_i[h] = l_i[h] * alpha[h] + row_sum[h]
                    T.copy(acc_s, p_shared)
                    for h, d in T.Parallel(HB, D):
                        acc_o[h, d] = acc_o[h, d] * alpha[h]
                    # 6. O += P @ V (V = the latent part of the same rows).
                    T.gemm(p_shared, kv_mma, acc_o, policy=T.GemmWarpPolicy.FullCol)

            # 7. Finalise: V back to K's scale; an empty split gives O = 0 and the sentinel.
            for h in T.Parallel(HB):
                l_shared[h] = l_i[h]
            for h, d in T.Parallel(HB, D):
                acc_o[h, d] = (
                    acc_o[h, d] * kv_scale / T.if_then_else(l_shared[h] == 0, 1.0, l_shared[h])
                )
            for h in T.Parallel(HB):
                row_sum[h] = T.if_then_else(
                    l_i[h] == 0,
                    LSE_EMPTY,
                    T.log2(l_i[h]) - LOG2_PSCALE + m_i[h] * row_scale[h],
                )
            for h, d in T.Parallel(HB, D):
                if h0 + h < H:
                    Partial_O[0, t_i, by, h0 + h, d] = T.Cast(BF16, acc_o[h, d])
            for h in T.Parallel(HB):
                if h0 + h < H:
                    Partial_Lse[0, t_i, by, h0 + h] = row_sum[h]

    return main


@dataclass(frozen=True)
class ArchTuning:
    """Per-arch start points of the candidate (to be tuned on hardware)."""

    block_I: int
    threads: int
    num_stages: int
    max_h_per_block: int
    blocks_per_cu: int  # workgroups per CU the split count aims for
    max_shared_bytes: int
    # FP8 GEMMs from this many heads per workgroup on, bf16 GEMMs below.
    fp8_mma_min_h_per_block: int


ARCH_TUNING = {
    # MI300X/MI325X, 64 KiB LDS: two 64-row FP8 stages (72 KiB) do not fit, so 32-row tiles;
    # an FP8 MFMA needs >= 16 score columns per wavefront, so 2 wavefronts of 64 threads.
    "gfx942": ArchTuning(32, 128, 2, 32, 1, 64 * 1024, 0),
    "gfx950": ArchTuning(64, 256, 2, 64, 1, 160 * 1024, 0),  # MI350X/MI355X, 160 KiB LDS
    # H100/H200: one workgroup per SM (the bf16 tile alone is 72 KiB); at 64 heads per
    # workgroup the bf16 flavour does not fit (Q + two FP8 stages + the bf16 tile > 227 KiB).
    "sm_90": ArchTuning(64, 256, 2, 64, 1, 227 * 1024, 64),
}


def arch_tuning(arch: str) -> ArchTuning:
    is_hopper_or_newer = arch.startswith("sm_") and int(arch[3:].rstrip("a")) >= 90
    key = "sm_90" if is_hopper_or_newer else arch
    if key not in ARCH_TUNING:
        raise ValueError(
            f"the pipelined FP8 decode kernel supports {sorted(ARCH_TUNING)} (sm_90 and newer "
            f"on NVIDIA), not {arch}"
        )
    return ARCH_TUNING[key]


def select_pipelined_config(
    *,
    arch: str,
    cu_count: int,
    num_tokens: int,
    num_heads: int,
    d_v: int,
    d_tail: int,
    topk: int,
    sm_scale: float,
    kv_dtype: torch.dtype,
    mma_dtype: str | None = None,
    blocks_per_cu: int | None = None,
    num_stages: int | None = None,
    inner_iter: int | None = None,
) -> PipelinedDecodeConfig:
    """Block sizes and split count for one call (pure: the device facts are inputs).

    inner_iter is the largest power of two dividing topk / block_I that still gives
    cu_count * blocks_per_cu workgroups (as patch 0007 picks it); the keyword overrides are for
    benchmarks and experiments.
    """
    tune = arch_tuning(arch)
    widest = min(max(16, 1 << (num_heads - 1).bit_length()), tune.max_h_per_block)
    mma = mma_dtype or ("fp8" if widest >= tune.fp8_mma_min_h_per_block else "bf16")
    stages = num_stages or tune.num_stages
    tiles = topk // tune.block_I if topk % tune.block_I == 0 else 0

    def config(h_per_block: int, inner: int) -> PipelinedDecodeConfig:
        return PipelinedDecodeConfig(
            num_heads, d_v, d_tail, topk, sm_scale, fp8_flavour(kv_dtype),
            tune.block_I, inner, h_per_block, tune.threads, stages, mma,
        )  # fmt: skip

    def splits_for(h_per_block: int) -> int:
        if inner_iter is not None:
            return inner_iter
        head_blocks = -(-num_heads // h_per_block)
        target = max(1, cu_count) * (blocks_per_cu or tune.blocks_per_cu)
        inner = 1
        while (
            tiles
            and tiles % (inner * 2) == 0
            and (num_tokens * head_blocks * tiles // (inner * 2) >= target)
        ):
            inner *= 2
        return inner

    # The widest head block that fits (the bf16 flavour's extra tile may not fit beside a wide
    # one); the split count follows from it.
    h_per_block = widest
    while h_per_block > 16:
        candidate = config(h_per_block, splits_for(h_per_block))
        if candidate.shared_bytes() <= tune.max_shared_bytes:
            break
        h_per_block //= 2
    cfg = config(h_per_block, splits_for(h_per_block))
    validate_config(cfg, tune.max_shared_bytes)
    return cfg


def compile_target(arch: str) -> str:
    """An explicit TileLang target string (stable kernel-cache keys across machines)."""
    if arch.startswith("gfx"):
        return "hip"
    major_minor = arch[3:]
    return f"cuda -arch=sm_{major_minor}{'a' if int(major_minor) >= 90 else ''}"


# Non-negative out_idx: tilelang 0.1.9 rewrites a negative one in place (unstable cache keys).
_OUT_IDX = [4, 5]
_compiled: dict[tuple, object] = {}


def build_pipelined_decode_partial(cfg: PipelinedDecodeConfig, target: str):
    """Compile (once per process and cfg/target; TileLang also caches on disk) the kernel."""
    key = (cfg, target)
    if key not in _compiled:
        _compiled[key] = tilelang.compile(
            pipelined_decode_partial_program(cfg),
            out_idx=_OUT_IDX,
            target=target,
            pass_configs=PASS_CONFIGS,
        )
    return _compiled[key]


def pipelined_sparse_fwd_fp8(
    combine_kernel,
    q: torch.Tensor,
    kv: torch.Tensor,
    indices: torch.Tensor,
    sm_scale: float,
    d_v: int,
    kv_scale: torch.Tensor,
    *,
    arch: str,
    cu_count: int,
    **overrides,
) -> torch.Tensor:
    """Partial kernel + v0.5.9's bf16 combine, shaped like patch 0008's tilelang_sparse_fwd_fp8.

    q [T, H, d_v + d_tail] bf16, kv [N, 1, d_v + d_tail] FP8, indices [T, 1, topk] int32,
    kv_scale a one-element fp32 tensor. `combine_kernel(num_heads, d_v, num_splits, block_I,
    target)` returns the compiled combine (patch 0008's `_fp8_combine_kernel`). `arch` and
    `cu_count` are passed in, not queried, so the call holds no host sync (graph capture).
    Returns [1, T, H, d_v] bf16.
    """
    if q.dtype != torch.bfloat16 or q.dim() != 3:
        raise ValueError(f"q must be [T, H, D] bfloat16, got {tuple(q.shape)} {q.dtype}")
    if indices.dtype != torch.int32:
        raise ValueError(f"indices must be int32 slot ids, got {indices.dtype}")
    if kv_scale.numel() != 1 or kv_scale.dtype != torch.float32:
        raise ValueError("kv_scale must be a one-element float32 tensor (the layer's k_scale)")
    num_tokens, num_heads, d_qk = q.shape
    cfg = select_pipelined_config(
        arch=arch,
        cu_count=cu_count,
        num_tokens=num_tokens,
        num_heads=num_heads,
        d_v=d_v,
        d_tail=d_qk - d_v,
        topk=indices.shape[-1],
        sm_scale=sm_scale,
        kv_dtype=kv.dtype,
        **overrides,
    )
    target = compile_target(arch)
    partial = build_pipelined_decode_partial(cfg, target)
    partial_o, partial_lse = partial(
        q.unsqueeze(0), kv.unsqueeze(0), indices.unsqueeze(0), kv_scale.reshape(1)
    )
    if cfg.num_splits == 1:
        return partial_o[:, :, 0]
    combine = combine_kernel(num_heads, d_v, cfg.num_splits, cfg.block_I, target)
    return combine(partial_o, partial_lse)
