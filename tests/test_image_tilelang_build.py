"""The TileLang build step of the image, run on the CPU with the pinned build tools.

docker/install_tilelang.sh builds TileLang with `pip install --no-build-isolation --no-deps .`
(docker/tilelang_build.sh: tilelang_pip_build) under the CMAKE_ARGS of tilelang_cmake_args.
TileLang's pyproject asks scikit-build-core for a cp38 stable-ABI wheel, so unless CMAKE_ARGS
empties SKBUILD_SABI_VERSION its Cython wrapper is compiled against the limited API, which the
pinned Cython 0.29 cannot target. tests/image_fixtures/tilelang_wrapper is a stand-in with the
same packaging and wrapper build (TileLang's source is not reachable offline); these tests run
the script's own functions on it with the versions.env pins of Cython, CMake, Ninja and
scikit-build-core, and import the built module.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_image_helpers import ROOT, lock

BUILD_LIB = ROOT / "docker" / "tilelang_build.sh"
PROBE = ROOT / "tests" / "image_fixtures" / "tilelang_wrapper"
VENV_BIN = Path(sys.executable).parent
# dist name -> versions.env key: the build tools the image pins.
TOOLS = {
    "cython": "TILELANG_BUILD_CYTHON_VERSION",
    "cmake": "TILELANG_BUILD_CMAKE_VERSION",
    "ninja": "TILELANG_BUILD_NINJA_VERSION",
    "scikit-build-core": "TILELANG_BUILD_SCIKIT_BUILD_CORE_VERSION",
}


@pytest.fixture(scope="module")
def pinned_tools() -> None:
    pins = lock()
    for dist, key in TOOLS.items():
        try:
            found = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found = None
        if found != pins[key]:
            message = (
                f"{dist} {found or 'missing'} in {sys.prefix}, versions.env {key}={pins[key]}: "
                "run scripts/setup_env.sh cpu"
            )
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("no C++ compiler")


def bash(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", **env)
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; source {BUILD_LIB}; {script}"],
        capture_output=True,
        text=True,
        env=full_env,
        check=False,
    )


def build(tmp_path: Path, cmake_args: str) -> subprocess.CompletedProcess[str]:
    """The image's build step (tilelang_pip_build) on a copy of the stand-in project, installed
    into tmp_path/site (PIP_TARGET) rather than into the test environment."""
    src = tmp_path / "src"
    shutil.copytree(PROBE, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    return bash(
        f'tilelang_pip_build "{sys.executable}" "{src}"',
        CMAKE_ARGS=cmake_args,
        PIP_TARGET=str(tmp_path / "site"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INDEX="1",
    )


def image_cmake_args() -> str:
    proc = bash("tilelang_cmake_args /opt/rocm /opt/rocm/llvm/bin/llvm-config gfx942")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_install_script_uses_the_tested_functions():
    text = (ROOT / "docker" / "install_tilelang.sh").read_text()
    assert 'source "$(dirname "${BASH_SOURCE[0]}")/tilelang_build.sh"' in text
    assert 'CMAKE_ARGS="$(tilelang_cmake_args ' in text
    assert 'tilelang_pip_build "$PYTHON" "$SRC"' in text
    assert "pip install --no-cache-dir --no-build-isolation" not in text  # only the library's


def test_image_build_step_compiles_the_wrapper(pinned_tools: None, tmp_path: Path):
    proc = build(tmp_path, image_cmake_args())
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import wrapper_probe as w; k = w.KernelWrapperProbe([1, 2], [], lambda *a: a); "
            "print(k.forward([3, 4], 7))",
        ],
        env=dict(os.environ, PYTHONPATH=str(tmp_path / "site")),
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "(3, 5, 7)"


def test_without_the_override_the_wrapper_does_not_compile(pinned_tools: None, tmp_path: Path):
    """The stand-in reproduces the image's failure: the limited API and Cython 0.29 do not mix.
    (Without this, the test above could pass for a reason that has nothing to do with the fix.)"""
    args = image_cmake_args().replace("-DSKBUILD_SABI_VERSION=", "")
    proc = build(tmp_path, args)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "error:" in out and "wrapper_probe.cpp" in out


def test_cmake_args_empty_the_stable_abi_version():
    args = image_cmake_args().split()
    assert "-DSKBUILD_SABI_VERSION=" in args
    assert "-DUSE_ROCM=ON" in args and "-DCMAKE_HIP_ARCHITECTURES=gfx942" in args


@pytest.mark.parametrize("layout", ["llvm/bin", "lib/llvm/bin"])
def test_llvm_config_is_found_in_either_rocm_layout(tmp_path: Path, layout: str):
    tool = tmp_path / "rocm" / layout / "llvm-config"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\necho 19.0.0git\n")
    tool.chmod(0o755)
    proc = bash(f'tilelang_find_llvm_config "{tmp_path / "rocm"}"')
    assert proc.returncode == 0 and proc.stdout.strip() == str(tool)


def test_missing_llvm_config_names_the_places(tmp_path: Path):
    proc = bash(f'tilelang_find_llvm_config "{tmp_path}"')
    assert proc.returncode != 0
    assert f"{tmp_path}/llvm/bin" in proc.stderr and f"{tmp_path}/lib/llvm/bin" in proc.stderr
