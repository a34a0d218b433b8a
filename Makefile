# recast: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE :=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# --compile-bytecode: yadage's modules warn when first compiled, which the tests
# (warnings as errors) would take for failures.
$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or PYTHON=...)"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip uv
	$(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode -r requirements.lock -e .
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the pinned platform

lock: ## re-resolve requirements.lock from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -q -o requirements.lock

setup: venv ## create the database schema and load the catalogue (embedded defaults)
	$(BIN)/python manage.py migrate --verbosity 0
	$(BIN)/python manage.py catalogue_load

demo: setup ## run the demo analysis' example end to end and print the result
	$(BIN)/recast run demo-stop-1l --example

test: venv ## run the test suite (the services tests need .ci/run or their variables)
	$(BIN)/python -m pytest

lint: venv ## ruff, ruff-format and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy recast

format: venv ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

images: venv ## build the step images on the Docker engine (starts dockerd if needed; skips what is built)
	$(BIN)/python -m recast.engine.images

platform-image: venv ## build the platform's own image (deploy/Dockerfile) as recast/platform
	$(BIN)/python -m recast.engine.images --platform

bench: venv ## run the benchmarks (BENCH=name runs one); figures in var/bench/
	$(BIN)/python -m benchmarks $(BENCH)

clean: ## remove var/ (database, archives, step environments)
	rm -rf var

.PHONY: help venv lock setup demo test lint format images platform-image bench clean
