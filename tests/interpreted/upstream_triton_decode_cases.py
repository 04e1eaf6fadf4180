"""The interpreted half of tests/test_upstream_triton_decode.py: run only by its
`test_interpreter_tests_in_a_clean_process`, in a child process started with
TRITON_INTERPRET=1 (the file name does not match test_*.py, so a normal run never collects it).
See that module's docstring for what is tested and the interpreter accommodations.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from scripts.kerneltools import upstream_triton as ut
from scripts.kerneltools.reference import sparse_mla_reference

T, H, TOPK, N, D_V, D_TAIL = 2, 16, 128, 300, 512, 64
SM_SCALE = 0.1352
FP8 = torch.float8_e4m3fn

TORCH_DTYPE = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
TORCH_DTYPE.update({"fp8e4nv": torch.float8_e4m3fn, "fp8e4b8": torch.float8_e4m3fnuz})
TORCH_DTYPE.update({"fp8e5": torch.float8_e5m2})


def _torch_dtype(tl_dtype):
    return TORCH_DTYPE.get(str(tl_dtype).replace("tl.", ""))


@contextlib.contextmanager
def _interpreter_fixes() -> Iterator[None]:
    import triton.runtime.interpreter as ti

    saved = (ti._patch_lang_tensor, ti._convert_float, ti.InterpreterBuilder.create_dot)

    def patch_lang_tensor(tensor, scope):
        saved[0](tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    def convert_float(data, src, dst, rounding_mode):
        src_t, dst_t = _torch_dtype(src), _torch_dtype(dst)
        rtz = rounding_mode is not None and "RTZ" in str(rounding_mode)
        if rtz or src_t is None or dst_t is None:
            return saved[1](data, src, dst, rounding_mode)
        bits = torch.from_numpy(np.ascontiguousarray(data).view(f"uint{src.primitive_bitwidth}"))
        raw = {16: torch.int16, 32: torch.int32, 8: torch.uint8}[src.primitive_bitwidth]
        out = bits.view(raw).view(src_t).to(dst_t)
        return out.view(
            {16: torch.int16, 32: torch.int32, 8: torch.uint8}[dst.itemsize * 8]
        ).numpy()

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        def as_float(x):
            if str(x.dtype.scalar) in ("bf16", "tl.bfloat16"):
                return ti.TensorHandle(
                    (x.data.astype(np.uint32) << 16).view(np.float32), ti.tl.float32
                )
            return x

        return saved[2](self, as_float(a), as_float(b), d, input_precision, max_num_imprecise_acc)

    ti._patch_lang_tensor, ti._convert_float = patch_lang_tensor, convert_float
    ti.InterpreterBuilder.create_dot = create_dot
    try:
        yield
    finally:
        ti._patch_lang_tensor, ti._convert_float = saved[:2]
        ti.InterpreterBuilder.create_dot = saved[2]


@pytest.fixture(scope="module")
def decode():
    assert os.environ.get("TRITON_INTERPRET") == "1", "start this process with TRITON_INTERPRET=1"
    module = ut.load_triton_sparse_mla_decode(cu_count=8)
    from triton.runtime.interpreter import InterpretedFunction

    kernels = sys.modules["sglang.kernels.ops.attention.dsa.triton_sparse_mla"]
    assert isinstance(kernels._sparse_mla_split_k_kernel, InterpretedFunction)
    kernels._G = int(kernels._G)
    module._cu_count = lambda device=None: 8  # the launcher's device queries
    module._sparse_mla_block_k = lambda kv: 64
    with _interpreter_fixes():
        yield module


def _inputs(seed: int):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(T, H, D_V + D_TAIL, generator=gen).to(torch.bfloat16)
    kv = torch.randn(N, 1, D_V + D_TAIL, generator=gen).to(torch.bfloat16)
    idx = torch.randperm(N, generator=gen)[: T * TOPK].view(T, 1, TOPK).to(torch.int32)
    idx[1, 0, 50:] = -1  # a short sequence: -1 padding
    idx[0, 0, torch.rand(TOPK, generator=gen) < 0.3] = -1  # holes
    return q, kv, idx


def _reference(q, kv, idx, kv_dtype, sm_scale=SM_SCALE):
    if kv_dtype == FP8:
        q64, kv64 = q.float().to(FP8).double(), kv.float().to(FP8).double()
    else:
        q64, kv64 = q.double(), kv.double()
    return sparse_mla_reference(q64, kv64.view(N, -1), idx.view(T, TOPK), sm_scale, D_V)


def _rel_l2(out, ref) -> float:
    return ((out.view(T, H, D_V).double() - ref).norm() / ref.norm()).item()


# bf16 rounds P to bf16 (2^-9 relative); FP8 rounds P to e4m3 (2^-4): DESIGN §9.4 simulated
# 1.6-1.9% for FP8 P on the same dequantised inputs.
TOLERANCE = {torch.bfloat16: 0.01, FP8: 0.03}


@pytest.mark.parametrize("kv_dtype", [torch.bfloat16, FP8], ids=["bf16", "fp8"])
@pytest.mark.parametrize("kv_splits", [None, 1], ids=["heuristic", "single-pass"])
def test_interpreted_benchmark_call_matches_float64_reference(decode, kv_dtype, kv_splits):
    q, kv, idx = _inputs(seed=1)
    cache = kv if kv_dtype == torch.bfloat16 else kv.float().to(FP8)
    if kv_splits is None:  # exactly the benchmark's call
        out = ut.decode_call(decode, q, cache, idx, SM_SCALE, D_V, workspace=[])
    else:
        out = decode.triton_sparse_mla_decode_splitk(
            q[..., :D_V], q[..., D_V:], cache, idx, SM_SCALE, D_V, kv_splits=kv_splits
        )
    assert out.shape == (1, T, H, D_V) and out.dtype == torch.bfloat16
    rel = _rel_l2(out, _reference(q, kv, idx, kv_dtype))
    print(f"\n{kv_dtype} splits={kv_splits}: relative L2 {rel:.5f}")
    assert rel <= TOLERANCE[kv_dtype], f"relative L2 error {rel:.4f}"


def test_interpreted_comparison_catches_a_wrong_call(decode):
    # The same check fails for a plausible mistake: the rope part of Q left out.
    q, kv, idx = _inputs(seed=2)
    no_rope = q.clone()
    no_rope[..., D_V:] = 0
    out = ut.decode_call(decode, no_rope, kv, idx, SM_SCALE, D_V, workspace=[])
    assert _rel_l2(out, _reference(q, kv, idx, torch.bfloat16)) > TOLERANCE[torch.bfloat16]
