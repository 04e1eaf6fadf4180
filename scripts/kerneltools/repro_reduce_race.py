"""Reproduce (and show the fix for) the bf16 decode-kernel race under tilelang 0.1.9.

    python -m scripts.kerneltools.repro_reduce_race --base-tree <unpatched v0.5.9 tree> \
        --tree <patched tree>

Builds v0.5.9's bf16 `sparse_mla_fwd_decode_partial` + combine from both trees for H = 16 and
runs each on identical inputs many times at T in {1, 5, 8, 32, 64}. Prints, per tree and T,
the relative L2 error against the float64 reference, how many runs differ bit-wise from the
first, and which heads ever differ. The cause (see patch 0002): the cross-warp
reduction's shared scratch shares bytes with the next shared tile and has no barrier after its
last read. Writes a JSON report next to the printed table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base-tree", required=True, help="tree with v0.5.9's tilelang_kernel.py")
    ap.add_argument("--tree", required=True, help="tree with the patched tilelang_kernel.py")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--out", default=str(REPO / "reports" / "repro_reduce_race.json"))
    args = ap.parse_args()

    import tilelang
    import torch

    from .kernels import compile_bf16_decode, load_fp8_kernel_module
    from .loader import install_stub, load_tree_module
    from .reference import sparse_mla_reference
    from .shapes import D_TAIL, D_V, NUM_SLOTS, SM_SCALE, TOPK

    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 2
    install_stub("sglang.srt.layers.quantization.fp8_kernel", is_fp8_fnuz=lambda: False)
    install_stub("sglang.srt.utils", is_hip=lambda: False, is_gfx95_supported=lambda: False)
    fp8k = load_fp8_kernel_module(Path(args.tree))
    target = fp8k.compile_target(fp8k.device_arch()[0])
    rel = "srt/layers/attention/nsa/tilelang_kernel.py"
    trees = {
        "v0.5.9": load_tree_module(Path(args.base_tree), rel, "tk_base"),
        "patched": load_tree_module(Path(args.tree), rel, "tk_patched"),
    }
    kernels = {
        k: compile_bf16_decode(m, 16, D_V, D_TAIL, TOPK, SM_SCALE, target) for k, m in trees.items()
    }
    results = []
    print(
        f"tilelang {tilelang.__version__} on {torch.cuda.get_device_name()}, H=16, {args.runs} runs"
    )
    print("| tree | T | rel. L2 vs float64 | runs differing | heads ever differing |")
    print("|---|---|---|---|---|")
    for num_tokens in (1, 5, 8, 32, 64):
        gen = torch.Generator().manual_seed(num_tokens)
        q = torch.randn(num_tokens, 16, D_V + D_TAIL, generator=gen).bfloat16().cuda()
        kv = torch.randn(NUM_SLOTS, 1, D_V + D_TAIL, generator=gen).bfloat16().cuda()
        idx = (
            torch.stack(
                [torch.randperm(NUM_SLOTS, generator=gen)[:TOPK] for _ in range(num_tokens)]
            )
            .to(torch.int32)
            .cuda()
        )
        ref = sparse_mla_reference(q.double(), kv[:, 0].double(), idx, SM_SCALE, D_V)
        for name, (partial, combine) in kernels.items():
            outs = []
            for _ in range(args.runs):
                po, pl = partial(q.unsqueeze(0), kv.unsqueeze(0), idx.view(1, num_tokens, 1, TOPK))
                outs.append(combine(po, pl)[0])
            first = outs[0]
            differing = sum(not torch.equal(o, first) for o in outs[1:])
            heads = sorted(
                {
                    h
                    for o in outs
                    for h in torch.nonzero((o != first).any(-1).any(0)).flatten().tolist()
                }
            )
            err = max(((o.double() - ref).norm() / ref.norm()).item() for o in outs)
            results.append(
                dict(
                    tree=name,
                    T=num_tokens,
                    max_rel_l2=err,
                    runs_differing=differing,
                    heads_differing=heads,
                )
            )
            print(f"| {name} | {num_tokens} | {err:.4f} | {differing}/{args.runs - 1} | {heads} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            dict(tilelang=tilelang.__version__, card=torch.cuda.get_device_name(), results=results),
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
