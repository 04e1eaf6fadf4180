"""The MI355 fused RoPE + FP8 KV write predicate (patch 0009, fused_rope_cache.py).

Full truth table: every input over its interesting values, exactly one combination is True.
"""

from __future__ import annotations

import itertools
import math
import types
from pathlib import Path

import pytest

from scripts.kerneltools.loader import load_tree_module

# Each input with the one value that enables the fused path listed first.
DOMAINS = {
    "use_aiter_gfx95": [True, False],
    "attention_backend": ["nsa", "aiter", "triton", "fa3", None],
    "nsa_prefill_backend": ["tilelang", "flashmla_sparse", "aiter", None],
    "nsa_decode_backend": ["tilelang", "flashmla_kv", "aiter", None],
    "kv_layout": ["raw_fp8", "bf16", "scaled_fp8_656", "plain_fp8", None],
    "has_rotary": [True, False],
    "context_parallel_active": [False, True],
    "llama4_scaling_present": [False, True],
}
ENABLING = {name: values[0] for name, values in DOMAINS.items()}


@pytest.fixture(scope="module")
def layout(sglang_tree: Path) -> types.ModuleType:
    load_tree_module(
        sglang_tree,
        "srt/layers/attention/nsa/fp8_kv_config.py",
        "sglang.srt.layers.attention.nsa.fp8_kv_config",
    )
    return load_tree_module(
        sglang_tree, "srt/mem_cache/nsa_kv_layout.py", "sglang.srt.mem_cache.nsa_kv_layout"
    )


@pytest.fixture(scope="module")
def fused(sglang_tree: Path, layout: types.ModuleType) -> types.ModuleType:
    return load_tree_module(
        sglang_tree,
        "srt/layers/attention/nsa/fused_rope_cache.py",
        "sglang.srt.layers.attention.nsa.fused_rope_cache",
    )


def test_truth_table_has_exactly_one_true_combination(fused):
    names = list(DOMAINS)
    true_rows = []
    total = 0
    for values in itertools.product(*DOMAINS.values()):
        kwargs = dict(zip(names, values))
        result = fused.use_fused_rope_cache_for_nsa_tilelang(**kwargs)
        assert result is True or result is False, f"non-bool {result!r} for {kwargs}"
        total += 1
        if result:
            true_rows.append(kwargs)
    assert total == math.prod(len(v) for v in DOMAINS.values())
    assert true_rows == [ENABLING]


@pytest.mark.parametrize("name", list(DOMAINS))
def test_each_condition_alone_disables_the_fused_path(fused, name):
    for value in DOMAINS[name][1:]:
        assert fused.use_fused_rope_cache_for_nsa_tilelang(**{**ENABLING, name: value}) is False


def test_arguments_are_keyword_only(fused):
    with pytest.raises(TypeError):
        fused.use_fused_rope_cache_for_nsa_tilelang(*ENABLING.values())


def test_accepts_the_layout_enum_of_the_layout_helper(fused, layout):
    for tag in layout.NsaKvLayout:
        got = fused.use_fused_rope_cache_for_nsa_tilelang(**{**ENABLING, "kv_layout": tag})
        assert got is (tag is layout.NsaKvLayout.RAW_FP8)


def test_constants_come_from_their_one_definition(fused, layout):
    cfg = __import__("sys").modules["sglang.srt.layers.attention.nsa.fp8_kv_config"]
    assert fused.TILELANG is cfg.TILELANG is layout.TILELANG
    assert fused.NsaKvLayout is layout.NsaKvLayout
