"""CPU tests of the raw-FP8 MLA quantise-and-store kernel (patch 0006) under TRITON_INTERPRET=1.

TRITON_INTERPRET=1 is set for this test module only (a module-scoped fixture restores it):
triton 3.x decides interpreted-or-compiled when `@triton.jit` decorates, so the kernel module
loaded here runs in the interpreter while kernels other test modules loaded stay compiled. The
variable must stay set while the interpreter runs (triton consults it lazily, e.g. when it
first imports gluon), and triton's lazily imported parts are imported before it is set so that
they are not built in interpreter mode. The fixture asserts that the kernel really is
interpreted, so a triton that reads the variable only at import fails loudly.

Reference: torch's own round-to-nearest-even cast, after an explicit clamp to the format's max
(torch's unclamped cast turns fnuz overflow into NaN). The kernel encodes FP8 with integer
operations, so the bytes must match the reference exactly for every input, not just within an
ulp; a separate round-trip check bounds the error without torch's cast.
"""

from __future__ import annotations

import contextlib
import os
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from pool_loader import load_layout_module, load_memory_pool

from scripts.kerneltools.kv_store_oracle import (
    FN,
    FNUZ,
    FORMATS,
    MAX,
    NOPE,
    POISON,
    ROPE,
    ROW,
    as_rows,
    assert_same_bytes,
    reference,
    run_store,
    scale_tensor,
)
from scripts.kerneltools.loader import load_tree_module

SCALES = [1.0, 0.5, 2.0, 1 / 224]
# Smallest subnormal: 2^(1 - bias - 3 mantissa bits).
MIN_SUBNORMAL = {FN: 2.0**-9, FNUZ: 2.0**-10}

# numpy's warnings from inside the interpreter for NaN/inf inputs, which these tests feed on purpose
pytestmark = [
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
]


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


@pytest.fixture(scope="module", autouse=True)
def triton_interpreter() -> Iterator[None]:
    with contextlib.suppress(ImportError):
        import triton.experimental.gluon  # noqa: F401  (imported lazily by the interpreter)
    with _env("TRITON_INTERPRET", "1"):
        yield


@pytest.fixture(scope="module")
def store(sglang_tree: Path, triton_interpreter: None) -> types.ModuleType:
    mod = load_tree_module(
        sglang_tree, "srt/mem_cache/fp8_kv_store.py", "_fp8_kv_store_interpreted"
    )
    from triton.runtime.interpreter import InterpretedFunction

    assert isinstance(mod._store_mla_kv_fp8_raw_kernel, InterpretedFunction), (
        "this triton decides TRITON_INTERPRET before decoration; run the tests in a "
        "process started with TRITON_INTERPRET=1"
    )
    return mod


def test_oracle_maxima_match_torch():
    assert {fmt: torch.finfo(fmt).max for fmt in (FN, FNUZ)} == MAX


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("k_scale", SCALES)
def test_every_bf16_input_is_bit_exact(store, fmt, k_scale):
    x = as_rows(torch.arange(1 << 16, dtype=torch.int32).to(torch.int16).view(torch.bfloat16))
    got = run_store(store, x, fmt, k_scale, launch_config=(16, 4))
    assert_same_bytes(got, reference(x, k_scale, fmt), x)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_fp16_input_is_bit_exact(store, fmt):
    x = as_rows(torch.arange(1 << 16, dtype=torch.int32).to(torch.int16).view(torch.float16))
    got = run_store(store, x, fmt, 1 / 224, launch_config=(16, 4))
    assert_same_bytes(got, reference(x, 1 / 224, fmt), x)


@pytest.mark.parametrize("fmt", FORMATS)
def test_random_fp32_bit_patterns_are_bit_exact(store, fmt):
    # Every kind of fp32: NaN, inf, fp32 subnormals, huge and tiny values, both signs.
    g = torch.Generator().manual_seed(1)
    bits = torch.randint(-(2**31), 2**31, (48, ROW), generator=g, dtype=torch.int64)
    x = bits.to(torch.int32).view(torch.float32)
    got = run_store(store, x, fmt, 0.5, launch_config=(16, 4))
    assert_same_bytes(got, reference(x, 0.5, fmt), x)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("k_scale", SCALES)
def test_random_activations_bit_exact_and_within_half_ulp(store, fmt, k_scale):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(7, ROW, generator=g) * torch.exp2(torch.randint(-12, 10, (7, ROW), generator=g))
    x = x.to(torch.bfloat16)
    got = run_store(store, x, fmt, k_scale)
    assert_same_bytes(got, reference(x, k_scale, fmt), x)
    # Round trip without torch's cast: RNE is off by at most half a unit in the last place.
    y = x.float() * torch.tensor(1.0 / k_scale, dtype=torch.float32)
    inside = y.abs() <= MAX[fmt]
    decoded = got.view(fmt).float()
    _, exp = torch.frexp(y)
    ulp = torch.maximum(torch.exp2(exp.float() - 4), torch.tensor(MIN_SUBNORMAL[fmt]))
    assert ((decoded - y).abs() <= ulp / 2)[inside].all()
    assert (decoded[~inside].abs() == MAX[fmt]).all()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("k_scale", [1.0, 0.25, 8.0])
def test_exactly_representable_inputs_store_their_own_code(store, fmt, k_scale):
    # x = decode(code) * k_scale is exact in bf16, so the stored byte must be `code` itself.
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    codes = codes[~codes.view(fmt).float().isnan()]
    codes = codes.repeat(ROW * 2 // codes.numel() + 1)[: ROW * 2].view(2, ROW)
    x = (codes.view(fmt).float() * k_scale).to(torch.bfloat16)
    got = run_store(store, x, fmt, k_scale)
    assert torch.equal(got, codes)


@pytest.mark.parametrize("fmt", FORMATS)
def test_saturates_at_the_formats_max(store, fmt):
    # Around the midpoint between max and the next (unrepresentable) step, and far beyond.
    mid = MAX[fmt] + (16.0 if fmt == FN else 8.0)
    big = [MAX[fmt], mid - 1, mid, mid + 1, 1e4, 3e38, float("inf")]
    x = as_rows(torch.tensor(big + [-v for v in big]))
    got = run_store(store, x, fmt, 1.0)[0, : 2 * len(big)]
    top = 0x7E if fmt == FN else 0x7F  # fn's 0x7F is NaN
    assert got.tolist() == [top] * len(big) + [top | 0x80] * len(big)
    assert got.view(fmt).float().abs().max().item() == MAX[fmt]


@pytest.mark.parametrize("fmt", FORMATS)
def test_negative_zero_and_underflow(store, fmt):
    x = as_rows(torch.tensor([-0.0, 0.0, -1e-30, 1e-30, -MIN_SUBNORMAL[fmt] / 2]))
    got = run_store(store, x, fmt, 1.0)[0, :5].tolist()
    neg_zero = 0x80 if fmt == FN else 0x00  # fnuz has no negative zero (0x80 is its NaN)
    assert got == [neg_zero, 0x00, neg_zero, 0x00, neg_zero]


@pytest.mark.parametrize("fmt", FORMATS)
def test_subnormals_round_half_to_even(store, fmt):
    # k/2 units of the smallest subnormal for k = 0..17: exact values and every midpoint,
    # up to one step past the smallest normal (code 0x08).
    halves = torch.arange(18, dtype=torch.float64)
    x = as_rows((halves / 2 * MIN_SUBNORMAL[fmt]).float())
    got = run_store(store, x, fmt, 1.0)[0, :18].tolist()
    want = [round(k / 2) for k in range(18)]  # Python's round() is half-to-even
    assert got == want


@pytest.mark.parametrize("fmt", FORMATS)
def test_nan_becomes_the_formats_nan(store, fmt):
    nan = float("nan")
    x = as_rows(torch.tensor([nan, -nan]))
    got = run_store(store, x, fmt, 2.0)[0, :2].tolist()
    assert got == ([0x7F, 0x7F] if fmt == FN else [0x80, 0x80])


@pytest.mark.parametrize("fmt", FORMATS)
def test_rows_without_a_slot_are_skipped(store, fmt):
    t = 9
    g = torch.Generator().manual_seed(3)
    x = torch.randn(t, ROW, generator=g, dtype=torch.float32).to(torch.bfloat16)
    loc = torch.tensor([4, -1, 0, -7, 10, 2, -1, 11, 5], dtype=torch.int32)  # 11 >= N
    buf = torch.full((11, 1, ROW), POISON, dtype=torch.uint8)
    store.store_mla_kv_fp8_raw(
        buf, loc, x[:, None, :NOPE], x[:, None, NOPE:], k_scale=scale_tensor(0.5), fp8_dtype=fmt
    )
    want = torch.full((11, ROW), POISON, dtype=torch.uint8)
    written = [(i, s) for i, s in enumerate(loc.tolist()) if 0 <= s < 11]
    for i, s in written:
        want[s] = reference(x[i], 0.5, fmt)
    assert torch.equal(buf[:, 0], want)
    assert len(written) == 5


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_contiguous_sources(store, fmt):
    t = 5
    g = torch.Generator().manual_seed(4)
    # k_nope / k_rope as views into a wider fused projection output, as in forward_absorb.
    fused = torch.randn(t, 1536 + ROW, generator=g).to(torch.float16)
    latent = fused[:, 1536:]
    # A rope source with an element stride of 2 as well.
    wide = torch.randn(t, 2 * ROPE, generator=g).to(torch.float16)
    nope, rope = latent[:, None, :NOPE], wide[:, None, ::2]
    assert not nope.is_contiguous() and rope.stride(-1) == 2
    buf = torch.full((t, 1, ROW), POISON, dtype=torch.uint8)
    loc = torch.arange(t - 1, -1, -1)
    store.store_mla_kv_fp8_raw(buf, loc, nope, rope, k_scale=scale_tensor(1 / 224), fp8_dtype=fmt)
    rows = torch.cat([nope[:, 0], rope[:, 0]], dim=1)
    assert torch.equal(buf[loc, 0], reference(rows, 1 / 224, fmt))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "t, launch_config",
    [(1, None), (3, None), (257, None), (257, (4, 4)), (13, (8, 2))],
    ids=["1", "3", "257", "257-4rows", "13-8rows"],
)
def test_token_counts_and_row_blocking(store, fmt, t, launch_config):
    g = torch.Generator().manual_seed(t)
    x = (torch.randn(t, ROW, generator=g) * 100).to(torch.bfloat16)
    got = run_store(store, x, fmt, 2.0, launch_config=launch_config)
    assert_same_bytes(got, reference(x, 2.0, fmt), x)


@pytest.mark.parametrize("buffer_dtype", [torch.uint8, FN, FNUZ], ids=["uint8", "fn", "fnuz"])
def test_fp8_typed_buffers(store, buffer_dtype):
    fmt = FN if buffer_dtype == torch.uint8 else buffer_dtype
    x = torch.linspace(-300, 300, ROW).view(1, ROW)
    buf = torch.zeros(2, 1, ROW, dtype=torch.uint8).view(buffer_dtype)
    loc = torch.tensor([1])
    store.store_mla_kv_fp8_raw(
        buf, loc, x[:, None, :NOPE], x[:, None, NOPE:], k_scale=scale_tensor(None), fp8_dtype=fmt
    )
    assert torch.equal(buf.view(torch.uint8)[1, 0], reference(x[0], None, fmt))


def test_general_dims_and_no_rope(store):
    x = torch.randn(3, 448 + 64).to(torch.bfloat16)
    buf = torch.full((3, 1, 512), POISON, dtype=torch.uint8)
    loc = torch.tensor([2, 0, 1])
    store.store_mla_kv_fp8_raw(
        buf, loc, x[:, None, :448], x[:, None, 448:], k_scale=scale_tensor(0.5), fp8_dtype=FNUZ
    )
    assert torch.equal(buf[loc, 0], reference(x, 0.5, FNUZ))
    # D_tail = 0 (DSA models without rope dims).
    buf = torch.full((3, 1, 512), POISON, dtype=torch.uint8)
    y = torch.randn(3, 1, 512)
    store.store_mla_kv_fp8_raw(buf, loc, y, y[:, :, :0], k_scale=scale_tensor(None), fp8_dtype=FN)
    assert torch.equal(buf[loc, 0], reference(y[:, 0], None, FN))


def test_empty_batch_writes_nothing(store, monkeypatch):
    class NoLaunch:
        def __getitem__(self, grid):
            raise AssertionError(f"T == 0 must not launch the kernel (grid {grid})")

    monkeypatch.setattr(store, "_store_mla_kv_fp8_raw_kernel", NoLaunch())
    buf = torch.full((4, 1, ROW), POISON, dtype=torch.uint8)
    empty = torch.empty(0, 1, ROW, dtype=torch.bfloat16)
    loc = torch.empty(0, dtype=torch.int64)
    store.store_mla_kv_fp8_raw(
        buf, loc, empty[..., :NOPE], empty[..., NOPE:], k_scale=scale_tensor(None), fp8_dtype=FNUZ
    )
    assert (buf == POISON).all()


def test_a_float_k_scale_is_a_type_error(store):
    # A Python float would be baked into a captured graph; the layer's tensor is replayed.
    x = torch.ones(1, 1, ROW)
    for bad in (1.0, None, torch.ones(2), torch.tensor(1.0, dtype=torch.float64)):
        with pytest.raises(TypeError, match="one-element float32 k_scale tensor"):
            store.store_mla_kv_fp8_raw(
                torch.zeros(2, 1, ROW, dtype=torch.uint8),
                torch.tensor([0]),
                x[..., :NOPE],
                x[..., NOPE:],
                k_scale=bad,
                fp8_dtype=FN,
            )


class _LaunchRecorder:
    """Wraps the interpreted kernel: records each launch's grid and arguments."""

    def __init__(self, kernel):
        self.kernel, self.launches = kernel, []

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.launches.append((grid, args, kwargs))
            return self.kernel[grid](*args, **kwargs)

        return launch


def test_the_kernel_reads_the_scale_tensor_at_run_time(store, monkeypatch):
    """What a captured graph replays: the same launch, same arguments, after the layer's scale
    changed in place. The bytes must follow the new value (a scale passed by value would not)."""
    recorder = _LaunchRecorder(store._store_mla_kv_fp8_raw_kernel)
    monkeypatch.setattr(store, "_store_mla_kv_fp8_raw_kernel", recorder)
    x = (torch.randn(3, ROW, generator=torch.Generator().manual_seed(8)) * 50).bfloat16()
    buf = torch.full((4, 1, ROW), POISON, dtype=torch.uint8)
    loc = torch.tensor([1, 2, 3])
    k_scale = scale_tensor(1.0)
    store.store_mla_kv_fp8_raw(
        buf, loc, x[:, None, :NOPE], x[:, None, NOPE:], k_scale=k_scale, fp8_dtype=FN
    )
    assert torch.equal(buf[1:, 0], reference(x, 1.0, FN))
    ((grid, args, kwargs),) = recorder.launches
    k_scale.fill_(0.25)  # in place, as a weight update would
    buf.fill_(POISON)
    recorder.kernel[grid](*args, **kwargs)  # replay: identical launch arguments
    assert torch.equal(buf[1:, 0], reference(x, 0.25, FN))
    assert not torch.equal(reference(x, 0.25, FN), reference(x, 1.0, FN))


# --- the one check of a layer's scale, at load ----------------------------------------------


@pytest.mark.parametrize(
    "k_scale", [0.0, -1.0, float("inf"), float("-inf"), float("nan"), 1e-300, 1e39]
)
def test_invalid_k_scale_is_rejected_at_load(store, k_scale):
    lay = types.SimpleNamespace(layer_id=7, k_scale=torch.tensor(k_scale, dtype=torch.float64))
    lay.k_scale = lay.k_scale.float()  # what the checkpoint loader leaves: fp32
    with pytest.raises(ValueError) as err:
        store.prepare_raw_fp8_k_scales([lay], "cpu")
    msg = str(err.value)
    assert msg.startswith("layer 7: invalid FP8 KV-cache scale k_scale=")
    assert "model.layers.7.self_attn.attn_mqa.k_scale" in msg
    assert "--kv-cache-dtype fp8_e4m3" in msg


def test_prepare_gives_scaleless_layers_a_unit_tensor_and_keeps_loaded_ones(store):
    loaded = torch.nn.Parameter(torch.tensor(0.5), requires_grad=False)
    a = types.SimpleNamespace(layer_id=0, k_scale=None, k_scale_float=None)
    b = types.SimpleNamespace(layer_id=1, k_scale=loaded, k_scale_float=0.5)
    store.prepare_raw_fp8_k_scales([a, b], "cpu")
    assert a.k_scale.dtype == torch.float32 and a.k_scale.item() == 1.0
    assert a.k_scale_float == 1.0
    assert b.k_scale is loaded  # the same tensor: in-place updates reach both kernels


def test_prepare_rejects_a_per_channel_scale(store):
    lay = types.SimpleNamespace(layer_id=3, k_scale=torch.ones(4))
    with pytest.raises(ValueError, match="layer 3: .*one per-tensor fp32 k_scale"):
        store.prepare_raw_fp8_k_scales([lay], "cpu")


def _bad_inputs():
    x = torch.ones(2, 1, ROW, dtype=torch.bfloat16)
    nope, rope = x[..., :NOPE], x[..., NOPE:]
    buf = torch.zeros(4, 1, ROW, dtype=torch.uint8)
    loc = torch.tensor([0, 1])
    ok = {"kv_buffer": buf, "loc": loc, "k_nope": nope, "k_rope": rope, "fp8_dtype": FN}
    yield "fp8_dtype must be torch.float8_e4m3fn or", {**ok, "fp8_dtype": torch.float8_e5m2}
    yield "kv_buffer has dtype torch.bfloat16", {**ok, "kv_buffer": buf.to(torch.bfloat16)}
    yield "needs torch.uint8 or torch.float8_e4m3fn", {**ok, "kv_buffer": buf.view(FNUZ)}
    yield "k_nope has dtype torch.float8_e4m3fn", {**ok, "k_nope": nope.to(FN)}
    yield "k_rope has dtype torch.int32", {**ok, "k_rope": rope.to(torch.int32)}
    yield "loc must be a 1-D int32 or int64", {**ok, "loc": loc.float()}
    yield "loc must be a 1-D int32 or int64", {**ok, "loc": loc[None]}
    yield "token counts differ: loc 2, k_nope 1", {**ok, "k_nope": nope[:1]}
    yield r"576 bytes but k_nope \+ k_rope have 512 \+ 32", {**ok, "k_rope": rope[..., :32]}
    yield "k_nope must have shape", {**ok, "k_nope": nope.view(2, 1, 1, NOPE)}
    yield "kv_buffer must have shape", {**ok, "kv_buffer": buf.view(4, 2, ROW // 2)}


@pytest.mark.parametrize("message, kwargs", list(_bad_inputs()))
def test_bad_inputs_are_rejected_with_a_clear_message(store, message, kwargs):
    before = kwargs["kv_buffer"].clone()
    with pytest.raises(ValueError, match=message):
        store.store_mla_kv_fp8_raw(**kwargs, k_scale=scale_tensor(1.0))
    assert torch.equal(kwargs["kv_buffer"].view(torch.uint8), before.view(torch.uint8))


# --- the pool patch (memory_pool.py), loaded by path with its sglang imports stubbed -----------


@pytest.fixture(scope="module")
def layout_module(sglang_tree: Path) -> types.ModuleType:
    return load_layout_module(sglang_tree, "_fp8_store_test_nsa_kv_layout")


@pytest.fixture(scope="module")
def pool_module(
    sglang_tree: Path, store: types.ModuleType, layout_module: types.ModuleType
) -> types.ModuleType:
    return load_memory_pool(sglang_tree, store, layout_module, "_fp8_memory_pool")


RAW = "raw_fp8"


def make_pool(mod, dtype, override_kv_cache_dim=None, use_nsa=True, kv_layout=RAW):
    return mod.MLATokenToKVPool(
        size=16,
        page_size=1,
        dtype=dtype,
        kv_lora_rank=NOPE,
        qk_rope_head_dim=ROPE,
        layer_num=2,
        device="cpu",
        enable_memory_saver=False,
        use_nsa=use_nsa,
        override_kv_cache_dim=override_kv_cache_dim,
        kv_layout=kv_layout,
    )


def layer(layer_id=1, k_scale=1.0):
    return types.SimpleNamespace(layer_id=layer_id, k_scale=scale_tensor(k_scale))


def test_pool_flags_follow_the_runners_layout(pool_module, layout_module):
    tags = layout_module.NsaKvLayout
    assert make_pool(pool_module, FNUZ, kv_layout=tags.RAW_FP8).kv_cache_store_fp8_raw
    assert make_pool(pool_module, FN, kv_layout=tags.RAW_FP8).kv_cache_store_fp8_raw
    p656 = make_pool(pool_module, FN, override_kv_cache_dim=656, kv_layout=tags.SCALED_FP8_656)
    assert p656.nsa_kv_cache_store_fp8 and not p656.kv_cache_store_fp8_raw
    assert not make_pool(pool_module, torch.bfloat16, kv_layout=tags.BF16).kv_cache_store_fp8_raw
    assert not make_pool(pool_module, FN, use_nsa=False, kv_layout=None).kv_cache_store_fp8_raw


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_plain_fp8_pool_keeps_upstreams_cast(pool_module, fmt):
    """--nsa-*-backend trtllm --kv-cache-dtype fp8_e4m3 (CUDA): the runner says plain_fp8, the
    same 576-wide e4m3 row as raw FP8. The pool must keep upstream's unscaled cast there and
    not take the scaled store, which only the TileLang reader multiplies back."""
    pool = make_pool(pool_module, fmt, kv_layout="plain_fp8")
    assert not pool.kv_cache_store_fp8_raw
    x = (torch.randn(2, 1, ROW, generator=torch.Generator().manual_seed(2)) * 4).bfloat16()
    pool.set_mla_kv_buffer(layer(k_scale=2.0), torch.tensor([3, 5]), x[..., :NOPE], x[..., NOPE:])
    got = pool.kv_buffer[1].view(torch.uint8)[[3, 5], 0]
    assert torch.equal(got, x[:, 0].to(fmt).view(torch.uint8))


@pytest.mark.parametrize("fmt", FORMATS)
def test_pool_store_uses_the_layer_scale(pool_module, fmt):
    pool = make_pool(pool_module, fmt)
    g = torch.Generator().manual_seed(5)
    latent = (torch.randn(3, ROW, generator=g) * 600).to(torch.bfloat16)
    loc = torch.tensor([3, -1, 7])
    pool.set_mla_kv_buffer(layer(k_scale=2.0), loc, latent[:, None, :NOPE], latent[:, None, NOPE:])
    buf = pool.get_key_buffer(1).view(torch.uint8)[:, 0]
    assert torch.equal(buf[[3, 7]], reference(latent[[0, 2]], 2.0, fmt))
    assert (buf[[0, 1, 2, 4, 5, 6, 8]] == 0).all()
    assert (pool.kv_buffer[0].view(torch.uint8) == 0).all()  # the other layer


def test_pool_store_never_reads_the_scale_on_the_host(pool_module, monkeypatch):
    # No float(layer.k_scale) / .item() on the hot path: that would sync the device and bake
    # the value into a captured graph.
    pool = make_pool(pool_module, FN)
    lay = layer(k_scale=0.5)
    for name in ("item", "tolist", "__float__"):
        monkeypatch.setattr(
            torch.Tensor, name, lambda *a, _n=name: pytest.fail(f"host read: Tensor.{_n}")
        )
    x = torch.full((1, 1, ROW), 3.0)
    pool.set_mla_kv_buffer(lay, torch.tensor([2]), x[..., :NOPE], x[..., NOPE:])
    monkeypatch.undo()
    assert pool.get_key_buffer(1)[2, 0, 0].float().item() == 6.0


@pytest.mark.parametrize("fmt", FORMATS)
def test_pool_set_kv_buffer_quantises_the_full_row(pool_module, fmt):
    pool = make_pool(pool_module, fmt)
    k = (torch.randn(2, 1, ROW) * 300).to(torch.bfloat16)
    pool.set_kv_buffer(layer(k_scale=0.5), torch.tensor([5, 9]), k, k)
    buf = pool.get_key_buffer(1).view(torch.uint8)[:, 0]
    assert torch.equal(buf[[5, 9]], reference(k[:, 0], 0.5, fmt))


def test_pool_copies_rows_that_arrive_already_quantised(pool_module):
    # trtllm quantises K itself (mla_quantize_and_rope_for_fp8): bytes are copied unchanged.
    pool = make_pool(pool_module, FN)
    codes = torch.randint(0, 0x7F, (2, 1, ROW), dtype=torch.uint8)
    k = codes.view(FN)
    pool.set_mla_kv_buffer(layer(k_scale=4.0), torch.tensor([1, 2]), k[..., :NOPE], k[..., NOPE:])
    assert torch.equal(pool.kv_buffer[1][[1, 2]], codes)
