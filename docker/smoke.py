"""Build-time smoke check of the deployment image: exit 1 unless it is what versions.env says.

Run by the last RUN step of docker/rocm.Dockerfile with the values of versions.env as arguments,
so a wrong TileLang, a stale sglang or a missing FP8 kernel fails the build instead of the first
request. Standard library only; it runs with the image's python3.

    python3 smoke.py --sglang-version X.Y.Z --tilelang-commit <40 hex> \
        [--tilelang-src /opt/tilelang] [--aiter-version X.Y.Z] [--require-rocm-torch]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

# The patched entry points the image must carry: (module, symbol). The one place to edit when
# the kernel or store modules are renamed.
REQUIRED_SYMBOLS: tuple[tuple[str, str], ...] = (
    ("sglang.srt.layers.attention.nsa.tilelang_fp8_kernel", "build_sparse_mla_decode_partial_fp8"),
    ("sglang.srt.mem_cache.fp8_kv_store", "store_mla_kv_fp8_raw"),
)

# Distribution name of aiter (its import name is `aiter`).
AITER_DIST = "amd-aiter"


class CheckFailed(Exception):
    """A smoke check found the image different from versions.env."""


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], str]


def public_version(version: str) -> str:
    """'0.1.7+rocm.gita55a8230' -> '0.1.7' (drop the PEP 440 local label)."""
    return version.split("+", 1)[0]


def check_tilelang(commit: str, src: str | None) -> str:
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise CheckFailed(f"--tilelang-commit must be 40 lowercase hex digits, got {commit!r}")
    try:
        tilelang = importlib.import_module("tilelang")
    except Exception as exc:  # any import error is a broken image
        raise CheckFailed(f"import tilelang failed: {exc!r}") from exc
    version = str(getattr(tilelang, "__version__", ""))
    # TileLang's version provider appends `git<first 8 hex>` of the commit it was built from.
    local = version.split("+", 1)[1] if "+" in version else ""
    if f"git{commit[:8]}" not in local.split("."):
        raise CheckFailed(
            f"tilelang {version!r} (from {tilelang.__file__}) was not built from commit "
            f"{commit[:8]}: rebuild TileLang at TILELANG_ROCM_COMMIT"
        )
    if src is not None:
        head = subprocess.run(
            ["git", "-C", src, "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        )
        if head.returncode != 0:
            raise CheckFailed(f"cannot read the TileLang source commit in {src}: {head.stderr}")
        if head.stdout.strip() != commit:
            raise CheckFailed(f"TileLang source {src} is at {head.stdout.strip()}, lock: {commit}")
    return f"tilelang {version}"


def check_sglang(expected: str) -> str:
    try:
        sglang = importlib.import_module("sglang")
    except Exception as exc:
        raise CheckFailed(f"import sglang failed: {exc!r}") from exc
    version = str(getattr(sglang, "__version__", ""))
    if public_version(version) != expected:
        raise CheckFailed(f"sglang {version!r} (from {sglang.__file__}), lock: {expected}")
    return f"sglang {version} from {sglang.__file__}"


def check_symbol(module_name: str, symbol: str) -> str:
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CheckFailed(
            f"import {module_name} failed: {exc!r} (is the patch series applied in the tree?)"
        ) from exc
    obj = getattr(module, symbol, None)
    if obj is None:
        raise CheckFailed(f"{module_name} has no {symbol} (from {module.__file__})")
    if not callable(obj):
        raise CheckFailed(f"{module_name}.{symbol} is not callable ({type(obj).__name__})")
    return f"{module_name}.{symbol}"


def check_aiter(expected: str) -> str:
    # Presence only: importing aiter may touch the GPU, and the build has none.
    if importlib.util.find_spec("aiter") is None:
        raise CheckFailed("aiter is not importable: the base image must carry it")
    try:
        version = importlib.metadata.version(AITER_DIST)
    except importlib.metadata.PackageNotFoundError as exc:
        raise CheckFailed(f"no {AITER_DIST} distribution metadata for aiter") from exc
    if public_version(version) != expected:
        raise CheckFailed(
            f"{AITER_DIST} {version}, lock AITER_ROCM_VERSION={expected}: the base image changed"
        )
    return f"{AITER_DIST} {version}"


def check_rocm_torch() -> str:
    try:
        torch = importlib.import_module("torch")
    except Exception as exc:
        raise CheckFailed(f"import torch failed: {exc!r}") from exc
    hip = getattr(getattr(torch, "version", None), "hip", None)
    if not hip:
        raise CheckFailed(
            f"torch {torch.__version__} is not a ROCm build: a pip step replaced the base's torch"
        )
    return f"torch {torch.__version__} (HIP {hip})"


def check_toml_reader() -> str:
    """The gates read config/gates.toml: tomllib on 3.11+, tomli (TOMLI_VERSION) below."""
    if sys.version_info >= (3, 11):
        return "tomllib (Python 3.11+)"
    if importlib.util.find_spec("tomli") is None:
        raise CheckFailed(
            f"Python {sys.version.split()[0]} has no tomllib and tomli is missing: the gates "
            "cannot read their config (the Dockerfile installs TOMLI_VERSION)"
        )
    return f"tomli {importlib.metadata.version('tomli')} (Python {sys.version.split()[0]})"


def build_checks(args: argparse.Namespace) -> list[Check]:
    checks = [
        Check("tilelang", lambda: check_tilelang(args.tilelang_commit, args.tilelang_src)),
        Check("sglang", lambda: check_sglang(args.sglang_version)),
        Check("toml reader", check_toml_reader),
    ]
    for module_name, symbol in REQUIRED_SYMBOLS:
        checks.append(Check(f"symbol {symbol}", lambda m=module_name, s=symbol: check_symbol(m, s)))
    if args.aiter_version:
        checks.append(Check("aiter", lambda: check_aiter(args.aiter_version)))
    if args.require_rocm_torch:
        checks.append(Check("torch", check_rocm_torch))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sglang-version", required=True, help="SGLANG_VERSION from versions.env")
    parser.add_argument("--tilelang-commit", required=True, help="TILELANG_ROCM_COMMIT")
    parser.add_argument("--tilelang-src", help="TileLang source checkout to compare HEAD with")
    parser.add_argument("--aiter-version", help="AITER_ROCM_VERSION (checked when given)")
    parser.add_argument(
        "--require-rocm-torch", action="store_true", help="fail unless torch is a HIP build"
    )
    args = parser.parse_args(argv)

    failed = 0
    for check in build_checks(args):
        try:
            print(f"ok   {check.name}: {check.run()}")
        except CheckFailed as exc:
            failed += 1
            print(f"FAIL {check.name}: {exc}")
    if failed:
        print(f"smoke: {failed} check(s) failed; the image does not match versions.env")
        return 1
    print("smoke: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
