# The two set-up commands of the README: `make demo` and `make test`. Both build the
# virtual environment themselves from constraints.txt (exact pins, no lock files).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1

PACKAGES := -e . -e adapters/polars-delta -e adapters/local -e adapters/spark-delta \
	-e adapters/aws -e entrypoints/cli -e entrypoints/glue -e entrypoints/stepfunctions \
	-e entrypoints/lambdas
MANIFESTS := constraints.txt pyproject.toml $(wildcard adapters/*/pyproject.toml entrypoints/*/pyproject.toml)
SRC := src adapters/polars-delta/src adapters/local/src adapters/spark-delta/src \
	adapters/aws/src entrypoints/cli/src entrypoints/glue/src entrypoints/stepfunctions/src \
	entrypoints/lambdas/src

# Delta Lake jars for local Spark sessions, fetched by Maven (its repository cached in
# build/m2) and given to Spark as local files: no network when a session starts.
JARS_DIR := $(CURDIR)/build/spark-jars
JARS_POM := adapters/spark-delta/jars/pom.xml
JARS_STAMP := $(JARS_DIR)/.fetched
export LAKEHOUSE_SPARK_JARS := $(JARS_DIR)

# The Amazon States Language validator the state-machine tests run (npm, into build/node;
# no lock file is written, the version is pinned here).
ASL_VALIDATOR_VERSION := 4.0.0
ASL_VALIDATOR := $(CURDIR)/build/node/node_modules/.bin/asl-validator
export LAKEHOUSE_ASL_VALIDATOR := $(ASL_VALIDATOR)
PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint format typecheck bench clean

$(STAMP): $(MANIFESTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(PACKAGES) -e '.[dev]'
	touch $(STAMP)

$(JARS_STAMP): $(JARS_POM)
	mvn --batch-mode --quiet -f $(JARS_POM) -Dmaven.repo.local=$(CURDIR)/build/m2 \
		-Djars.dir=$(JARS_DIR) dependency:copy-dependencies
	touch $(JARS_STAMP)

$(ASL_VALIDATOR):
	npm install --silent --prefix $(CURDIR)/build/node --no-save --no-package-lock \
		--no-audit --no-fund asl-validator@$(ASL_VALIDATOR_VERSION)

install: $(STAMP) $(JARS_STAMP) $(ASL_VALIDATOR)

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
