# mk/env.mk: the Python environments, built by scripts/setup_env.sh from versions.env.
#   .venv      CPU tests: torch (CPU), triton, tilelang, pytest, ruff, linters
#   .venv-hip  tilelang with HIP source generation on CPU (lowering tests for gfx942/gfx950)
# Both are idempotent: a stamp keyed by versions.env and the script skips a finished venv.

VENV ?= .venv
VENV_HIP ?= .venv-hip
VENV_PY := $(VENV)/bin/python
VENV_HIP_PY := $(VENV_HIP)/bin/python
export VENV VENV_HIP

.PHONY: env env-hip

env: ## Create/update .venv (CPU tests) from the pins of versions.env
	@scripts/setup_env.sh cpu

env-hip: ## Create/update .venv-hip (tilelang HIP codegen on CPU) from versions.env
	@scripts/setup_env.sh hip
