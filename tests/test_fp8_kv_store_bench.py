"""The store benchmark (scripts.kerneltools.bench_kv_store) is importable and says clearly when
there is no GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOOL = ["-m", "scripts.kerneltools.bench_kv_store"]


@pytest.mark.skipif(
    os.environ.get("CUDA_VISIBLE_DEVICES") is None and Path("/dev/nvidia0").exists(),
    reason="a GPU is visible; the benchmark itself is run by hand",
)
def test_bench_without_gpu_fails_with_a_clear_message(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HIP_VISIBLE_DEVICES": ""}
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, *TOOL, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 2, proc.stderr
    assert "error: no GPU visible" in proc.stderr and "CUDA/ROCm build of torch" in proc.stderr
    assert not out.exists()


def test_bench_help_lists_its_options():
    proc = subprocess.run(
        [sys.executable, *TOOL, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    for option in ("--tree", "--format", "--tokens", "--sweep", "--out"):
        assert option in proc.stdout
