"""v0.5.9's bf16 decode partial + combine (the MI355 bf16 decode path) after our bf16 patches:
correct against the float64 reference and bit-for-bit stable at 16 heads, T >= 5 — the shape
where the unpatched kernel races under tilelang 0.1.9 (scripts.kerneltools.repro_reduce_race
shows it).

Tolerance: bf16 inputs, bf16 P and bf16 partial outputs (8-bit mantissa): relative L2 <= 1%.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip(
        "needs a CUDA GPU (run on the device: see docs/kernels.md)", allow_module_level=True
    )

from scripts.kerneltools.kernels import compile_bf16_decode, load_tilelang_kernel_module  # noqa: E402
from scripts.kerneltools.reference import sparse_mla_reference  # noqa: E402
from scripts.kerneltools.shapes import D_TAIL, D_V, NUM_SLOTS, SM_SCALE, TOPK  # noqa: E402


@pytest.fixture(scope="module")
def bf16_kernels(sglang_tree):
    tk = load_tilelang_kernel_module(sglang_tree)
    fp8k = __import__("sys").modules["sglang.srt.layers.attention.nsa.tilelang_fp8_kernel"]
    target = fp8k.compile_target(fp8k.device_arch()[0])
    return compile_bf16_decode(tk, 16, D_V, D_TAIL, TOPK, SM_SCALE, target)


@pytest.mark.parametrize("num_tokens", [5, 8, 32, 64])
def test_bf16_decode_correct_and_stable(bf16_kernels, num_tokens):
    partial, combine = bf16_kernels
    gen = torch.Generator().manual_seed(num_tokens)
    q = torch.randn(num_tokens, 16, D_V + D_TAIL, generator=gen).bfloat16().cuda()
    kv = torch.randn(NUM_SLOTS, 1, D_V + D_TAIL, generator=gen).bfloat16().cuda()
    idx = torch.stack([torch.randperm(NUM_SLOTS, generator=gen)[:TOPK] for _ in range(num_tokens)])
    idx[:, 1500:] = -1  # padded tail, as for requests shorter than topk
    idx = idx.to(torch.int32).cuda()

    def run():
        po, pl = partial(q.unsqueeze(0), kv.unsqueeze(0), idx.view(1, num_tokens, 1, TOPK))
        return combine(po, pl)[0]

    out = run()
    ref = sparse_mla_reference(q.double(), kv[:, 0].double(), idx, SM_SCALE, D_V)
    rel = ((out.double() - ref).norm() / ref.norm()).item()
    assert rel <= 1e-2, f"relative L2 error {rel:.4f}"
    for _ in range(10):
        assert torch.equal(run(), out), "run-to-run difference"
