"""Compile the Triton kernels the 0.5.23 series touches for gfx942 and gfx950 (CPU only).

    .venv/bin/python -m scripts.kerneltools.amd_compile_v0_5_23 \
        [--tree build/sglang-v0.5.23] [--json OUT]

Loads 0.5.23's own kernel modules from the tree (patched or not: run it on the base commit for
the "before" figures) and prints VGPR/AGPR/SGPR, spills and LDS per kernel and arch, for the
DeepSeek-V3.2 decode shape (H = 16 per block, D_V 512, D_TAIL 64, topk 2048) with the FP8 format
of each arch. A kernel argument the tree's version lacks is left out, so the same description
compiles the unpatched kernels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

from scripts.kerneltools.amd_compile import (  # noqa: E402
    ARCHES,
    AmdUsage,
    compile_for_amd,
    unwrap_jit,
)

FP8 = {"gfx942": "fp8e4b8", "gfx950": "fp8e4nv"}  # e4m3fnuz on MI300, e4m3fn on MI355
FLAGS = ("HAS_K_SCALE", "SCALE_Q")  # constexpr switches the series adds
STUBS = {
    "sglang.kernels.ops.attention.metadata": {"q8kv8_topk_length_from_indices": None},
    "sglang.kernels.ops.quantization.fp8_kernel": {"is_fp8_fnuz": lambda: False},
    "sglang.srt.utils": {
        "get_device_core_count": lambda device_id=0: 304,
        "is_gfx95_supported": lambda: False,
    },
    "sglang.kernels.jit.utils": {"is_arch_support_pdl": lambda: False},
    "sglang.srt.runtime_context": {"get_parallel": None},
}


def load_modules(tree: Path) -> dict[str, Any]:
    from scripts.kerneltools.loader import load_tree_module

    dsa = "kernels/ops/attention/dsa"
    mla = load_tree_module(
        tree,
        f"{dsa}/triton_sparse_mla.py",
        "sglang.kernels.ops.attention.dsa.triton_sparse_mla",
        STUBS,
    )
    buf = load_tree_module(
        tree, "kernels/ops/kvcache/mla_buffer.py", "sglang.kernels.ops.kvcache.mla_buffer", STUBS
    )
    return {"mla": mla, "buf": buf}


def _only_known(fn: Any, values: dict[str, Any]) -> dict[str, Any]:
    names = set(unwrap_jit(fn).arg_names)
    return {k: v for k, v in values.items() if k in names}


def kernel_cases(mods: dict[str, Any], arch: str) -> list[tuple[str, Any, dict, dict, int]]:
    """(label, kernel, signature, constexprs, num_warps) for the decode/prefill/store shapes."""
    fp8 = FP8[arch]
    mla, buf = mods["mla"], mods["buf"]
    h, d_v, d_tail, topk = 16, 512, 64, 2048
    strides = {
        "STRIDE_QN_T": h * 576,
        "STRIDE_QN_H": 576,
        "STRIDE_QR_T": h * 576,
        "STRIDE_QR_H": 576,
    }
    q_sig = {"q_nope_ptr": "*bf16", "q_rope_ptr": "*bf16", "kv_ptr": f"*{fp8}", "idx_ptr": "*i32"}
    common = dict(H=h, D_V=d_v, D_TAIL=d_tail, NUM_GROUPS=d_v // 128, USE_FP8_DOT=True, **strides)
    extra_sig = {"k_scale_ptr": "*fp32", "num_kv_rows": "i32"}
    cases = []
    # The unpatched kernels' variant, then what an FP8 checkpoint runs: its layers carry a
    # k_scale, and the query is bf16 on MI300 (gfx950's fused RoPE writer hands over FP8 Q).
    variants = {
        "plain": {"HAS_K_SCALE": False, "SCALE_Q": False},
        "k_scale": {"HAS_K_SCALE": True, "SCALE_Q": False},
        "k_scale+q_scale": {"HAS_K_SCALE": True, "SCALE_Q": True},
    }
    for tag, flags in variants.items():
        fused = mla._sparse_mla_fused_kernel
        sig = (
            q_sig
            | {"topk_length_ptr": "*i32", "out_ptr": "*bf16", "qk_scale": "fp32", "fp8_max": "fp32"}
            | extra_sig
        )
        cx = (
            common
            | dict(
                topk=topk,
                KV_DIM=576,
                USE_TOPK_LENGTH=False,
                BLOCK_H=16,
                BLOCK_K=64,
                USE_I64_PAGE=True,
                PIPE_STAGES=3,
            )
            | flags
        )
        cases.append((f"fused[{tag}]", fused, sig, cx, 4))
        split = mla._sparse_mla_split_k_kernel
        sig = (
            q_sig
            | {
                "lse_partial_ptr": "*fp32",
                "acc_partial_ptr": "*bf16",
                "qk_scale": "fp32",
                "fp8_max": "fp32",
            }
            | extra_sig
        )
        cx = common | dict(topk=topk, KV_DIM=576, KV_SPLITS=8, BLOCK_H=16, BLOCK_K=64) | flags
        cases.append((f"split_k[{tag}]", split, sig, cx, 4))
        single = mla._sparse_mla_fwd_split_dim_kernel
        sig = (
            q_sig
            | {"o_ptr": "*bf16", "qk_scale": "fp32", "fp8_max": "fp32", "topk": "i32"}
            | extra_sig
        )
        cx = common | dict(DIM=576, SEQ_BUCKET=0, BLOCK_N=32) | flags
        cases.append((f"single_pass[{tag}]", single, sig, cx, 4))
        store = buf.set_mla_kv_buffer_fp8_quant_kernel
        sig = {
            "kv_buffer_fp8_ptr": f"*{fp8}",
            "cache_k_nope_ptr": "*bf16",
            "cache_k_rope_ptr": "*bf16",
            "loc_ptr": "*i64",
            "k_scale_ptr": "*fp32",
            "reserved_skip_index": "i32",
        }
        cx = (
            dict(
                buffer_stride=576,
                nope_stride=512,
                rope_stride=64,
                nope_dim=512,
                rope_dim=64,
                FP8_MAX=240.0 if arch == "gfx942" else 448.0,
                BLOCK=128,
                USE_GDC=False,
            )
            | flags
        )
        if "q_scale" not in tag:  # the store has no query
            cases.append((f"kv_store[{tag}]", store, sig, cx, 4))
    out = []
    for label, fn, sig, cx, warps in cases:
        names = set(unwrap_jit(fn).arg_names)
        if any(flag not in names for flag, on in cx.items() if flag in FLAGS and on):
            continue  # this tree's kernel has no such variant (e.g. unpatched)
        # An autotuned kernel's config keys are constexprs the caller does not pass.
        out.append((label, fn, _only_known(fn, sig), _only_known(fn, cx), warps))
    return out


def run(tree: Path) -> list[dict[str, Any]]:
    mods = load_modules(tree)
    rows = []
    for arch in ARCHES:
        for label, fn, sig, cx, warps in kernel_cases(mods, arch):
            usage: AmdUsage = compile_for_amd(fn, sig, cx, arch, num_warps=warps)
            rows.append({"case": label} | usage.as_dict())
            print(
                f"{arch} {label:24s} vgpr {usage.vgpr:3d} agpr {usage.agpr:3d} "
                f"sgpr {usage.sgpr:3d} spills v{usage.vgpr_spill}/s{usage.sgpr_spill} "
                f"lds {usage.lds_bytes} "
                f"scratch {usage.scratch_bytes}",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=REPO / "build" / "sglang-v0.5.23")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = run(args.tree.resolve())
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 1 if any(r["spills"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
