"""sglang 0.5.23's Triton sparse-MLA decode, loaded from its wheel, on the CPU interpreter.

The benchmark times this kernel on the GPU through `upstream_triton.decode_call`; here the same
call runs under TRITON_INTERPRET=1 at a tiny shape (T = 2, H = 16, topk = 128, d_v 512 +
d_tail 64, split-K and single-pass launches) against the float64 reference, with bf16 and FP8
caches, so the benchmark's arguments are known to be right before a GPU sees them.

Triton decides interpretation when a function is decorated, including its own `tl.cdiv` & co.
at `import triton`; other tests import triton first. So the interpreter tests run in a child
process started with TRITON_INTERPRET=1 (`test_interpreter_tests_in_a_clean_process`, which
fails with the child's output if any of them fails).

Test-only accommodations, each narrow:
- device queries the launcher makes (CU count, shared-memory size) are answered with fixed
  values; the stream-keyed workspace is avoided by passing a workspace list (as the benchmark);
- three bugs of triton 3.6's interpreter are worked around (they are not the kernel's): a
  one-element index tensor's `__index__` calls `int()` on a 1-d array (an error under
  numpy 2), `tl.dot` multiplies bf16 operands as their raw uint16 bits, and float -> FP8
  conversion rounds half-up with mantissa-carry errors; the interpreter then converts exactly
  (torch's round-to-nearest-even, saturating), as the GPU does. A module-level `tl.constexpr`
  added to a tensor also breaks the interpreter, so the kernel module's `_G` is rebound to the
  int it wraps.

0.5.23's FP8 semantics (what the reference models): Q is cast to the FP8 format unscaled, P is
stored as FP8(P * 448) and rescaled, no k_scale is applied, and only `slot < 0` is masked (so the
indices here are -1 or in range).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from scripts.kerneltools import upstream_triton as ut
from scripts.kerneltools.reference import sparse_mla_reference

# Set by test_interpreter_tests_in_a_clean_process for its child pytest run.
CHILD = os.environ.get("UPSTREAM_TRITON_CHILD") == "1"

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


def test_wheel_is_pinned_and_only_the_modules_are_extracted(tmp_path):
    wheel = ut.bench_wheel()
    assert ut.sha256_file(wheel) == ut.wheel_pins()[2]
    ut.extract_modules(wheel, tmp_path)
    got = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.py"))
    assert got == sorted(f"python/sglang/{rel}" for rel in ut.WHEEL_MODULES.values())
    ut.check_extracted(tmp_path)  # what the offline GPU host runs before loading them
    victim = tmp_path / "python" / "sglang" / ut.WHEEL_MODULES[ut.ENTRY_MODULE]
    victim.write_text(victim.read_text() + "\n# edited\n")
    with pytest.raises(ut.WheelError, match="changed"):
        ut.check_extracted(tmp_path)


def test_a_wrong_wheel_is_refused(tmp_path):
    fake = tmp_path / ut.wheel_pins()[1]
    fake.write_bytes(b"not the wheel")
    with pytest.raises(ut.WheelError, match="does not match the pinned"):
        ut.bench_wheel(tmp_path, download=False)


def test_interpreter_tests_in_a_clean_process():
    if CHILD:
        pytest.skip("this is the child process")
    env = dict(os.environ, TRITON_INTERPRET="1", UPSTREAM_TRITON_CHILD="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", __file__,
         "-k", "interpreted"],
        capture_output=True, text=True, timeout=1800, env=env, cwd=ut.REPO,
    )  # fmt: skip
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "5 passed" in proc.stdout, proc.stdout[-2000:]


interpreted = pytest.mark.skipif(not CHILD, reason="runs in the TRITON_INTERPRET=1 child above")


@interpreted
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


@interpreted
def test_interpreted_comparison_catches_a_wrong_call(decode):
    # The same check fails for a plausible mistake: the rope part of Q left out.
    q, kv, idx = _inputs(seed=2)
    no_rope = q.clone()
    no_rope[..., D_V:] = 0
    out = ut.decode_call(decode, no_rope, kv, idx, SM_SCALE, D_V, workspace=[])
    assert _rel_l2(out, _reference(q, kv, idx, torch.bfloat16)) > TOLERANCE[torch.bfloat16]
