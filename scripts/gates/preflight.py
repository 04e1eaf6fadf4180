"""Checks that run before anything is downloaded or started, each failure naming the make
variable that fixes it (mk/gates.mk), all of them reported at once."""

from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path

from scripts.gates.config import GatesConfig
from scripts.gates.errors import ConfigError

# Device nodes of a usable accelerator: ROCm (kfd), NVIDIA.
GPU_NODES = ("/dev/kfd", "/dev/nvidiactl")


class PreflightError(ConfigError):
    """The node cannot run the gates; nothing was started (exit 2)."""


def gpu_problem() -> str | None:
    if any(os.path.exists(node) for node in GPU_NODES) or glob.glob("/dev/nvidia[0-9]*"):
        return None
    return (
        "no GPU is visible (no /dev/kfd or /dev/nvidia*): run on a GPU node; in a container "
        "pass --device=/dev/kfd --device=/dev/dri (ROCm) or --gpus all (NVIDIA)"
    )


def model_problem(cfg: GatesConfig) -> str | None:
    path = Path(cfg.server.model_path)
    if path.is_dir() and (path / "config.json").is_file():
        return None
    what = "does not exist" if not path.exists() else "is not a checkpoint (no config.json)"
    return (
        f"model path {cfg.server.model_path} {what}: set GATES_MODEL=/path/to/DeepSeek-V3.2 "
        "(a local checkpoint; bench_serving also loads its tokenizer from there)"
    )


def module_problem(cfg: GatesConfig, launch: list[str]) -> str | None:
    """The server's interpreter (server.launch[0] after {python}) must import the patched
    sglang; asked in a subprocess so the gates' own process stays light."""
    module = cfg.preflight.require_module
    argv = cfg.expand(launch)
    if not module or not argv or "-m" not in argv:
        return None
    python = argv[0]
    code = f"import importlib.util as u, sys; sys.exit(u.find_spec({module!r}) is None)"
    try:
        proc = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {python} to look for {module} ({exc}): set GATES_PYTHON="
    if proc.returncode == 0:
        return None
    detail = proc.stderr.strip().splitlines()[-1:] or ["not found"]
    return (
        f"{python} cannot import {module} ({detail[0]}): GATES_PYTHON must be an interpreter "
        "with the patched sglang (inside the image: GATES_PYTHON=python3; else `make apply` "
        "and `pip install --no-deps -e build/sglang/python` into it)"
    )


def data_problem(cfg: GatesConfig, data_path: str | None) -> str | None:
    """GSM8K must be local or reachable; an offline node without a copy fails here."""
    path = data_path or cfg.dataset.data_path
    if path:
        p = cfg.resolve_path(path)
        return None if p.is_file() else f"GSM8K file {p} does not exist: fix GATES_DATA="
    if (cfg.resolve_path(cfg.dataset.cache_dir) / "test.jsonl").is_file():
        return None
    import requests  # the gates' only third-party import besides matplotlib

    try:
        requests.head(cfg.dataset.url, timeout=10, allow_redirects=True).raise_for_status()
    except requests.RequestException as exc:
        return (
            f"GSM8K is not cached and {cfg.dataset.url} cannot be reached ({type(exc).__name__}):"
            " on an offline node copy the official test.jsonl there and pass "
            "GATES_DATA=/path/to/test.jsonl (script: --data-path)"
        )
    return None


def check(cfg: GatesConfig, which: tuple[str, ...], data_path: str | None = None) -> None:
    """Raise PreflightError listing every problem; return quietly when the node is ready."""
    p = cfg.preflight
    problems = []
    if p.require_gpu:
        problems.append(gpu_problem())
    if p.require_model_dir:
        problems.append(model_problem(cfg))
    problems.append(module_problem(cfg, cfg.server.launch))
    if "accuracy" in which:
        problems.append(data_problem(cfg, data_path))
    found = [x for x in problems if x]
    if found:
        raise PreflightError(
            "the gates cannot run here (nothing was started):\n"
            + "\n".join(f"  - {x}" for x in found)
        )
