"""sglang 0.5.23's Triton sparse-MLA decode, loaded from its wheel, on the CPU interpreter.

The benchmark times this kernel on the GPU through `upstream_triton.decode_call`; here the same
call runs under TRITON_INTERPRET=1 at a tiny shape (T = 2, H = 16, topk = 128, d_v 512 +
d_tail 64, split-K and single-pass launches) against the float64 reference, with bf16 and FP8
caches, so the benchmark's arguments are known to be right before a GPU sees them.

Triton decides interpretation when a function is decorated, including its own `tl.cdiv` & co.
at `import triton`; other tests import triton first. So the interpreter tests run in a child
process started with TRITON_INTERPRET=1: they live in tests/interpreted/
upstream_triton_decode_cases.py, which `test_interpreter_tests_in_a_clean_process` runs (and
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

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.kerneltools import upstream_triton as ut

CASES = Path(__file__).resolve().parent / "interpreted" / "upstream_triton_decode_cases.py"


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
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(CASES)],
        capture_output=True, text=True, timeout=1800, env=env, cwd=ut.REPO,
    )  # fmt: skip
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "5 passed" in proc.stdout, proc.stdout[-2000:]
