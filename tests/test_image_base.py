"""The image's assumptions about its base, checked offline against fake site-packages:
docker/base_report.py (what `make image` compares with versions.env before building) and
docker/install_sglang.sh (the overlay of the patched tree onto the base's sglang)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.test_image_helpers import ROOT, lock

BASE_REPORT = ROOT / "docker" / "base_report.py"
INSTALL_SGLANG = ROOT / "docker" / "install_sglang.sh"
PINS = lock()


def dist(site: Path, name: str, version: str, files: list[str] | None = None) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if files is not None:
        (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))


def fake_base(tmp: Path, *, sglang: str, aiter: str, hip: str | None, llvm: bool) -> Path:
    site = tmp / "site"
    (site / "sglang").mkdir(parents=True)
    (site / "sglang" / "__init__.py").write_text(f"__version__ = {sglang!r}\n")
    dist(site, "sglang", sglang)
    dist(site, "amd-aiter", aiter)
    (site / "torch").mkdir()
    (site / "torch" / "version.py").write_text(f"__version__ = '2.9.0'\nhip = {hip!r}\n")
    dist(site, "torch", "2.9.0", ["torch/version.py"])
    rocm = tmp / "rocm"
    (rocm / ".info").mkdir(parents=True)
    (rocm / ".info" / "version").write_text("7.0.0-38\n")
    if llvm:
        tool = rocm / "lib" / "llvm" / "bin" / "llvm-config"
        tool.parent.mkdir(parents=True)
        tool.write_text("#!/bin/sh\necho 20.0.0git\n")
        tool.chmod(0o755)
    return site


def report(tmp: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(site), ROCM_PATH=str(tmp / "rocm"))
    return subprocess.run(
        [sys.executable, "-s", str(BASE_REPORT), "--json", *args],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_base_report_reads_the_base_and_passes_the_right_one(tmp_path: Path):
    site = fake_base(tmp_path, sglang=PINS["SGLANG_VERSION"], aiter=PINS["AITER_ROCM_VERSION"],
                     hip="7.0.51831", llvm=True)  # fmt: skip
    proc = report(tmp_path, site, "--expect-sglang", PINS["SGLANG_VERSION"],
                  "--expect-aiter", PINS["AITER_ROCM_VERSION"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["sglang"] == PINS["SGLANG_VERSION"] and found["torch_hip"] == "7.0.51831"
    assert found["rocm"] == "7.0.0-38"
    assert found["llvm_config"].endswith("lib/llvm/bin/llvm-config")
    assert found["llvm_version"] == "20.0.0git"


def test_base_report_names_each_mismatch(tmp_path: Path):
    site = fake_base(tmp_path, sglang="0.5.8", aiter="0.0.1", hip=None, llvm=False)
    proc = report(tmp_path, site, "--expect-sglang", PINS["SGLANG_VERSION"],
                  "--expect-aiter", PINS["AITER_ROCM_VERSION"])  # fmt: skip
    assert proc.returncode == 1
    for part in ("sglang 0.5.8", "SGLANG_VERSION=", "amd-aiter 0.0.1", "AITER_ROCM_VERSION=",
                 "not a ROCm (HIP) build", "no ROCm llvm-config"):  # fmt: skip
        assert part in proc.stderr
    # Without expectations (the Dockerfile's first RUN) it only reports.
    assert report(tmp_path, site).returncode == 0


def overlay(tmp: Path, base_version: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    site = tmp / "site"
    pkg = site / "sglang"
    (pkg / "srt").mkdir(parents=True)
    (pkg / "__init__.py").write_text("BASE = True\n")
    (pkg / "srt" / "removed_by_patch.py").write_text("x = 1\n")
    (pkg / "srt" / "tuning.json").write_text("{}\n")  # a base-only data file: must stay
    dist(site, "sglang", base_version)
    tree = tmp / "tree" / "python"
    (tree / "sglang" / "srt").mkdir(parents=True)
    (tree / "sglang" / "__init__.py").write_text("PATCHED = True\n")
    (tree / "sglang" / "srt" / "fp8_new.py").write_text("y = 2\n")
    env = dict(os.environ, PYTHONPATH=str(site), SGLANG_VERSION=PINS["SGLANG_VERSION"],
               PYTHON=sys.executable)  # fmt: skip
    proc = subprocess.run(["bash", str(INSTALL_SGLANG), str(tree)], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    return proc, pkg


def test_overlay_replaces_the_base_package(tmp_path: Path):
    proc, pkg = overlay(tmp_path, PINS["SGLANG_VERSION"] + "+rocm700")
    assert proc.returncode == 0, proc.stderr
    assert (pkg / "__init__.py").read_text() == "PATCHED = True\n"
    assert (pkg / "srt" / "fp8_new.py").is_file()
    assert not (pkg / "srt" / "removed_by_patch.py").exists()
    assert (pkg / "srt" / "tuning.json").is_file()


def test_overlay_refuses_a_base_of_another_release(tmp_path: Path):
    proc, pkg = overlay(tmp_path, "0.5.8")
    assert proc.returncode != 0
    assert "base image carries sglang 0.5.8" in proc.stderr
    assert (pkg / "__init__.py").read_text() == "BASE = True\n"  # untouched
