#!/usr/bin/env bash
# Build and install TileLang from source for ROCm at versions.env's commit (TILELANG_ROCM_COMMIT),
# replacing the TileLang the base image ships. Run inside the image by docker/rocm.Dockerfile;
# every version comes in through the environment (the Dockerfile's ARGs, from versions.env).
set -euo pipefail
# shellcheck source=docker/tilelang_build.sh
source "$(dirname "${BASH_SOURCE[0]}")/tilelang_build.sh"

die() { echo "install_tilelang: $*" >&2; exit 1; }

for var in GPU_ARCH TILELANG_GIT_URL TILELANG_ROCM_COMMIT TVM_FFI_GIT_URL TVM_FFI_ROCM_COMMIT \
    TILELANG_BUILD_CYTHON_VERSION TILELANG_BUILD_CMAKE_VERSION TILELANG_BUILD_NINJA_VERSION \
    TILELANG_BUILD_SCIKIT_BUILD_CORE_VERSION TILELANG_BUILD_SETUPTOOLS_VERSION Z3_SOLVER_VERSION; do
    [[ -n "${!var:-}" ]] || die "build arg $var is empty: build with 'make image' (it passes versions.env)"
done
case "$GPU_ARCH" in
    gfx942|gfx950) ;;
    *) die "GPU_ARCH=$GPU_ARCH is not supported: use gfx942 (MI300X/MI325X) or gfx950 (MI350X/MI355X)" ;;
esac

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import torch; assert torch.version.hip' \
    || die "$PYTHON has no ROCm torch: the base image is not an sglang ROCm image"

ROCM_PATH="${ROCM_PATH:-/opt/rocm}"
LLVM_CONFIG="$(tilelang_find_llvm_config "$ROCM_PATH")" || die "ROCm's llvm-config not found (above)"
echo "[tilelang] llvm-config: $LLVM_CONFIG ($("$LLVM_CONFIG" --version))"

SRC=/opt/tilelang
echo "[tilelang] commit $TILELANG_ROCM_COMMIT for $GPU_ARCH (ROCm at $ROCM_PATH)"
"$PYTHON" -m pip uninstall -y tilelang || true
rm -rf "$SRC"
git init -q "$SRC"
git -C "$SRC" remote add origin "$TILELANG_GIT_URL"
# Fetch exactly the pinned commit; submodules (TVM, composable_kernel, cutlass) follow its gitlinks.
git -C "$SRC" fetch -q --depth 1 origin "$TILELANG_ROCM_COMMIT"
git -C "$SRC" checkout -q --detach FETCH_HEAD
git -C "$SRC" submodule update -q --init --recursive
[[ "$(git -C "$SRC" rev-parse HEAD)" == "$TILELANG_ROCM_COMMIT" ]] || die "checkout is not $TILELANG_ROCM_COMMIT"

# Build dependencies, all pinned; --no-deps so nothing re-resolves the base's ROCm torch.
"$PYTHON" -m pip install --no-cache-dir --no-deps \
    "cython==$TILELANG_BUILD_CYTHON_VERSION" \
    "cmake==$TILELANG_BUILD_CMAKE_VERSION" \
    "ninja==$TILELANG_BUILD_NINJA_VERSION" \
    "scikit-build-core==$TILELANG_BUILD_SCIKIT_BUILD_CORE_VERSION" \
    "setuptools==$TILELANG_BUILD_SETUPTOOLS_VERSION" \
    "z3-solver==$Z3_SOLVER_VERSION" \
    "apache-tvm-ffi @ git+$TVM_FFI_GIT_URL@$TVM_FFI_ROCM_COMMIT"

# The build tools must import before the long build starts: with --no-deps, scikit-build-core's
# own dependencies (packaging, pathspec; tomli and exceptiongroup on Python < 3.11) come from
# the base image.
"$PYTHON" -c 'import Cython, cmake, ninja, scikit_build_core.build' \
    || die "the pinned build tools do not import with $PYTHON (above): the base image lacks a dependency of scikit-build-core; install it in this script, pinned"

# USE_ROCM in the environment makes TileLang's version provider label the build
# "+rocm.git<commit[:8]>", which the smoke step checks against versions.env.
export USE_ROCM=ON
CMAKE_ARGS="$(tilelang_cmake_args "$ROCM_PATH" "$LLVM_CONFIG" "$GPU_ARCH")"
export CMAKE_ARGS
echo "[tilelang] CMAKE_ARGS=$CMAKE_ARGS"
export PYTORCH_ROCM_ARCH="$GPU_ARCH"
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)"
export CMAKE_BUILD_PARALLEL_LEVEL
tilelang_pip_build "$PYTHON" "$SRC"
"$PYTHON" -c 'import tilelang; print("[tilelang] installed", tilelang.__version__)'
# The regular install copied what TileLang needs at run time into site-packages; the CMake tree
# (TVM's objects, gigabytes) is dead weight in the layer. The checkout stays for the smoke
# step's commit check.
rm -rf "$SRC/build"
