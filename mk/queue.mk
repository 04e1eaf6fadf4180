# mk/queue.mk: the patch queue (scripts/patchqueue, docs/queue.md). Standard library + git only, so
# these targets need no virtual environment (queue-format excepted: it runs black and isort).
#   SERIES=name|all          which series (versions.env QUEUE_SERIES; default: the first, i.e.
#                            patches/ + build/sglang). `all`: every series (source, apply,
#                            queue-check, queue-format); refresh and export take one series.
#   SGLANG_SOURCE=git        make source: clone the tag instead of using the PyPI wheel
#   SGLANG_WHEEL_FILE=path   make source: use a local copy of the pinned wheel (sha256-checked)
#   FORCE=1                  make apply: stash a dirty tree / back up a differing branch first
#   ALLOW_DROP=1             make refresh: let it delete patch files the branch lacks, or overwrite
#                            hand edits of patch files (it refuses otherwise, naming the files)

QUEUE_PY ?= python3
comma := ,
QUEUE_SERIES_LIST := $(subst $(comma), ,$(QUEUE_SERIES))
SERIES ?= $(firstword $(QUEUE_SERIES_LIST))
_QUEUE_ARGS = -m scripts.patchqueue $(if $(SERIES),--series $(SERIES))
QUEUE = $(QUEUE_PY) $(_QUEUE_ARGS)
SGLANG_SOURCE ?= wheel

.PHONY: source apply queue-check queue-format refresh export

source: ## Fetch pinned sglang as one base commit into the series' tree (build/sglang[-SERIES])
	$(QUEUE) source --route $(SGLANG_SOURCE) $(if $(SGLANG_WHEEL_FILE),--wheel-file '$(SGLANG_WHEEL_FILE)')

apply: source ## git am the series onto branch nsa-fp8 at the base (SERIES=, FORCE=1 to replace work)
	$(QUEUE) apply $(if $(filter 1,$(FORCE)),--force)

queue-check: source ## Lint the series and replay it patch by patch (seconds; report in build/reports)
	$(QUEUE) check
CHECK_TARGETS += queue-check

# The only queue step that needs the venv: black/isort as pinned in versions.env.
queue-format: source ## black + isort as sglang runs them, on the Python files the series touches
	$(VENV_PY) $(_QUEUE_ARGS) format
CHECK_TARGETS += queue-format

refresh: ## Write the commits of nsa-fp8 back into the series' patch dir (ALLOW_DROP=1: see docs)
	$(QUEUE) refresh $(if $(filter 1,$(ALLOW_DROP)),--allow-drop)

export: source ## Per-topic PR branches + mboxes with cover letters, in build/export/<series>/
	$(QUEUE) export
