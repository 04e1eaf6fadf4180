"""What the base image carries: Python, sglang, aiter, torch (HIP), ROCm and llvm-config.

Printed by the first RUN of docker/rocm.Dockerfile, and run by `make image` in the pulled base
before the build with --expect-* (values of versions.env): a wrong base then fails in seconds,
not after the TileLang build. Standard library only, Python 3.10.

    python3 base_report.py [--json] [--expect-sglang X.Y.Z] [--expect-aiter X.Y.Z]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

# Where ROCm keeps its LLVM, in the order docker/tilelang_build.sh looks.
LLVM_CONFIG_PLACES = ("llvm/bin/llvm-config", "lib/llvm/bin/llvm-config")


def dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def torch_versions() -> tuple[str | None, str | None]:
    """torch's version and HIP version, read from its metadata files (no import, no GPU)."""
    version = dist_version("torch")
    hip = None
    try:
        files = importlib.metadata.files("torch") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if str(f).replace("\\", "/") == "torch/version.py":
            for line in Path(str(f.locate())).read_text(errors="replace").splitlines():
                if line.startswith("hip"):
                    value = line.split("=", 1)[1].strip().strip("'\"")
                    hip = None if value in ("None", "") else value
    return version, hip


def rocm_version(rocm_path: Path) -> str | None:
    info = rocm_path / ".info" / "version"
    return info.read_text().strip() if info.is_file() else None


def llvm_config(rocm_path: Path) -> str | None:
    for rel in LLVM_CONFIG_PLACES:
        candidate = rocm_path / rel
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def report() -> dict[str, str | None]:
    rocm_path = Path(os.environ.get("ROCM_PATH", "/opt/rocm"))
    torch, hip = torch_versions()
    llvm = llvm_config(rocm_path)
    llvm_version = None
    if llvm:
        proc = subprocess.run([llvm, "--version"], capture_output=True, text=True, check=False)
        llvm_version = proc.stdout.strip() or None
    return {
        "python": platform.python_version(),
        "sglang": dist_version("sglang"),
        "amd-aiter": dist_version("amd-aiter"),
        "torch": torch,
        "torch_hip": hip,
        "rocm": rocm_version(rocm_path),
        "rocm_path": str(rocm_path),
        "llvm_config": llvm,
        "llvm_version": llvm_version,
    }


def public(version: str | None) -> str | None:
    return None if version is None else version.split("+", 1)[0]


def problems(found: dict[str, str | None], sglang: str | None, aiter: str | None) -> list[str]:
    """What makes this base unusable for versions.env, each with what to do."""
    out = []
    if sglang is not None and public(found["sglang"]) != sglang:
        out.append(
            f"the base carries sglang {found['sglang']}, versions.env SGLANG_VERSION={sglang}: "
            "use the base tag of that release (ROCM_BASE_TAG_* in versions.env)"
        )
    if aiter is not None and public(found["amd-aiter"]) != aiter:
        out.append(
            f"the base carries amd-aiter {found['amd-aiter']}, versions.env "
            f"AITER_ROCM_VERSION={aiter}: update the pin if the base is the intended one"
        )
    if not found["torch_hip"]:
        out.append(f"torch {found['torch']} in the base is not a ROCm (HIP) build")
    if not found["llvm_config"]:
        places = ", ".join(f"{found['rocm_path']}/{p}" for p in LLVM_CONFIG_PLACES)
        out.append(f"no ROCm llvm-config at {places}: TileLang cannot be built against this base")
    if sys.version_info < (3, 10):
        out.append(f"the base runs Python {found['python']}; the image's tools need >= 3.10")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--expect-sglang", help="SGLANG_VERSION of versions.env")
    parser.add_argument("--expect-aiter", help="AITER_ROCM_VERSION of versions.env")
    args = parser.parse_args(argv)
    found = report()
    if args.json:
        print(json.dumps(found, sort_keys=True))
    else:
        for key, value in found.items():
            print(f"[base] {key}: {value if value is not None else 'not found'}")
    wrong = problems(found, args.expect_sglang, args.expect_aiter)
    checking = args.expect_sglang is not None or args.expect_aiter is not None
    for line in wrong:
        print(f"[base] {'error' if checking else 'warning'}: {line}", file=sys.stderr)
    return 1 if wrong and checking else 0


if __name__ == "__main__":
    sys.exit(main())
