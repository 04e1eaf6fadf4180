# sglang-nsa-fp8: a patch-series fork of sglang. This Makefile is a thin front door over scripts/
# (each runnable alone); `make help` lists every target. Pins come from versions.env only.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

include versions.env
# Every pin is exported: scripts and docker build args read the same values make sees.
export $(shell sed -n 's/^\([A-Z][A-Z0-9_]*\)=.*/\1/p' versions.env)

# Fragments append their lint/check steps here (`CHECK_TARGETS += my-target`).
CHECK_TARGETS :=
# Check steps that need no virtual environment (the others get `env` first, below).
CHECK_NO_ENV := queue-check

include $(sort $(wildcard mk/*.mk))

CHECK_TARGETS += lint

.PHONY: help all check lint test

help: ## List the targets with one line each
	@echo "usage: make <target> [VAR=value]   (README.md explains the workflow)"
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z0-9_.-]+:[^=]*## / {printf "  %-14s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

all: ## The main job: fetch sglang, apply every series, run every check
	$(MAKE) --no-print-directory source SERIES=all
	$(MAKE) --no-print-directory apply SERIES=all
	$(MAKE) --no-print-directory check SERIES=all

# The steps without a venv run first: the queue check answers in seconds on a fresh clone, before
# `env` spends minutes building .venv for the others.
check: $(filter $(CHECK_NO_ENV),$(CHECK_TARGETS)) $(filter-out $(CHECK_NO_ENV),$(CHECK_TARGETS)) ## Every lint/check step (queue lint + replay, ruff, image lint, ...)
	@echo "check: all passed ($(CHECK_TARGETS))"

lint: env ## ruff check + ruff format --check over the project (not build/)
	$(VENV_PY) -m ruff check .
	$(VENV_PY) -m ruff format --check .

# Every series is applied: the tests read each series' tree (build/sglang, build/sglang-<name>).
test: SERIES = all
test: env env-hip apply lint ## The tests: set up .venv + .venv-hip, apply every series, lint, then one pytest session
	$(VENV_PY) -m pytest $(PYTEST_ARGS)

$(filter-out $(CHECK_NO_ENV),$(CHECK_TARGETS)): | env
