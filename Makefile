# imdb-rnn-pipeline: every command a user needs. `make` (or `make help`) lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ARGS ?=

# Prefect state stays inside the project; a cold ephemeral server needs more than the default 20 s here.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
# TensorFlow's C++ start-up chatter is not progress; warnings and errors still show.
export TF_CPP_MIN_LOG_LEVEL ?= 2

## help: list the targets (the default)
.PHONY: help
help:
	@awk -F': ' '/^## / {sub(/^## /, ""); printf "  make %-9s %s\n", $$1, substr($$0, length($$1) + 3)}' $(MAKEFILE_LIST)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet --group test
	touch $@

## install: create .venv and install the dependencies (done by run and test when needed)
.PHONY: install
install: $(INSTALLED)

## run: run the whole pipeline on its defaults; options via ARGS="--max-epochs 5" (ARGS="--help" lists them)
.PHONY: run
run: $(INSTALLED)
	$(PY) -m flows.imdb_pipeline $(ARGS)

## test: run the whole test suite (extra pytest options via ARGS)
.PHONY: test
test: $(INSTALLED)
	$(PY) -m pytest $(ARGS)

## clean: remove the virtual environment, caches, Prefect state and local outputs
.PHONY: clean
clean:
	rm -rf $(VENV) .prefect .cache .work outputs .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
