# The two set-up commands of the README: `make serve` and `make test`.
# Each creates the virtual environment in .venv on first use, from requirements.lock.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# `make test TYPECHECK=0` runs ruff and pytest without mypy.
TYPECHECK ?= 1

.PHONY: serve test contract lint typecheck format install lock sdk

# Every locked distribution (all extras, dev tools included), checked against its hash, then
# The Eye itself without touching them. Rebuilt whenever pyproject.toml or the lock changes.
$(BIN)/.installed: pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "The Eye needs Python >= 3.11 as $(PYTHON) (make PYTHON=python3.11 ...)"; exit 1; }
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || \
	  { echo "$(PYTHON) cannot make virtual environments: install python3-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(BIN)/.installed

serve: $(BIN)/.installed
	$(BIN)/the-eye serve

test: lint
	$(BIN)/pytest

# The OpenAPI document against a live server: schemathesis, every check, a fixed seed, a
# bounded number of examples (tests/contract/run; a few minutes).
contract: $(BIN)/.installed
	BIN=$(BIN) tests/contract/run

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
ifneq ($(TYPECHECK),0)
	$(BIN)/mypy
endif

typecheck: $(BIN)/.installed
	$(BIN)/mypy

format: $(BIN)/.installed
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

# Resolve pyproject.toml's dependencies, every extra included, for the Python and platform of
# the image and CI; versions already in the lock are kept unless LOCK_FLAGS=--upgrade.
lock: $(BIN)/.installed
	$(BIN)/uv pip compile pyproject.toml --quiet --all-extras --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	  --custom-compile-command 'make lock' $(LOCK_FLAGS) -o requirements.lock

# The browser tracker served at /sdk/eye.js and /sdk/eye.mjs, built from sdk/js/src (Node only;
# the output is committed, and a test checks it is current).
sdk:
	node sdk/js/build.mjs src/the_eye/api/static/sdk
