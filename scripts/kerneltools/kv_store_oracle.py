"""The independent oracle of the FP8 KV store tests, shared by the CPU (Triton interpreter) and
GPU test modules: torch's own RNE cast after an explicit clamp, and a store driver that writes
into a poisoned pool and checks the neighbouring slots stay untouched."""

from __future__ import annotations

import pytest
import torch

FN, FNUZ = torch.float8_e4m3fn, torch.float8_e4m3fnuz
FORMATS = [pytest.param(FN, id="e4m3fn"), pytest.param(FNUZ, id="e4m3fnuz")]
# Largest finite value of each format (fnuz: 240, its true max, not sglang's 224).
MAX = {FN: 448.0, FNUZ: 240.0}
# DeepSeek-V3.2: 512 latent + 64 rope elements per token.
NOPE, ROPE, ROW = 512, 64, 576
POISON = 0xA5  # a byte the kernel never writes for these inputs


def scale_tensor(k_scale: float | None, device: str | torch.device = "cpu") -> torch.Tensor:
    """A layer's k_scale as the store takes it: a one-element fp32 tensor (None = 1.0)."""
    return torch.tensor(1.0 if k_scale is None else k_scale, dtype=torch.float32, device=device)


def reference(x: torch.Tensor, k_scale: float | None, fmt: torch.dtype) -> torch.Tensor:
    """Expected bytes, computed on the CPU (torch's CUDA build may lack fnuz casts).

    The scale is the fp32 value the layer's tensor holds; its reciprocal is rounded once to
    fp32 (1 / s in float64, then to fp32: the correctly rounded fp32 quotient)."""
    s = scale_tensor(k_scale).item()
    inv = torch.tensor(1.0 / s, dtype=torch.float32)
    y = x.cpu().float() * inv
    code = y.clamp(-MAX[fmt], MAX[fmt]).to(fmt).view(torch.uint8)
    # Our NaN is sign-less (fn 0x7F): GPUs drop a NaN's sign in the multiply anyway.
    nan_code = 0x7F if fmt == FN else 0x80
    return torch.where(y.isnan(), nan_code, code).to(torch.uint8)


def as_rows(values: torch.Tensor) -> torch.Tensor:
    """Pad a flat tensor with zeros to whole 576-element rows."""
    pad = (-values.numel()) % ROW
    return torch.cat([values.flatten(), values.new_zeros(pad)]).view(-1, ROW)


def run_store(
    store,
    rows: torch.Tensor,
    fmt: torch.dtype,
    k_scale: float | None = 1.0,
    *,
    launch_config: tuple[int, int] | None = None,
    device: str = "cpu",
) -> torch.Tensor:
    """Store rows [T, 576] at slots 1..T of a poisoned pool; return the T stored rows (CPU)."""
    t = rows.shape[0]
    rows = rows.to(device)
    buf = torch.full((t + 2, 1, rows.shape[1]), POISON, dtype=torch.uint8, device=device)
    loc = torch.arange(1, t + 1, dtype=torch.int64, device=device)
    store.store_mla_kv_fp8_raw(
        buf,
        loc,
        rows[:, None, :NOPE],
        rows[:, None, NOPE:],
        k_scale=scale_tensor(k_scale, device),
        fp8_dtype=fmt,
        launch_config=launch_config,
    )
    buf = buf.cpu()
    assert (buf[0] == POISON).all() and (buf[t + 1] == POISON).all()
    return buf[1 : t + 1, 0]


def assert_same_bytes(got: torch.Tensor, want: torch.Tensor, x: torch.Tensor) -> None:
    bad = got != want
    if bad.any():
        i = tuple(bad.nonzero()[0].tolist())
        pytest.fail(
            f"{int(bad.sum())} bytes differ; first at {i}: input {x.cpu()[i].item()!r} "
            f"stored {got[i].item():#04x}, torch gives {want[i].item():#04x}"
        )
