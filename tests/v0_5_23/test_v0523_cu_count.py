"""The 0.5.23 series sizes the TileLang DSA split from the device's CU count, not 256/304.

`tilelang_sparse_fwd` picks `inner_iter` (how many 64-token blocks one workgroup reduces) from the
CU count; upstream hard-codes 304 (MI300X) and 256 (MI355X), so an 80-CU MI308X or a partitioned
GPU gets the wrong split. The kernels are replaced by stand-ins (nothing compiles on a CPU); the
test reads the CU count the wrapper hands to `_pick_inner_iter`. Fails on unpatched 0.5.23.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sparse_mla_reference import FN, FNUZ
from v0523_modules import load_tilelang_kernel


@pytest.mark.parametrize("fmt", [FN, FNUZ], ids=["gfx950", "gfx942"])
@pytest.mark.parametrize("kv_fp8", [True, False], ids=["fp8_kv", "bf16_kv"])
def test_tilelang_split_uses_the_device_cu_count(tree_v0_5_23: Path, monkeypatch, fmt, kv_fp8):
    mod = load_tilelang_kernel(tree_v0_5_23, fnuz=fmt == FNUZ, cu_count=80)  # MI308X
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    seen = []
    real_pick = mod._pick_inner_iter

    def spy(seq_len, ni, cu, block_per_cu):
        seen.append(cu)
        return real_pick(seq_len, ni, cu, block_per_cu)

    def partial_factory(num_heads, d_v, d_tail, topk, **_):
        return lambda q, kv, idx: (torch.zeros(1, q.shape[1], 1, num_heads, d_v), None)

    mod._pick_inner_iter = spy
    mod.sparse_mla_fwd_decode_partial_fp8 = partial_factory
    mod.sparse_mla_fwd_decode_partial = partial_factory
    mod.sparse_mla_fwd_decode_combine = lambda *a, **k: lambda o, lse: o[:, :, 0]
    q = torch.zeros(2, 16, 576, dtype=torch.bfloat16)
    kv = torch.zeros(8, 1, 576).to(fmt if kv_fp8 else torch.bfloat16)
    idx = torch.zeros(2, 1, 2048, dtype=torch.int32)
    mod.tilelang_sparse_fwd(q, kv, idx, 0.04, 512)
    assert seen == [80]
