# mk/image.mk: the deployment image (docker/rocm.Dockerfile) and the lint of the image and
# pipeline files. Included by the top Makefile after `include versions.env`; every pin below
# comes from there. See docs/image.md.
#
#   make image [GPU_ARCH=gfx950]   build sglang-nsa-fp8:<sglang tag>-q<queue hash>-<arch>
#   make image-print               print the exact docker build command, run nothing
#   make image-push REGISTRY=host/org   tag + push the built image, record the pushed digest
#   make lint-image                hadolint + shellcheck + actionlint (part of `make check`)
#   make lint-py310                vermin: the code that runs in the image works on Python 3.10

GPU_ARCH ?= gfx942
IMAGE_NAME ?= sglang-nsa-fp8
DOCKER ?= docker
IMAGE_PYTHON ?= python3
REGISTRY ?=
# Set to 1 to build from a tree that is not the current queue (the tag then lies about it).
ALLOW_STALE_TREE ?=

IMAGE_TREE := build/sglang
IMAGE_DIR := build/image
IMAGE_CONTEXT := $(IMAGE_DIR)/context
# scripts.image.base writes <this>.env (sourced by the build) and <this>.json (the record).
IMAGE_BASE_OUT = $(IMAGE_DIR)/base-$(GPU_ARCH)

# versions.env keys per arch: ROCM_BASE_TAG_GFX942, ROCM_BASE_DIGEST_GFX950, ...
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
	TILELANG_BUILD_SETUPTOOLS_VERSION Z3_SOLVER_VERSION AITER_ROCM_VERSION TOMLI_VERSION

# The base as configured (image-print); `make image` builds from the digest it pulled instead,
# read from $(IMAGE_BASE_OUT).env (pinned, or resolved from the tag once).
_IMAGE_PINNED_DIGEST = $(if $(findstring @,$(BASE_IMAGE)),$(lastword $(subst @, ,$(BASE_IMAGE))))
_BUILD_BASE_IMAGE = $(BASE_IMAGE)
_BUILD_BASE_DIGEST = $(or $(_IMAGE_PINNED_DIGEST),resolved-at-build)
image: _BUILD_BASE_IMAGE = "$$(sed -n 's/^BASE_IMAGE_RESOLVED=//p' $(IMAGE_BASE_OUT).env)"
image: _BUILD_BASE_DIGEST = "$$(sed -n 's/^BASE_DIGEST=//p' $(IMAGE_BASE_OUT).env)"

IMAGE_BUILD_CMD = $(strip $(DOCKER) build -f docker/rocm.Dockerfile \
	--build-arg BASE_IMAGE=$(_BUILD_BASE_IMAGE) \
	--build-arg BASE_DIGEST=$(_BUILD_BASE_DIGEST) \
	--build-arg GPU_ARCH=$(GPU_ARCH) \
	$(foreach k,$(IMAGE_LOCK_ARGS),--build-arg $(k)=$($(k))) \
	--build-arg QUEUE_HASH=$(QUEUE_HASH) \
	-t $(IMAGE_TAG) $(IMAGE_CONTEXT))

_IMAGE_PREFLIGHT = $(IMAGE_PYTHON) -m scripts.image.preflight --gpu-arch '$(GPU_ARCH)' \
	--base-image '$(BASE_IMAGE)' --tree $(IMAGE_TREE) --patches patches \
	--base-ref 'upstream/$(SGLANG_TAG)' \
	$(if $(filter 1,$(ALLOW_STALE_TREE)),--allow-stale-tree)

# Files of docker/ the build context carries (the Dockerfile COPYs exactly these).
IMAGE_CONTEXT_FILES := docker/base_report.py docker/install_tilelang.sh docker/tilelang_build.sh \
	docker/install_sglang.sh docker/smoke.py

.PHONY: image image-print image-tag image-push lint-image lint-py310

image: ## Build the ROCm deployment image (GPU_ARCH=gfx942|gfx950; needs `make apply` first)
	$(_IMAGE_PREFLIGHT) --docker '$(DOCKER)'
	$(IMAGE_PYTHON) -m scripts.image.base --docker '$(DOCKER)' --base-image '$(BASE_IMAGE)' \
		--gpu-arch $(GPU_ARCH) --sglang-version $(SGLANG_VERSION) \
		--aiter-version $(AITER_ROCM_VERSION) --out $(IMAGE_BASE_OUT)
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)/docker
	cp -a $(IMAGE_TREE)/python $(IMAGE_CONTEXT)/python
	cp $(IMAGE_CONTEXT_FILES) $(IMAGE_CONTEXT)/docker/
	$(IMAGE_BUILD_CMD)
	$(IMAGE_PYTHON) -m scripts.image.record --docker '$(DOCKER)' --image '$(IMAGE_TAG)' \
		--base $(IMAGE_BASE_OUT).json --queue-hash $(QUEUE_HASH) --gpu-arch $(GPU_ARCH) \
		--out $(IMAGE_DIR)/image-$(GPU_ARCH).json

image-print: ## Print the exact docker build command of `make image` without running it
	@$(_IMAGE_PREFLIGHT) --print-only
	@echo '$(IMAGE_BUILD_CMD)'

image-tag: ## Print the tag `make image` gives the image
	@echo '$(IMAGE_TAG)'

image-push: ## Tag and push the built image to REGISTRY=host[:port]/namespace; records the digest
	$(IMAGE_PYTHON) -m scripts.image.push --docker '$(DOCKER)' --image '$(IMAGE_TAG)' \
		--registry '$(REGISTRY)' --out $(IMAGE_DIR)/pushed-$(GPU_ARCH).json

# Linters come from the venv (pins in versions.env); actionlint runs shellcheck on `run:` blocks
# and, run from the repository root without file arguments, lints .github/workflows/ with
# .github/actionlint.yaml, exactly what GitHub will read.
IMAGE_LINT_PATH := $(CURDIR)/.venv/bin:$(PATH)

lint-image: export PATH := $(IMAGE_LINT_PATH)
lint-image: ## Lint docker/rocm.Dockerfile, docker/*.sh, ci/*.sh and .github/workflows/*.yml
	@for t in hadolint shellcheck actionlint; do command -v $$t >/dev/null || { \
		echo "lint-image: $$t not found; install the pins of versions.env (make env)"; exit 1; }; done
	hadolint docker/rocm.Dockerfile
	shellcheck -x docker/*.sh ci/*.sh
	actionlint -pyflakes=

# Everything that runs inside the image or on the runners, checked for Python 3.10 (the ROCm
# base images' Python) by vermin: the gates, the docker/ scripts, the image and CI helpers and
# the queue modules they import.
PY310_PATHS := scripts/__init__.py scripts/gates scripts/image scripts/ci docker \
	scripts/patchqueue/__init__.py scripts/patchqueue/series.py scripts/patchqueue/report.py
VERMIN_ARGS := --target=3.10- --violations --eval-annotations --no-tips --no-make-paths-absolute

lint-py310: ## vermin: the code that runs in the image and on the runners needs only Python 3.10
	@test -x $(VENV)/bin/vermin || { echo "lint-py310: vermin missing; run make env"; exit 1; }
	$(VENV)/bin/vermin $(VERMIN_ARGS) $(PY310_PATHS)

CHECK_TARGETS += lint-image lint-py310
