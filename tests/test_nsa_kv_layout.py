"""The KV row layout decision (patch 0004), the budget that follows it (patch 0005): the pure
helper and the runner mixin that uses it.

The expected layouts are written out by hand per (backends, dtype) row and platform column,
from DESIGN §8 patch 2, so that the table documents the rule instead of re-deriving it.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from scripts.kerneltools.loader import install_stub, load_tree_module

BF16, FN, FNUZ, U8 = torch.bfloat16, torch.float8_e4m3fn, torch.float8_e4m3fnuz, torch.uint8
DTYPES = {"bf16": BF16, "e4m3fn": FN, "e4m3fnuz": FNUZ}

# name -> (is_hip, CUDA major; ignored on ROCm). gfx942/gfx950 report major 9 on ROCm.
PLATFORMS = {
    "gfx942": (True, 9),
    "gfx950": (True, 9),
    "sm80": (False, 8),
    "sm90": (False, 9),
    "sm100": (False, 10),
}
BACKENDS = {
    "both_tilelang": ("tilelang", "tilelang"),
    "tilelang+flashmla_kv": ("tilelang", "flashmla_kv"),
    "flashmla_sparse+tilelang": ("flashmla_sparse", "tilelang"),
    "tilelang+aiter": ("tilelang", "aiter"),
    "both_trtllm": ("trtllm", "trtllm"),
    "trtllm+tilelang": ("trtllm", "tilelang"),
    "flashmla_auto+flashmla_kv": ("flashmla_auto", "flashmla_kv"),
    "flashmla_sparse+fa3": ("flashmla_sparse", "fa3"),
    "both_aiter": ("aiter", "aiter"),
}

B, R, S, P = "bf16", "raw_fp8", "scaled_fp8_656", "plain_fp8"
# (backends, dtype): expected tag on gfx942, gfx950, sm80, sm90, sm100
TABLE = {
    ("both_tilelang", "bf16"): (B, B, B, B, B),
    # CUDA: raw FP8 on sm_90 only (the TileLang FP8 path is tuned and tested there).
    ("both_tilelang", "e4m3fn"): (R, R, S, R, S),
    ("both_tilelang", "e4m3fnuz"): (R, R, P, R, P),
    ("tilelang+flashmla_kv", "bf16"): (B, B, B, B, B),
    ("tilelang+flashmla_kv", "e4m3fn"): (S, S, S, S, S),
    ("tilelang+flashmla_kv", "e4m3fnuz"): (P, P, P, P, P),
    ("flashmla_sparse+tilelang", "bf16"): (B, B, B, B, B),
    ("flashmla_sparse+tilelang", "e4m3fn"): (S, S, S, S, S),
    ("flashmla_sparse+tilelang", "e4m3fnuz"): (P, P, P, P, P),
    ("tilelang+aiter", "bf16"): (B, B, B, B, B),
    ("tilelang+aiter", "e4m3fn"): (S, S, S, S, S),
    ("tilelang+aiter", "e4m3fnuz"): (P, P, P, P, P),
    ("both_trtllm", "bf16"): (B, B, B, B, B),
    ("both_trtllm", "e4m3fn"): (P, P, P, P, P),
    ("both_trtllm", "e4m3fnuz"): (P, P, P, P, P),
    ("trtllm+tilelang", "bf16"): (B, B, B, B, B),
    ("trtllm+tilelang", "e4m3fn"): (P, P, P, P, P),
    ("trtllm+tilelang", "e4m3fnuz"): (P, P, P, P, P),
    ("flashmla_auto+flashmla_kv", "bf16"): (B, B, B, B, B),
    ("flashmla_auto+flashmla_kv", "e4m3fn"): (S, S, S, S, S),
    ("flashmla_auto+flashmla_kv", "e4m3fnuz"): (P, P, P, P, P),
    ("flashmla_sparse+fa3", "bf16"): (B, B, B, B, B),
    ("flashmla_sparse+fa3", "e4m3fn"): (S, S, S, S, S),
    ("flashmla_sparse+fa3", "e4m3fnuz"): (P, P, P, P, P),
    ("both_aiter", "bf16"): (B, B, B, B, B),
    ("both_aiter", "e4m3fn"): (S, S, S, S, S),
    ("both_aiter", "e4m3fnuz"): (P, P, P, P, P),
}
CASES = [
    pytest.param(b, d, plat, TABLE[(b, d)][i], id=f"{plat}-{d}-{b}")
    for (b, d) in TABLE
    for i, plat in enumerate(PLATFORMS)
]
# DeepSeek-V3.2: kv_lora_rank 512 + rope 64; 656 = 512 FP8 + 4 fp32 scales + 64 bf16 rope.
ROW, ROW_656 = 576, 656


def expected_spec(tag: str, dtype: torch.dtype) -> tuple[int, torch.dtype]:
    return (ROW_656, U8) if tag == S else (ROW, dtype)


def load_layout_module(tree: Path) -> types.ModuleType:
    """nsa_kv_layout.py and the fp8_kv_config.py constants it imports (both pure modules)."""
    load_tree_module(
        tree,
        "srt/layers/attention/nsa/fp8_kv_config.py",
        "sglang.srt.layers.attention.nsa.fp8_kv_config",
    )
    return load_tree_module(
        tree, "srt/mem_cache/nsa_kv_layout.py", "sglang.srt.mem_cache.nsa_kv_layout"
    )


@pytest.fixture(scope="module")
def layout(sglang_tree: Path) -> types.ModuleType:
    return load_layout_module(sglang_tree)


def resolve(layout, *, backends, dtype, platform, is_nsa=True, rank=512, rope=64):
    is_hip, major = PLATFORMS[platform]
    prefill, decode = BACKENDS[backends]
    return layout.resolve_nsa_kv_layout(
        is_nsa=is_nsa,
        kv_cache_dtype=DTYPES[dtype],
        prefill_backend=prefill,
        decode_backend=decode,
        is_hip=is_hip,
        device_major=major,
        kv_lora_rank=rank,
        qk_rope_head_dim=rope,
    )


def test_table_covers_every_combination():
    assert set(TABLE) == {(b, d) for b in BACKENDS for d in DTYPES}


@pytest.mark.parametrize("backends,dtype,platform,tag", CASES)
def test_layout_table(layout, backends, dtype, platform, tag):
    spec = resolve(layout, backends=backends, dtype=dtype, platform=platform)
    dim, store = expected_spec(tag, DTYPES[dtype])
    assert (spec.tag, spec.dim, spec.store_dtype) == (tag, dim, store)
    assert isinstance(spec.tag, layout.NsaKvLayout)
    assert spec.row_bytes == dim * store.itemsize


def test_raw_fp8_needs_and_not_or(layout):
    """v0.5.10 kept 576 when EITHER backend was tilelang; the raw layout needs both."""
    for backends in ("tilelang+flashmla_kv", "flashmla_sparse+tilelang", "tilelang+aiter"):
        for platform in PLATFORMS:
            for dtype in ("e4m3fn", "e4m3fnuz"):
                spec = resolve(layout, backends=backends, dtype=dtype, platform=platform)
                assert spec.tag != layout.NsaKvLayout.RAW_FP8


@pytest.mark.parametrize("dtype", list(DTYPES) + ["e5m2"])
@pytest.mark.parametrize("backends", ["both_tilelang", "flashmla_auto+flashmla_kv"])
def test_non_nsa_models_keep_the_plain_mla_row(layout, dtype, backends):
    torch_dtype = DTYPES.get(dtype, torch.float8_e5m2)
    spec = layout.resolve_nsa_kv_layout(
        is_nsa=False,
        kv_cache_dtype=torch_dtype,
        prefill_backend=BACKENDS[backends][0],
        decode_backend=BACKENDS[backends][1],
        is_hip=False,
        device_major=9,
        kv_lora_rank=512,
        qk_rope_head_dim=64,
    )
    assert (spec.dim, spec.store_dtype) == (ROW, torch_dtype)
    assert spec.tag == (B if dtype == "bf16" else P)


def test_row_bytes_per_layout(layout):
    raw = resolve(layout, backends="both_tilelang", dtype="e4m3fnuz", platform="gfx942")
    scaled = resolve(layout, backends="flashmla_auto+flashmla_kv", dtype="e4m3fn", platform="sm90")
    bf16 = resolve(layout, backends="both_tilelang", dtype="bf16", platform="gfx950")
    assert (raw.row_bytes, scaled.row_bytes, bf16.row_bytes) == (576, 656, 1152)


def test_other_model_dims(layout):
    # kv_lora_rank 256 (two 128-blocks), rope 32: raw = 288; FlashMLA = 256 + 2*4 + 32*2 = 328.
    raw = resolve(
        layout, backends="both_tilelang", dtype="e4m3fn", platform="gfx950", rank=256, rope=32
    )
    scaled = resolve(
        layout, backends="both_aiter", dtype="e4m3fn", platform="gfx950", rank=256, rope=32
    )
    assert (raw.tag, raw.dim) == (R, 288)
    assert (scaled.tag, scaled.dim, scaled.store_dtype) == (S, 328, U8)


def test_656_layout_rejects_a_rank_that_is_not_a_block_multiple(layout):
    with pytest.raises(ValueError, match="kv_lora_rank 200 must be a multiple .* 128.*bfloat16"):
        resolve(
            layout, backends="flashmla_auto+flashmla_kv", dtype="e4m3fn", platform="sm90", rank=200
        )


def test_tags_compare_equal_to_their_strings(layout):
    tags = layout.NsaKvLayout
    assert [t.value for t in tags] == [B, R, S, P]
    assert tags.RAW_FP8 == "raw_fp8" and tags("scaled_fp8_656") is tags.SCALED_FP8_656


# --- the runner mixin uses the helper for the pool dim and for the memory budget -------------

INDEXER_BYTES = 128 + 128 // 128 * 4  # per token per layer: FP8 key + one fp32 scale
_DEVICE = {"sm": 90}


class _FakeNSAPool:
    quant_block_size = 128
    index_k_with_scale_buffer_dtype = torch.uint8
    rope_storage_dtype = torch.bfloat16


@pytest.fixture(scope="module")
def mixin(sglang_tree: Path, layout: types.ModuleType) -> types.ModuleType:
    """Load model_runner_kv_cache_mixin.py with its sglang imports stubbed, then put
    sys.modules back so that the stubs do not leak into other test modules."""
    saved = {n: m for n, m in sys.modules.items() if n.startswith("sglang")}
    try:
        stubs = {
            "sglang.srt.configs.model_config": {
                "get_nsa_index_head_dim": lambda hf: 128,
                "is_deepseek_nsa": lambda hf: hf.is_nsa,
            },
            "sglang.srt.distributed.parallel_state": {"get_world_group": None},
            "sglang.srt.layers.dp_attention": {"get_attention_tp_size": lambda: 1},
            "sglang.srt.layers.radix_attention": {"RadixAttention": object},
            "sglang.srt.mem_cache.fp8_kv_store": {"prepare_raw_fp8_k_scales": None},
            "sglang.srt.mem_cache.allocator": {
                "PagedTokenToKVPoolAllocator": None,
                "TokenToKVPoolAllocator": None,
            },
            "sglang.srt.mem_cache.memory_pool": {
                name: None
                for name in [
                    "DoubleSparseTokenToKVPool",
                    "HybridLinearKVPool",
                    "HybridReqToTokenPool",
                    "MHATokenToKVPool",
                    "MHATokenToKVPoolFP4",
                    "MLATokenToKVPool",
                    "MLATokenToKVPoolFP4",
                    "ReqToTokenPool",
                ]
            }
            | {"NSATokenToKVPool": _FakeNSAPool},
            "sglang.srt.mem_cache.swa_memory_pool": {
                "SWAKVPool": None,
                "SWATokenToKVPoolAllocator": None,
            },
            "sglang.srt.utils.common": {
                "get_available_gpu_memory": None,
                "get_device_sm": lambda: _DEVICE["sm"],
                "is_float4_e2m1fn_x2": lambda dtype: False,
                "is_hip": lambda: False,
                "is_npu": lambda: False,
            },
        }
        sys.modules["sglang.srt.mem_cache.nsa_kv_layout"] = layout
        for name, attrs in stubs.items():
            install_stub(name, **attrs)
        return load_tree_module(
            sglang_tree,
            "srt/model_executor/model_runner_kv_cache_mixin.py",
            "_nsa_layout_test_kv_cache_mixin",
        )
    finally:
        for name in [n for n in sys.modules if n.startswith("sglang")]:
            if name in saved:
                sys.modules[name] = saved[name]
            else:
                del sys.modules[name]


def make_runner(mixin, *, backends, dtype, is_nsa=True):
    class FakeRunner(mixin.ModelRunnerKVCacheMixin):
        pass

    runner = FakeRunner()
    runner.model_config = types.SimpleNamespace(
        hf_config=types.SimpleNamespace(is_nsa=is_nsa), kv_lora_rank=512, qk_rope_head_dim=64
    )
    runner.kv_cache_dtype = DTYPES[dtype]
    prefill, decode = BACKENDS[backends]
    runner.server_args = types.SimpleNamespace(
        nsa_prefill_backend=prefill, nsa_decode_backend=decode
    )
    runner.use_mla_backend = True
    return runner


@pytest.mark.parametrize("backends,dtype,platform,tag", CASES)
def test_mixin_dim_and_tag_follow_the_helper(mixin, monkeypatch, backends, dtype, platform, tag):
    is_hip, major = PLATFORMS[platform]
    monkeypatch.setattr(mixin, "_is_hip", is_hip)
    monkeypatch.setitem(_DEVICE, "sm", major * 10 + (4 if is_hip else 0))
    runner = make_runner(mixin, backends=backends, dtype=dtype)
    assert runner.calculate_mla_kv_cache_dim() == expected_spec(tag, DTYPES[dtype])[0]
    assert runner.nsa_kv_layout == tag


@pytest.mark.parametrize(
    "backends,dtype,platform,bytes_61_layers",
    [
        # DESIGN §1.1: 61 layers, main KV + 132-byte indexer row per layer.
        ("both_tilelang", "bf16", "gfx942", 78_324),
        ("both_tilelang", "e4m3fnuz", "gfx942", 43_188),
        ("both_tilelang", "e4m3fn", "gfx950", 43_188),
        ("both_tilelang", "e4m3fn", "sm90", 43_188),
        ("flashmla_auto+flashmla_kv", "e4m3fn", "sm90", 48_068),  # was budgeted as 576 bytes
    ],
)
def test_mixin_budget_matches_the_allocated_row(
    mixin, monkeypatch, backends, dtype, platform, bytes_61_layers
):
    is_hip, major = PLATFORMS[platform]
    monkeypatch.setattr(mixin, "_is_hip", is_hip)
    monkeypatch.setitem(_DEVICE, "sm", major * 10)
    runner = make_runner(mixin, backends=backends, dtype=dtype)
    cell = runner.get_cell_size_per_token(61)
    assert cell == bytes_61_layers
    # The budget counts exactly the row the pool is built with.
    dim = runner.calculate_mla_kv_cache_dim()
    assert cell == (dim * DTYPES[dtype].itemsize + INDEXER_BYTES) * 61


def test_mixin_decides_once(mixin, monkeypatch):
    runner = make_runner(mixin, backends="both_tilelang", dtype="e4m3fn")
    first = runner.get_mla_kv_layout()
    # A later change of the inputs cannot make the pool and the budget disagree.
    runner.server_args.nsa_decode_backend = "flashmla_kv"
    assert runner.get_mla_kv_layout() is first
    assert runner.nsa_kv_layout == R


def test_mixin_non_nsa_model_has_no_nsa_tag(mixin):
    runner = make_runner(mixin, backends="both_tilelang", dtype="e4m3fn", is_nsa=False)
    assert runner.calculate_mla_kv_cache_dim() == ROW
    assert runner.nsa_kv_layout is None
    assert runner.get_cell_size_per_token(61) == ROW * 61


# --- the pool is built with the runner's decision; raw FP8 scales are prepared once ----------


class _RecordingNSAPool(_FakeNSAPool):
    def __init__(self, size, **kwargs):
        self.size, self.kwargs = size, kwargs


class _Attention(torch.nn.Module):
    def __init__(self, layer_id):
        super().__init__()
        self.layer_id, self.k_scale = layer_id, None


def _init_pool(mixin, monkeypatch, *, backends, dtype):
    prepared = []
    monkeypatch.setattr(mixin, "NSATokenToKVPool", _RecordingNSAPool)
    monkeypatch.setattr(mixin, "RadixAttention", _Attention)
    monkeypatch.setattr(
        mixin, "prepare_raw_fp8_k_scales", lambda layers, device: prepared.append(list(layers))
    )
    monkeypatch.setattr(mixin, "get_available_gpu_memory", lambda *a: 1.0)
    monkeypatch.setattr(mixin, "_is_hip", False)
    monkeypatch.setitem(_DEVICE, "sm", 90)
    runner = make_runner(mixin, backends=backends, dtype=dtype)
    runner.server_args.__dict__.update(
        max_running_requests=8,
        max_total_tokens=None,
        page_size=1,
        enable_memory_saver=False,
        attention_backend="nsa",
        disaggregation_mode=None,
    )
    runner.model_config.context_len = 4096
    runner.__dict__.update(
        profile_max_num_token=lambda total: 1024,
        mambaish_config=None,
        pp_size=1,
        spec_algorithm=types.SimpleNamespace(is_none=lambda: True),
        is_draft_worker=True,  # pools for requests and the allocator already exist
        is_hybrid_swa=False,
        req_to_token_pool=object(),
        token_to_kv_pool_allocator=object(),
        num_effective_layers=2,
        device="cpu",
        gpu_id=0,
        start_layer=0,
        end_layer=2,
        page_size=1,
    )
    runner.model = torch.nn.Sequential(_Attention(0), torch.nn.Linear(2, 2), _Attention(1))
    runner.init_memory_pool(total_gpu_memory=0)
    return runner, prepared


def test_the_pool_gets_the_runners_raw_fp8_decision_and_scales_are_prepared(mixin, monkeypatch):
    runner, prepared = _init_pool(mixin, monkeypatch, backends="both_tilelang", dtype="e4m3fn")
    pool = runner.token_to_kv_pool
    assert pool.kwargs["kv_layout"] == R and pool.kwargs["kv_cache_dim"] == ROW
    (layers,) = prepared  # once, with every attention layer of the model
    assert [m.layer_id for m in layers] == [0, 1]


@pytest.mark.parametrize(
    "backends, dtype, tag",
    [
        ("both_trtllm", "e4m3fn", P),
        ("flashmla_auto+flashmla_kv", "e4m3fn", S),
        ("both_tilelang", "bf16", B),
    ],
)
def test_other_layouts_reach_the_pool_as_decided_and_skip_the_scales(
    mixin, monkeypatch, backends, dtype, tag
):
    runner, prepared = _init_pool(mixin, monkeypatch, backends=backends, dtype=dtype)
    assert runner.token_to_kv_pool.kwargs["kv_layout"] == tag
    assert prepared == []
