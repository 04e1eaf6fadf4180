# mk/image.mk: the deployment image (docker/rocm.Dockerfile) and the lint of the image and
# pipeline files. Included by the top Makefile after `include versions.env`; every pin below
# comes from there. See docs/image.md.
#
#   make image [GPU_ARCH=gfx950]   build sglang-nsa-fp8:<sglang tag>-q<queue hash>-<arch>
#   make image-print               print the exact docker build command, run nothing
#   make lint-image                hadolint + shellcheck + actionlint (part of `make check`)

GPU_ARCH ?= gfx942
IMAGE_NAME ?= sglang-nsa-fp8
DOCKER ?= docker
IMAGE_PYTHON ?= python3
# Set to 1 to build from a base tag without digest, or from a tree that is not the current queue.
ALLOW_UNPINNED_BASE ?=
ALLOW_STALE_TREE ?=

IMAGE_TREE := build/sglang
IMAGE_CONTEXT := build/image/context

# Lock keys per arch: ROCM_BASE_TAG_GFX942, ROCM_BASE_DIGEST_GFX950, ...
_IMAGE_ARCH_KEY = $(subst gfx,GFX,$(GPU_ARCH))
IMAGE_BASE_TAG = $(ROCM_BASE_TAG_$(_IMAGE_ARCH_KEY))
IMAGE_BASE_DIGEST = $(ROCM_BASE_DIGEST_$(_IMAGE_ARCH_KEY))
BASE_IMAGE ?= $(ROCM_BASE_REPO):$(IMAGE_BASE_TAG)$(if $(IMAGE_BASE_DIGEST),@$(IMAGE_BASE_DIGEST))

# Computed once, on first use (so `make help` and friends do not hash the queue).
ifeq ($(origin QUEUE_HASH),undefined)
QUEUE_HASH = $(eval QUEUE_HASH := $$(or $$(shell $(IMAGE_PYTHON) -m scripts.image.queue_hash patches),\
	$$(error cannot compute the queue hash (message above))))$(QUEUE_HASH)
endif
IMAGE_TAG ?= $(IMAGE_NAME):$(SGLANG_TAG)-q$(QUEUE_HASH)-$(GPU_ARCH)

# versions.env keys passed to the Dockerfile under their own names.
IMAGE_LOCK_ARGS := SGLANG_VERSION TILELANG_GIT_URL TILELANG_ROCM_COMMIT TVM_FFI_GIT_URL \
	TVM_FFI_ROCM_COMMIT TILELANG_BUILD_CYTHON_VERSION TILELANG_BUILD_CMAKE_VERSION \
	TILELANG_BUILD_NINJA_VERSION TILELANG_BUILD_SCIKIT_BUILD_CORE_VERSION \
	TILELANG_BUILD_SETUPTOOLS_VERSION Z3_SOLVER_VERSION AITER_ROCM_VERSION

IMAGE_BUILD_CMD = $(strip $(DOCKER) build -f docker/rocm.Dockerfile \
	--build-arg BASE_IMAGE=$(BASE_IMAGE) \
	--build-arg GPU_ARCH=$(GPU_ARCH) \
	$(foreach k,$(IMAGE_LOCK_ARGS),--build-arg $(k)=$($(k))) \
	--build-arg QUEUE_HASH=$(QUEUE_HASH) \
	-t $(IMAGE_TAG) $(IMAGE_CONTEXT))

_IMAGE_PREFLIGHT = $(IMAGE_PYTHON) -m scripts.image.preflight --gpu-arch '$(GPU_ARCH)' \
	--base-image '$(BASE_IMAGE)' --tree $(IMAGE_TREE) --patches patches \
	--base-ref 'upstream/$(SGLANG_TAG)' \
	$(if $(filter 1,$(ALLOW_UNPINNED_BASE)),--allow-unpinned-base) \
	$(if $(filter 1,$(ALLOW_STALE_TREE)),--allow-stale-tree)

.PHONY: image image-print image-tag lint-image

image: ## Build the ROCm deployment image (GPU_ARCH=gfx942|gfx950; needs `make apply` first)
	$(_IMAGE_PREFLIGHT)
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)/docker
	cp -a $(IMAGE_TREE)/python $(IMAGE_CONTEXT)/python
	cp docker/install_tilelang.sh docker/install_sglang.sh docker/smoke.py $(IMAGE_CONTEXT)/docker/
	$(IMAGE_BUILD_CMD)

image-print: ## Print the exact docker build command of `make image` without running it
	@$(_IMAGE_PREFLIGHT) --print-only
	@echo '$(IMAGE_BUILD_CMD)'

image-tag: ## Print the tag `make image` gives the image
	@echo '$(IMAGE_TAG)'

# Linters come from the venv (pins in versions.env); actionlint runs shellcheck on `run:` blocks.
IMAGE_LINT_PATH := $(CURDIR)/.venv/bin:$(PATH)

lint-image: export PATH := $(IMAGE_LINT_PATH)
lint-image: ## Lint docker/rocm.Dockerfile, docker/*.sh, ci/*.sh and ci/workflows/*.yml
	@for t in hadolint shellcheck actionlint; do command -v $$t >/dev/null || { \
		echo "lint-image: $$t not found; install the pins of versions.env (make env)"; exit 1; }; done
	hadolint docker/rocm.Dockerfile
	shellcheck -x docker/*.sh ci/*.sh
	actionlint -config-file ci/actionlint.yaml -pyflakes= ci/workflows/*.yml

CHECK_TARGETS += lint-image
