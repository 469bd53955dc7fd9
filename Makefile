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
	-e entrypoints/lambdas -e adapters/delta-log -e tools/datagen -e adapters/trino
MANIFESTS := constraints.txt pyproject.toml $(wildcard adapters/*/pyproject.toml \
	entrypoints/*/pyproject.toml tools/*/pyproject.toml)
SRC := src adapters/polars-delta/src adapters/local/src adapters/spark-delta/src \
	adapters/aws/src entrypoints/cli/src entrypoints/glue/src entrypoints/stepfunctions/src \
	entrypoints/lambdas/src adapters/delta-log/src tools/datagen/src adapters/trino/src

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

# actionlint, the GitHub Actions workflow linter the tests run, built with `go install`.
# Go's module cache, build cache, settings and telemetry all stay in build/go; the module
# cache is made writable (-modcacherw) so that `make clean` can delete it.
ACTIONLINT_VERSION := 1.7.12
GO_DIR := $(CURDIR)/build/go
ACTIONLINT := $(GO_DIR)/bin/actionlint
export LAKEHOUSE_ACTIONLINT := $(ACTIONLINT)

# MiniStack, the AWS emulator whose CloudFormation also creates the Glue, Athena and other
# resources moto skips (tests/aws/test_stack_on_ministack.py). It pins its own botocore, so it
# gets its own virtual environment in build/ministack, from its own pins: PIP_CONSTRAINT is
# emptied for that install so that constraints.txt does not apply.
MINISTACK_VENV := $(CURDIR)/build/ministack
MINISTACK := $(MINISTACK_VENV)/bin/ministack
export LAKEHOUSE_MINISTACK := $(MINISTACK)

# Headless Chromium, in which the tests open the page of `lakehouse report` (Debian's package,
# installed with apt-get when make runs as root; otherwise one line says how to get it).
CHROMIUM ?= /usr/bin/chromium
export LAKEHOUSE_CHROMIUM := $(CHROMIUM)

# Trino, the engine of Athena engine v3, for the trino-marked tests (a Delta Lake catalog on
# moto's Glue and S3): Maven fetches the server (its version is the pom's) and tar unpacks it
# into build/trino (Maven's own unpack would leave the tarball's hard-linked jars empty).
# It runs on Java 24+: tests/trino/find-java finds one (or LAKEHOUSE_TRINO_JAVA names it) and
# says in one line what is missing otherwise; install checks it every time, not behind a stamp.
TRINO_POM := tests/trino/pom.xml
TRINO_VERSION := $(shell sed -n 's:.*<trino.version>\(.*\)</trino.version>.*:\1:p' $(TRINO_POM))
TRINO_STAMP := $(CURDIR)/build/trino/.fetched-$(TRINO_VERSION)
export LAKEHOUSE_TRINO_HOME := $(CURDIR)/build/trino/trino-server-$(TRINO_VERSION)

PYTEST_ARGS ?=

.PHONY: install install-parts demo test test-fast lint format typecheck bench bench-compare \
	package infra-definition clean trino-java

# The packages' build backend is installed once, into the venv, instead of into a fresh
# build environment per package (99 s -> 76 s for the whole install, warm pip cache).
# wheel too: pyspark comes as a source distribution, which setuptools builds with wheel's
# bdist_wheel (with an empty pip cache, nothing else provides it). uv, pinned like the rest,
# installs the packages: ~42 s where pip took 80 s, the same versions (constraints.txt). It
# compiles their bytecode as pip does: where PYTHONDONTWRITEBYTECODE is set, nothing else
# would, and every `lakehouse` process would compile its imports again.
$(STAMP): $(MANIFESTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv hatchling editables wheel
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python \
		--constraint constraints.txt --no-build-isolation $(PACKAGES) -e '.[dev]'
	touch $(STAMP)

$(JARS_STAMP): $(JARS_POM)
	mvn --batch-mode --quiet -f $(JARS_POM) -Dmaven.repo.local=$(CURDIR)/build/m2 \
		-Djars.dir=$(JARS_DIR) dependency:copy-dependencies
	touch $(JARS_STAMP)

# After the Delta jars: two Maven processes must not write one local repository at once.
$(TRINO_STAMP): $(TRINO_POM) | $(JARS_STAMP)
	mvn --batch-mode --quiet -f $(TRINO_POM) -Dmaven.repo.local=$(CURDIR)/build/m2 \
		-Dtrino.dir=$(CURDIR)/build/trino dependency:copy
	rm -rf $(LAKEHOUSE_TRINO_HOME)
	tar -xzf $(LAKEHOUSE_TRINO_HOME).tar.gz -C $(CURDIR)/build/trino
	rm $(LAKEHOUSE_TRINO_HOME).tar.gz
	touch $(TRINO_STAMP)

trino-java:
	@tests/trino/find-java >/dev/null

$(ASL_VALIDATOR):
	npm install --silent --prefix $(CURDIR)/build/node --no-save --no-package-lock \
		--no-audit --no-fund asl-validator@$(ASL_VALIDATOR_VERSION)

$(ACTIONLINT):
	GOPATH=$(GO_DIR) GOMODCACHE=$(GO_DIR)/pkg/mod GOCACHE=$(GO_DIR)/cache \
		GOBIN=$(GO_DIR)/bin GOFLAGS=-modcacherw GOTOOLCHAIN=local \
		XDG_CONFIG_HOME=$(GO_DIR)/config \
		go install github.com/rhysd/actionlint/cmd/actionlint@v$(ACTIONLINT_VERSION)

$(MINISTACK): constraints-ministack.txt
	$(PYTHON) -m venv $(MINISTACK_VENV)
	PIP_CONSTRAINT= $(MINISTACK_VENV)/bin/python -m pip install --quiet \
		-c constraints-ministack.txt ministack
	touch $@

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "chromium is missing: install Debian's chromium package (apt-get install chromium) as root for the browser tests"; \
	fi

# The parts are independent downloads and builds: a sub-make runs them side by side (the
# whole install on a fresh clone: ~2 min one after another), each one's output kept together.
INSTALL_PARTS := $(STAMP) $(JARS_STAMP) $(TRINO_STAMP) trino-java $(ASL_VALIDATOR) $(ACTIONLINT) \
	$(MINISTACK) $(CHROMIUM)
install:
	@$(MAKE) --no-print-directory --jobs=4 --output-sync=target install-parts

install-parts: $(INSTALL_PARTS)
	@:

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
	$(BIN)/mypy $(SRC) scripts/package.py scripts/render_settings.py infra/deploy.py \
		infra/render_definition.py

# Every test on every core (each worker that meets a Spark test starts one session and keeps
# it for the rest). pyproject's default is the fast tier. The slowest tests are listed at the
# end, so a CI log tells where the suite's time goes. The linters run side by side first
# (ruff and import-linter ~9 s, mypy ~13 s).
test: install
	@$(MAKE) --no-print-directory --jobs=2 --output-sync=target --old-file=install lint typecheck
	$(BIN)/pytest -m "" -n auto --durations=30 $(PYTEST_ARGS)

# The fast offline tier: what a plain `pytest` runs.
test-fast: install
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/run_pipeline.py

# The product against the plain scripts a user would write instead, side by side, and the
# chart of it (time and memory per step): `make bench-compare BENCH_SCALE=0.1`.
BENCH_SCALE ?= 0.01
bench-compare: install
	mkdir -p build/bench
	$(BIN)/python benchmarks/compare.py --scale $(BENCH_SCALE) --engines polars,spark --verify \
		--out build/bench/compare-$(BENCH_SCALE).json
	$(BIN)/python benchmarks/chart.py build/bench/compare-$(BENCH_SCALE).json \
		--out build/bench/compare-$(BENCH_SCALE).png

# The deployable artefacts in dist/ (wheels, the Glue script, the Lambda zips, manifest.json;
# docs/packaging.md). Needs only the virtual environment, not the jars or the linters.
package: $(STAMP)
	$(BIN)/python scripts/package.py --out dist

# Rewrite the generated blocks of infra/template.yaml (state machine, crawler targets)
# (tests/infra fails while the two differ).
infra-definition: $(STAMP)
	$(BIN)/python infra/render_definition.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
