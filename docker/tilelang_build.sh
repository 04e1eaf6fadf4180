# The TileLang build step of docker/install_tilelang.sh, sourced from there and from
# tests/test_image_tilelang_build.py (which runs it on a stand-in project with the pinned Cython,
# CMake, Ninja and scikit-build-core, so the step is proven on a CPU box before any docker build).
# shellcheck shell=bash

# tilelang_find_llvm_config ROCM_PATH: echo ROCm's llvm-config (it knows the AMDGPU target; a
# distro LLVM would silently shadow it), or fail naming every place looked at. ROCm >= 6 keeps
# LLVM in lib/llvm with llvm/ as a link to it; older releases only have llvm/.
tilelang_find_llvm_config() {
    local rocm_path="$1" candidate
    for candidate in "$rocm_path/llvm/bin/llvm-config" "$rocm_path/lib/llvm/bin/llvm-config"; do
        if [[ -x "$candidate" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    echo "no llvm-config under $rocm_path/llvm/bin or $rocm_path/lib/llvm/bin: the base image" \
        "must carry ROCm's LLVM (set ROCM_PATH if ROCm is not at $rocm_path)" >&2
    return 1
}

# tilelang_cmake_args ROCM_PATH LLVM_CONFIG GPU_ARCH: the CMAKE_ARGS of the build.
#
# -DSKBUILD_SABI_VERSION= (empty) is required: TileLang's pyproject asks scikit-build-core for a
# cp38 stable-ABI wheel (wheel.py-api = "cp38"), so its CMakeLists compiles the Cython wrapper
# with Py_LIMITED_API, and Cython < 3.1 (the pinned 0.29) cannot generate limited-API code
# (hundreds of errors: PyLong_SHIFT, digit, _PyLong_*...). Empty = a regular extension for the
# image's own Python, which is all an image needs.
tilelang_cmake_args() {
    local rocm="$1" llvm="$2" arch="$3"
    echo "-DUSE_ROCM=ON -DUSE_CUDA=OFF -DROCM_PATH=$rocm -DLLVM_CONFIG=$llvm" \
        "-DCMAKE_HIP_ARCHITECTURES=$arch -DSKBUILD_SABI_VERSION="
}

# tilelang_pip_build PYTHON SRC: build and install SRC with the build tools already installed
# (no isolation, no dependency resolution: nothing may replace the base image's ROCm torch).
# A regular (not editable) install: the version is fixed at build time, not read from git later.
tilelang_pip_build() {
    local python="$1" src="$2"
    (cd "$src" && "$python" -m pip install --no-cache-dir --no-build-isolation --no-deps .)
}
