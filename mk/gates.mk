# mk/gates.mk: the FP8-vs-BF16 regression gates (docs/gates.md). They need a GPU node with the
# patched sglang importable by GATES_PYTHON (e.g. inside the image); they read config/gates.toml.
#
#   make gates GATES_MODEL=/data/DeepSeek-V3.2              both gates, each server started once
#   make accuracy GATES_DATA=/data/gsm8k/test.jsonl         offline GSM8K
#   make gates GATES_MTP=1                                  with DeepSeek MTP (speculative)
#   make throughput GATES_ARGS="--set throughput.repeats=5"  any config key via --set
#
# Before anything starts, the gates check the GPU, GATES_MODEL, that GATES_PYTHON imports the
# patched sglang, and the GSM8K data; each failure names the variable to set.
# Exit status: 0 pass, 1 a gate failed, 2 config/data/node error, 3 server/bench failure.

GATES_PYTHON ?= python3
GATES_CONFIG ?= config/gates.toml
GATES_MODEL ?=
GATES_TP ?=
GATES_PORT ?=
GATES_MTP ?=
GATES_DATA ?=
GATES_ARGS ?=

_GATES_OPTS = --config $(GATES_CONFIG) \
	$(if $(GATES_MODEL),--set server.model_path='"$(GATES_MODEL)"') \
	$(if $(GATES_TP),--set server.tp=$(GATES_TP)) \
	$(if $(GATES_PORT),--set server.port=$(GATES_PORT)) \
	$(if $(filter 1,$(GATES_MTP)),--set server.mtp=true) \
	$(GATES_ARGS)
_GATES_DATA_OPT = $(if $(GATES_DATA),--data-path $(GATES_DATA))

.PHONY: accuracy throughput gates gates-config

accuracy: ## GSM8K gate: FP8 KV >= 0.93 and >= BF16 - 0.015, invalid <= 1% (GPU node)
	$(GATES_PYTHON) -m scripts.gates accuracy $(_GATES_OPTS) $(_GATES_DATA_OPT)

throughput: ## bench_serving gate: FP8/BF16 throughput, TPOT and KV-capacity ratios (GPU node)
	$(GATES_PYTHON) -m scripts.gates throughput $(_GATES_OPTS)

gates: ## Both gates, BF16 then FP8 server, one model load each; reports/ gets the verdict
	$(GATES_PYTHON) -m scripts.gates all $(_GATES_OPTS) $(_GATES_DATA_OPT)

gates-config: ## Validate config/gates.toml and print the two server commands (no GPU)
	$(VENV_PY) -m scripts.gates print-commands $(_GATES_OPTS)

CHECK_TARGETS += gates-config
