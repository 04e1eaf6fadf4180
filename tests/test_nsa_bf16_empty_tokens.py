"""A token whose every top-k index is -1 (a padded row of a captured graph) must give finite
zeros from every decode kernel of the NSA TileLang backend (patch 0001).

v0.5.9's non-split kernels `sparse_attention_fwd_kernel_v1` (the MI300 bf16 path) and
`sparse_attention_fwd_kernel_v2` (CUDA) divide the output by the softmax row sum, which is 0
for such a token: 0/0 = NaN. The split kernel and the FP8 kernel guard it. Two CPU checks:

- source level, for all four kernels: every division by a row sum is a guarded
  `T.if_then_else(sum == 0, 1, sum)`;
- lowering level, where tilelang 0.1.9 can lower the kernel on a CPU (v1 and the split kernel
  for sm_90; v2 needs tilelang 0.1.8): the generated CUDA divides by the guarded value, never by
  the raw sum.

The GPU tests in tests/gpu/test_bf16_empty_tokens_gpu.py run the kernels.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

BF16_KERNELS = (
    "sparse_attention_fwd_kernel_v1",
    "sparse_attention_fwd_kernel_v2",
    "sparse_mla_fwd_decode_partial",
)
NSA = "srt/layers/attention/nsa"
ROW_SUM = re.compile(r"sum|l_shared")


def _functions(path: Path, names) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(path.read_text())
    found = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    return {name: found[name] for name in names}


def _divisions_by_a_row_sum(func: ast.FunctionDef):
    for node in ast.walk(func):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            divisor = node.right
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Div):
            divisor = node.value
        else:
            continue
        if ROW_SUM.search(ast.unparse(divisor)):
            yield node.lineno, divisor


def _is_zero_guard(divisor: ast.expr) -> bool:
    """T.if_then_else(<sum> == 0, <nonzero constant>, <sum>)."""
    if not (isinstance(divisor, ast.Call) and ast.unparse(divisor.func) == "T.if_then_else"):
        return False
    test, if_zero, other = divisor.args
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.ops[0], ast.Eq)
        and ast.literal_eval(test.comparators[0]) == 0
        and ast.unparse(test.left) == ast.unparse(other)
        and isinstance(if_zero, ast.Constant)
        and if_zero.value != 0
    )


@pytest.mark.parametrize(
    "relpath, kernel",
    [(f"{NSA}/tilelang_kernel.py", k) for k in BF16_KERNELS]
    + [(f"{NSA}/tilelang_fp8_kernel.py", "sparse_mla_decode_partial_fp8_program")],
)
def test_every_division_by_a_row_sum_is_guarded(sglang_tree, relpath, kernel):
    func = _functions(sglang_tree / "python" / "sglang" / relpath, [kernel])[kernel]
    divisions = list(_divisions_by_a_row_sum(func))
    assert divisions, f"{kernel}: no division by a row sum found (did the kernel change?)"
    bad = [line for line, divisor in divisions if not _is_zero_guard(divisor)]
    assert not bad, f"{kernel}: unguarded division by the row sum at line(s) {bad} (0/0 = NaN)"


# --- lowering ---------------------------------------------------------------------------------

RAW_SUM_DIVISION = re.compile(r"/ \(?(sumexp|sum_exp)\w*\[")
GUARDED_DIVISION = re.compile(r"acc_o\w*\[\w+\] = \(acc_o\w*\[\w+\] / condval")


@pytest.fixture(scope="module")
def tk(sglang_tree):
    from scripts.kerneltools.kernels import load_tilelang_kernel_module

    return load_tilelang_kernel_module(sglang_tree)


def _lower_for_sm90(tk, program) -> str:
    import tilelang
    from tilelang import tvm

    fp8k = sys.modules["sglang.srt.layers.attention.nsa.tilelang_fp8_kernel"]
    target = tvm.target.Target(fp8k.compile_target("sm_90"))
    with target:
        return tilelang.lower(program, target=target).kernel_source


@pytest.mark.parametrize("kernel", ["v1", "split"])
def test_lowered_kernels_divide_by_the_guarded_sum(tk, kernel):
    if kernel == "v1":
        program = tk.sparse_attention_fwd_kernel_v1.get_tir(16, 512, 64, 2048, sm_scale=0.1)
    else:
        program = tk.sparse_mla_fwd_decode_partial.get_tir(
            16, 512, 64, 2048, sm_scale=0.1, block_I=64, threads=256
        )
    source = _lower_for_sm90(tk, program)
    assert not RAW_SUM_DIVISION.search(source), "division by the raw row sum (0/0 = NaN)"
    assert GUARDED_DIVISION.search(source), "no division by the zero-guarded row sum"
