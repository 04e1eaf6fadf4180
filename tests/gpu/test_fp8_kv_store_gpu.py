"""GPU tests of the raw-FP8 MLA quantise-and-store kernel (patch 3): compiled Triton.

Same properties as tests/test_fp8_kv_store.py, on the device: bit-exact bytes against torch's
round-to-nearest-even cast (after an explicit clamp) for both formats, large token counts, and
CUDA/HIP graph capture + replay. e4m3fnuz works on NVIDIA too: the kernel's integer encoder writes
uint8, and the reference bytes are computed on the CPU.

    SGLANG_TREE=/path/to/patched/sglang python -m pytest tests/gpu/test_fp8_kv_store_gpu.py -q
"""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip(
        "needs a CUDA or ROCm GPU (torch.cuda.is_available() is False)", allow_module_level=True
    )

from scripts.kerneltools.kv_store_oracle import (  # noqa: E402
    FN,
    FORMATS,
    NOPE,
    POISON,
    ROPE,
    ROW,
    as_rows,
    assert_same_bytes,
    reference,
    scale_tensor,
)
from scripts.kerneltools.kv_store_oracle import run_store as _run_store  # noqa: E402
from scripts.kerneltools.loader import load_tree_module  # noqa: E402

SCALES = [1.0, 0.5, 2.0, 1 / 224]
DEV = "cuda"


def run_store(store, rows, fmt, k_scale, launch_config=None) -> torch.Tensor:
    return _run_store(store, rows, fmt, k_scale, launch_config=launch_config, device=DEV)


@pytest.fixture(scope="module")
def store(sglang_tree: Path) -> types.ModuleType:
    old = os.environ.pop("TRITON_INTERPRET", None)  # compiled kernels, whatever the caller set
    try:
        return load_tree_module(sglang_tree, "srt/mem_cache/fp8_kv_store.py", "_fp8_kv_store_gpu")
    finally:
        if old is not None:
            os.environ["TRITON_INTERPRET"] = old


def all_16bit(dtype: torch.dtype) -> torch.Tensor:
    return as_rows(torch.arange(1 << 16, dtype=torch.int32).to(torch.int16).view(dtype))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("k_scale", SCALES)
@pytest.mark.parametrize("src", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_every_16bit_input_is_bit_exact(store, fmt, k_scale, src):
    x = all_16bit(src)
    assert_same_bytes(run_store(store, x, fmt, k_scale), reference(x, k_scale, fmt), x)


@pytest.mark.parametrize("fmt", FORMATS)
def test_random_fp32_bit_patterns_are_bit_exact(store, fmt):
    # NaN, inf, fp32 subnormals (no flush-to-zero may change a byte), huge and tiny values.
    g = torch.Generator().manual_seed(1)
    bits = torch.randint(-(2**31), 2**31, (4096, ROW), generator=g, dtype=torch.int64)
    x = bits.to(torch.int32).view(torch.float32)
    assert_same_bytes(run_store(store, x, fmt, 0.5), reference(x, 0.5, fmt), x)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("k_scale", SCALES)
def test_large_batch_scattered_slots(store, fmt, k_scale):
    t, slots = 65536, 100_000
    g = torch.Generator().manual_seed(2)
    x = torch.randn(t, ROW, generator=g) * torch.exp2(torch.randint(-12, 10, (t, ROW), generator=g))
    x = x.to(torch.bfloat16)
    loc = torch.randperm(slots, generator=g)[:t]
    loc[torch.rand(t, generator=g) < 0.05] = -1  # tokens without a slot
    buf = torch.full((slots, 1, ROW), POISON, dtype=torch.uint8, device=DEV)
    xd = x.to(DEV)
    store.store_mla_kv_fp8_raw(
        buf,
        loc.to(DEV),
        xd[:, None, :NOPE],
        xd[:, None, NOPE:],
        k_scale=scale_tensor(k_scale, DEV),
        fp8_dtype=fmt,
    )
    buf = buf.cpu()[:, 0]
    keep = loc >= 0
    assert_same_bytes(buf[loc[keep]], reference(x[keep], k_scale, fmt), x[keep])
    untouched = torch.ones(slots, dtype=torch.bool)
    untouched[loc[keep]] = False
    assert (buf[untouched] == POISON).all()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("t", [1, 3, 257, 4097])
@pytest.mark.parametrize("launch_config", [None, (1, 4), (4, 4), (8, 8)], ids=str)
def test_token_counts_and_launch_configs(store, fmt, t, launch_config):
    g = torch.Generator().manual_seed(t)
    x = (torch.randn(t, ROW, generator=g) * 300).to(torch.bfloat16)
    got = run_store(store, x, fmt, 2.0, launch_config)
    assert_same_bytes(got, reference(x, 2.0, fmt), x)


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_contiguous_sources_and_typed_buffer(store, fmt):
    t = 33
    fused = torch.randn(t, 1536 + ROW, device=DEV).to(torch.float16)
    wide = torch.randn(t, 2 * ROPE, device=DEV)
    nope, rope = fused[:, None, 1536 : 1536 + NOPE], wide[:, None, ::2]
    buf = torch.zeros(t, 1, ROW, dtype=torch.uint8, device=DEV).view(fmt)
    loc = torch.arange(t - 1, -1, -1, device=DEV, dtype=torch.int32)
    store.store_mla_kv_fp8_raw(
        buf, loc, nope, rope, k_scale=scale_tensor(1 / 224, DEV), fp8_dtype=fmt
    )
    got = buf.view(torch.uint8)[loc.long(), 0].cpu()
    rows = torch.cat([nope[:, 0].float(), rope[:, 0]], dim=1)
    assert_same_bytes(got, reference(rows, 1 / 224, fmt), rows)


@pytest.mark.parametrize("fmt", FORMATS)
def test_specials(store, fmt):
    nan, inf = float("nan"), float("inf")
    x = as_rows(torch.tensor([nan, -nan, inf, -inf, 1e6, -1e6, -0.0, 0.0]))
    got = run_store(store, x, fmt, 1.0)[0, :8].tolist()
    if fmt == FN:
        assert got == [0x7F, 0x7F, 0x7E, 0xFE, 0x7E, 0xFE, 0x80, 0x00]
    else:
        assert got == [0x80, 0x80, 0x7F, 0xFF, 0x7F, 0xFF, 0x00, 0x00]


@pytest.mark.parametrize("fmt", FORMATS)
def test_cuda_graph_capture_and_replay(store, fmt):
    t, slots, k_scale = 64, 256, 0.5
    scale = scale_tensor(k_scale, DEV)
    x = torch.zeros(t, ROW, dtype=torch.bfloat16, device=DEV)
    loc = torch.zeros(t, dtype=torch.int64, device=DEV)
    buf = torch.full((slots, 1, ROW), POISON, dtype=torch.uint8, device=DEV)

    def step():
        store.store_mla_kv_fp8_raw(
            buf, loc, x[:, None, :NOPE], x[:, None, NOPE:], k_scale=scale, fp8_dtype=fmt
        )

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        step()  # compile outside the capture
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):  # fails if anything syncs with the host
        step()

    g = torch.Generator().manual_seed(3)
    for k_scale in (0.5, 0.5, 2.0):  # new inputs in place, as a decode step does
        scale.fill_(k_scale)  # the last replay sees a scale changed after capture
        buf.fill_(POISON)
        new_x = (torch.randn(t, ROW, generator=g) * 200).to(torch.bfloat16)
        new_loc = torch.randperm(slots, generator=g)[:t]
        new_loc[::7] = -1
        x.copy_(new_x)
        loc.copy_(new_loc)
        graph.replay()
        torch.cuda.synchronize()
        got = buf.cpu()[:, 0]
        keep = new_loc >= 0
        assert_same_bytes(got[new_loc[keep]], reference(new_x[keep], k_scale, fmt), new_x[keep])
        written = torch.zeros(slots, dtype=torch.bool)
        written[new_loc[keep]] = True
        assert (got[~written] == POISON).all()
