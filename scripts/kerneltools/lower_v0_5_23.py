"""Lower 0.5.23's TileLang sparse-MLA kernels without a GPU and report facts about the source.

    .venv-hip/bin/python scripts/kerneltools/lower_v0_5_23.py --tree build/sglang-v0.5.23

One JSON object per kernel and target on stdout: ok / error, the dynamic shared memory it asks
for, and whether the padding guards of the series are in the generated source (masked rows
zeroed / indices past the cache masked / no 0/0). Needs tilelang with HIP source generation
(0.1.15, `.venv-hip`); sglang 0.5.23 pins 0.1.12, which was not available here. Run it on the
base commit's tree for the "before" figures.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Run as a script by the .venv-hip interpreter: make the repository importable.
sys.path.insert(0, str(REPO))

# (label, kernel factory, args, kwargs, target, guard regexes that the series adds)
CASES = [
    (
        "fp8_partial",
        "sparse_mla_fwd_decode_partial_fp8",
        [16, 512, 64, 2048],
        {"block_I": 64, "inner_iter": 1, "threads": 256},
        ["gfx942", "gfx950", "sm_90a"],
        {
            "mask_excludes_rows_past_the_cache": r"idx < num_pages",
            "masked_rows_zeroed": r"0 <= \(\(int\*\)page_idx_shared\)",
        },
    ),
    (
        "bf16_partial",
        "sparse_mla_fwd_decode_partial",
        [16, 512, 64, 2048],
        {"block_I": 64, "inner_iter": 1, "threads": 256},
        ["gfx942", "gfx950"],
        {
            "mask_excludes_rows_past_the_cache": r"make_int\d\(seq_len_kv",
            "masked_rows_zeroed": r"\(0 <= idx_\d+\) & \(idx_\d+ < seq_len_kv\)",
        },
    ),
    (
        "v1",
        "sparse_attention_fwd_kernel_v1",
        [16, 512, 0, 2048],
        {},
        ["sm_90a"],
        {
            "mask_excludes_rows_past_the_cache": r"make_int\d\(seq_len_kv",
            "no_zero_division": r"sumexp\[[^]]*\] == 0x0p",
        },
    ),
]


def load(tree: Path, arch: str):
    from scripts.kerneltools.loader import load_tree_module

    fnuz = arch == "gfx942"
    return load_tree_module(
        tree,
        "kernels/ops/attention/dsa/tilelang_kernel.py",
        "sglang.kernels.ops.attention.dsa.tilelang_kernel",
        {
            "sglang.kernels.ops.quantization.fp8_kernel": {"is_fp8_fnuz": lambda: fnuz},
            "sglang.srt.utils": {
                "is_gfx95_supported": lambda: arch == "gfx950",
                "is_hip": lambda: arch.startswith("gfx"),
                "get_device_core_count": lambda device_id=0: 304,
            },
        },
    )


def lower(tree: Path, label: str, factory: str, args, kwargs, arch: str, guards: dict) -> dict:
    import tilelang
    from tilelang import tvm

    mod = load(tree, arch)
    program = getattr(mod, factory).get_tir(*args, **kwargs)
    spec = (
        {"kind": "hip", "mcpu": arch} if arch.startswith("gfx") else {"kind": "cuda", "arch": arch}
    )
    target = tvm.target.Target(spec)
    start = time.time()
    with tvm.transform.PassContext(config=mod.pass_configs), target:
        artifact = tilelang.lower(program, target=target)
    source = artifact.kernel_source
    shared = max(
        int(f.attrs.get("dyn_shared_memory_buf", 0)) if f.attrs else 0
        for f in artifact.device_mod.functions.values()
    )
    found = {name: bool(re.search(rx, source)) for name, rx in guards.items()}
    return dict(
        kernel=label,
        arch=arch,
        ok=True,
        seconds=round(time.time() - start, 1),
        shared_bytes=shared,
        guards=found,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, default=REPO / "build" / "sglang-v0.5.23")
    ap.add_argument("--kernel", nargs="*", help="labels to run (default: all)")
    args = ap.parse_args()
    failures = 0
    for label, factory, fargs, kwargs, arches, guards in CASES:
        if args.kernel and label not in args.kernel:
            continue
        for arch in arches:
            try:
                row = lower(args.tree.resolve(), label, factory, fargs, kwargs, arch, guards)
            except Exception as exc:  # one line per case, go on
                failures += 1
                row = dict(
                    kernel=label, arch=arch, ok=False, error=f"{type(exc).__name__}: {exc}"[-600:]
                )
            print(json.dumps(row), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
