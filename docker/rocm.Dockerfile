# Deployment image: the pinned sglang + this project's patch series (FP8 KV cache and FP8 TileLang
# sparse-MLA decode for DeepSeek-V3.2 NSA) for AMD gfx942 (MI300X/MI325X) and gfx950 (MI350X/MI355X).
#
# Build it with `make image [GPU_ARCH=gfx950]`; `make image-print` shows the exact command. The
# build context is the staged directory that make prepares (build/image/context): `python/` of
# the tree that `make apply` produced, plus this folder's helper scripts. Every version below is a
# build arg whose value comes from versions.env; this file holds no pin of its own.

# Official sglang ROCm image of the pinned release for GPU_ARCH, by tag and digest.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}

# Layer order follows how often each input changes. Docker invalidates every RUN after an ARG
# whose value changed, so only the TileLang inputs are declared before the TileLang layer; the
# sglang/aiter versions and the queue hash come after it: a patch edit rebuilds the last layers
# only (tests/test_image_layers.py checks this order).
ARG GPU_ARCH
ARG TILELANG_GIT_URL
ARG TILELANG_ROCM_COMMIT
ARG TVM_FFI_GIT_URL
ARG TVM_FFI_ROCM_COMMIT
ARG TILELANG_BUILD_CYTHON_VERSION
ARG TILELANG_BUILD_CMAKE_VERSION
ARG TILELANG_BUILD_NINJA_VERSION
ARG TILELANG_BUILD_SCIKIT_BUILD_CORE_VERSION
ARG TILELANG_BUILD_SETUPTOOLS_VERSION
ARG Z3_SOLVER_VERSION

# The base image runs as root, which ROCm device access in the container relies on.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# What the base really carries (python, sglang, aiter, torch/HIP, ROCm, llvm-config), printed
# at the top of the build log; `make image` compares it with versions.env before building.
COPY docker/base_report.py /opt/sglang-nsa-fp8/base_report.py
RUN python3 /opt/sglang-nsa-fp8/base_report.py

# TileLang: the slow layer (tens of minutes), independent of the patch queue.
COPY docker/install_tilelang.sh docker/tilelang_build.sh /opt/sglang-nsa-fp8/
RUN /opt/sglang-nsa-fp8/install_tilelang.sh

# Everything below changes with the queue or the sglang pin.
ARG SGLANG_VERSION
ARG AITER_ROCM_VERSION
ARG TOMLI_VERSION
ARG QUEUE_HASH
# Re-declared for the labels (an ARG before FROM is not visible after it); BASE_DIGEST is the
# digest `make image` pulled, pinned or resolved from the tag at build time.
ARG BASE_IMAGE
ARG BASE_DIGEST

# The gates read TOML; the image's Python 3.10 has no tomllib.
RUN python3 -m pip install --no-cache-dir --no-deps "tomli==${TOMLI_VERSION}"

COPY docker/install_sglang.sh docker/smoke.py /opt/sglang-nsa-fp8/
COPY python /opt/sglang-nsa-fp8/src/python
RUN /opt/sglang-nsa-fp8/install_sglang.sh /opt/sglang-nsa-fp8/src/python

# Smoke step: fails the build unless tilelang and sglang import, TileLang is versions.env's commit,
# sglang is versions.env's version, the patched FP8 symbols exist, aiter is the base's pinned one and
# torch is still the base's ROCm build. A step of its own, so its log is easy to find.
# hadolint ignore=DL3059
RUN python3 /opt/sglang-nsa-fp8/smoke.py \
        --sglang-version "${SGLANG_VERSION}" \
        --tilelang-commit "${TILELANG_ROCM_COMMIT}" \
        --tilelang-src /opt/tilelang \
        --aiter-version "${AITER_ROCM_VERSION}" \
        --require-rocm-torch

# Runtime defaults for DeepSeek-V3.2 on ROCm (DESIGN §12.2); each can be overridden with `-e`.
# aiter on HIP: MoE, fused RMSNorm+FP8 quant and FP8 GEMMs; on gfx950 also the fused rope+KV-store
# path that writes the FP8 cache (patch 6). sglang leaves it off unless set.
ENV SGLANG_USE_AITER=1
# Load safetensors straight to the GPU: the ~690 GB FP8 checkpoint loads much faster (upstream
# AMD recipes set it too).
ENV SAFETENSORS_FAST_GPU=1
# The NSA indexer hands slot ids straight to the decode kernel (the path the FP8 kernel is tested
# on); 0 would fall back to transform_index with its hard-coded topk of 2048.
ENV SGLANG_NSA_FUSE_TOPK=1
# TileLang's JIT cache on a mountable path: `-v tilelang-cache:/var/cache/tilelang` keeps the
# compiled decode kernels across containers and avoids a compile storm at CUDA-graph capture.
ENV TILELANG_CACHE_DIR=/var/cache/tilelang
# Any JIT-built torch extension targets only this image's arch (the base lists both).
ENV PYTORCH_ROCM_ARCH=${GPU_ARCH}

LABEL org.opencontainers.image.title="sglang-nsa-fp8" \
      org.opencontainers.image.description="sglang with FP8 KV cache + FP8 TileLang sparse-MLA decode (DeepSeek-V3.2 NSA) for ROCm" \
      org.opencontainers.image.version="${SGLANG_VERSION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      org.opencontainers.image.base.digest="${BASE_DIGEST}" \
      sglang-nsa-fp8.gpu-arch="${GPU_ARCH}" \
      sglang-nsa-fp8.queue-hash="${QUEUE_HASH}" \
      sglang-nsa-fp8.tilelang-commit="${TILELANG_ROCM_COMMIT}"

WORKDIR /sgl-workspace
