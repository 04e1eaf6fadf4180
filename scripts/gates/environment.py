"""What a report must say about where it ran: image tag and digest, the versions of sglang,
TileLang (and its commit), aiter, torch and ROCm in the server's interpreter, the GPU model and
the driver. Best effort: what cannot be read is recorded as null, never guessed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

# Run with the server's interpreter: distribution versions and torch's HIP/CUDA build, read from
# metadata and torch/version.py (no import of torch, so no GPU is touched).
_PROBE = r"""
import importlib.metadata as m, json, pathlib
def v(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return None
out = {k: v(k) for k in ("sglang", "tilelang", "amd-aiter", "torch", "triton", "sgl-kernel")}
try:
    files = [f for f in (m.files("torch") or []) if str(f) == "torch/version.py"]
    text = pathlib.Path(str(files[0].locate())).read_text() if files else ""
except m.PackageNotFoundError:
    text = ""
for key in ("hip", "cuda"):
    for line in text.splitlines():
        if line.startswith(key + " ") or line.startswith(key + ":") or line.startswith(key + "="):
            value = line.split("=", 1)[1].strip().strip("'\"")
            out["torch_" + key] = None if value in ("None", "") else value
print(json.dumps(out))
"""


def _run(argv: list[str], timeout: float = 30.0) -> str | None:
    if shutil.which(argv[0]) is None and not os.path.isabs(argv[0]):
        return None
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def python_versions(python: str) -> dict[str, Any]:
    out = _run([python, "-c", _PROBE], timeout=120)
    try:
        found: dict[str, Any] = json.loads(out) if out else {}
    except ValueError:
        found = {}
    tilelang = found.get("tilelang") or ""
    commit = re.search(r"git([0-9a-f]{7,40})", tilelang)
    found["tilelang_commit"] = commit.group(1) if commit else None
    return found


def rocm_version() -> str | None:
    info = Path(os.environ.get("ROCM_PATH", "/opt/rocm")) / ".info" / "version"
    return info.read_text().strip() if info.is_file() else None


def gpus() -> dict[str, Any]:
    """GPU model(s) and driver from rocm-smi (ROCm) or nvidia-smi (NVIDIA)."""
    out = _run(["rocm-smi", "--showproductname", "--showdriverversion", "--json"])
    if out:
        try:
            data = json.loads(out)
        except ValueError:
            data = {}
        models = sorted(
            {
                str(
                    card.get("Card Series")
                    or card.get("Card series")
                    or card.get("Card Model")
                    or card.get("Card model")
                )
                for name, card in data.items()
                if name.startswith("card") and isinstance(card, dict)
            }
        )
        driver = data.get("system", {}).get("Driver version") if isinstance(data, dict) else None
        count = sum(1 for name in data if name.startswith("card"))
        return {"gpu_models": models, "gpu_count": count, "driver": driver, "source": "rocm-smi"}
    out = _run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
    if out:
        rows = [line.split(", ") for line in out.strip().splitlines() if line.strip()]
        return {
            "gpu_models": sorted({r[0] for r in rows}),
            "gpu_count": len(rows),
            "driver": rows[0][1] if rows and len(rows[0]) > 1 else None,
            "source": "nvidia-smi",
        }
    return {"gpu_models": [], "gpu_count": None, "driver": None, "source": None}


def image() -> dict[str, Any]:
    """Set by ci/gates.sh: GATES_IMAGE (tag) and GATES_IMAGE_RECORD (make image's JSON)."""
    record: dict[str, Any] = {}
    path = os.environ.get("GATES_IMAGE_RECORD")
    if path and Path(path).is_file():
        try:
            record = json.loads(Path(path).read_text())
        except ValueError:
            record = {}
    return {
        "tag": os.environ.get("GATES_IMAGE") or record.get("image"),
        "image_id": record.get("image_id"),
        "base_image": record.get("base_image"),
        "base_digest": record.get("base_digest"),
        "queue_hash": record.get("queue_hash"),
    }


def collect(python: str) -> dict[str, Any]:
    return {
        "image": image(),
        "versions": {**python_versions(python), "rocm": rocm_version()},
        **gpus(),
    }


def markdown(env: dict[str, Any]) -> str:
    v, img = env.get("versions", {}), env.get("image", {})

    def f(x: Any) -> str:
        return "?" if x in (None, "", []) else str(x)

    tilelang = f(v.get("tilelang"))
    return (
        f"Image `{f(img.get('tag'))}` (base {f(img.get('base_digest'))}); sglang "
        f"{f(v.get('sglang'))}, TileLang {tilelang} (commit {f(v.get('tilelang_commit'))}), "
        f"aiter {f(v.get('amd-aiter'))}, torch {f(v.get('torch'))} (HIP {f(v.get('torch_hip'))}, "
        f"CUDA {f(v.get('torch_cuda'))}), ROCm {f(v.get('rocm'))}; GPU "
        f"{f(', '.join(env.get('gpu_models') or []))} x{f(env.get('gpu_count'))}, driver "
        f"{f(env.get('driver'))}."
    )
