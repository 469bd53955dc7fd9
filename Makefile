# The two set-up commands of the README: `make demo` and `make test`. Both build the
# virtual environment themselves from constraints.txt (exact pins, no lock files).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1

PACKAGES := -e . -e adapters/polars-delta -e adapters/local -e entrypoints/cli
MANIFESTS := constraints.txt pyproject.toml $(wildcard adapters/*/pyproject.toml entrypoints/*/pyproject.toml)
SRC := src adapters/polars-delta/src adapters/local/src entrypoints/cli/src
PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint format typecheck bench clean

$(STAMP): $(MANIFESTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(PACKAGES) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# A fresh demo lake every time (the demo refuses to reuse a non-empty directory).
demo: install
	rm -rf build/demo
	$(BIN)/lakehouse demo --workdir build/demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy $(SRC)

test: lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -m "not spark and not aws" $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/run_pipeline.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
