# imdb-rnn-pipeline: every command a user needs. `make` (or `make help`) lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ARGS ?=
PREFECT := $(VENV)/bin/prefect
PREFECT_HOST ?= 127.0.0.1
PREFECT_PORT ?= 4200
POOL := imdb-process
DEPLOYMENT := imdb-rnn-pipeline/weekly-retraining
RESCORING := imdb-batch-scoring/rescore-on-promotion
# RUN, STORAGE, INPUT, OUTPUT, SOURCE and TEXT reach the commands below as environment variables
# ("$$RUN"), never pasted into the shell line: a quote, `;` or `$(...)` in a path stays part of the
# path. ARGS is shell words on purpose (several options, quoted as on a command line).
# Where the deployments' reviews live, set once at `make deploy`: the retraining's data.source and the
# watcher's prefix. auto is IMDB, with nothing to watch.
export SOURCE ?= auto

# Prefect's settings for a local run, as tasks/runtime/environment.py defines them (why each is set is
# said there), for Prefect's own commands below (server, worker, deploy), which never run that code.
# tests/unit/test_environment.py fails when these lines and that module differ.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_FLOWS_HEARTBEAT_FREQUENCY ?= 30
# TensorFlow's C++ start-up chatter is not progress; warnings and errors still show.
export TF_CPP_MIN_LOG_LEVEL ?= 2

## help: list the targets (the default)
.PHONY: help
help:
	@awk -F': ' '/^## / {sub(/^## /, ""); printf "  make %-10s %s\n", $$1, substr($$0, length($$1) + 3)}' $(MAKEFILE_LIST)

# requirements.lock pins every package of pyproject.toml's `dev` group (pipeline + test + lint + docs) to one
# version with its hashes, all installed from wheels. uv compiles it as one universal file (a package whose
# newest release dropped Python 3.11 gets one line per Python version), but tensorflow-cpu has wheels for
# Linux x86_64 and Windows only: every pin has a Linux x86_64 wheel for Python 3.11, 3.12 and 3.13, and
# installs and runs on Python 3.11 (CI's python3). Other platforms are untested.
LOCK := requirements.lock
# The folders that `make lint` and `make format` cover, the missing ones left out: ruff formats and
# lints the code, the tests and the docs' hook; mypy types the code and the hook (the tests are
# checked by running them). `ruff format --diff` shows what the formatter would change.
LINT_PATHS := $(wildcard flows tasks tools infra docs tests)
TYPED_PATHS := $(wildcard flows tasks tools infra docs)

$(INSTALLED): $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet --require-hashes --no-deps --only-binary :all: -r $(LOCK)
	$(PY) -m pip check
	$(PY) -m tasks.runtime.server_homes
	$(PY) -m tasks.data.compiled
	touch $@

## install: create .venv, install the locked dependencies, migrate a Prefect database for the runs' servers to copy and compile the data stages' loops (done by the other targets when needed)
.PHONY: install
install: $(INSTALLED)

## run: run the whole pipeline on its defaults; options via ARGS="--max-epochs 5" (ARGS="--help" lists them)
.PHONY: run
run: $(INSTALLED)
	$(PY) -m flows.imdb_pipeline $(ARGS)

# Test files spread over this many processes: most end-to-end tests wait on servers, subprocesses
# and Prefect's heartbeat window rather than compute, so two overlap well on two cores.
TEST_WORKERS ?= 2

## test: run the whole test suite, its files spread over TEST_WORKERS=2 processes (extra pytest options via ARGS)
.PHONY: test
test: $(INSTALLED)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(ARGS)

## lock: recompile requirements.lock from pyproject.toml's ranges, newest versions (then run make install)
.PHONY: lock
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet --group lock
	$(VENV)/bin/uv pip compile --quiet --group pyproject.toml:dev --universal --python-version 3.11 \
		--generate-hashes --upgrade --custom-compile-command "make lock" --output-file $(LOCK) $(ARGS)

## lint: check formatting (ruff format) and lint rules (ruff check) in flows/ tasks/ tools/ infra/ docs/ tests/, types (mypy) in all but tests/
.PHONY: lint
lint: $(INSTALLED)
	@status=0; \
	echo "ruff format --check"; $(VENV)/bin/ruff format --check --output-format concise $(LINT_PATHS) || status=1; \
	echo "ruff check"; $(VENV)/bin/ruff check $(LINT_PATHS) || status=1; \
	echo "mypy"; $(VENV)/bin/mypy $(TYPED_PATHS) || status=1; \
	exit $$status

## format: rewrite those folders with ruff's safe fixes and its formatter (then make lint shows what is left)
.PHONY: format
format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix --exit-zero $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

# Material for MkDocs prints a notice about its own end of life on every build: news about the theme,
# not about this site.
docs docs-serve: export NO_MKDOCS_2_WARNING ?= 1

## docs: build the documentation site into site/ (mkdocs --strict: a broken link or any warning fails it)
.PHONY: docs
docs: $(INSTALLED)
	$(VENV)/bin/mkdocs build --strict

## docs-serve: serve the documentation site on http://127.0.0.1:8000, rebuilt as you edit
.PHONY: docs-serve
docs-serve: $(INSTALLED)
	$(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

## test-fast: run the unit tests only, tests/unit/ (the quick ones: no flow run, server or fresh process; ARGS as for test)
.PHONY: test-fast
test-fast: $(INSTALLED)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal tests/unit $(ARGS)

## bench: the seed's training vs ours, batch scoring's reviews/s, then the whole make run (first, cached) vs commit ea0866f; appends benchmarks/history.jsonl (ARGS="--section run"; "--section scale" alone: data stages and one epoch at 100k, 1M, 3M generated reviews; "--section tokenize" alone)
.PHONY: bench
bench: $(INSTALLED)
	$(PY) -m tools.bench $(ARGS)

## verify: check a published run against its manifest: make verify RUN=outputs/runs/<run_id> (or s3://...)
.PHONY: verify
verify: $(INSTALLED)
	@test -n "$$RUN" || { echo "usage: make verify RUN=<run folder or URI>" >&2; exit 2; }
	$(PY) -m tools.verify "$$RUN" $(ARGS)

## reproduce: run again on exactly what a published run used (its config; its own reviews' files, sha256-checked): make reproduce RUN=outputs/runs/<run_id>
.PHONY: reproduce
reproduce: $(INSTALLED)
	@test -n "$$RUN" || { echo "usage: make reproduce RUN=<run folder or URI>" >&2; exit 2; }
	$(PY) -m tools.reproduce "$$RUN" $(ARGS)

## seeds: train every variant and recipe preset on 20 seeds with the guard and write MODEL_QUALITY.md (long: one training per variant, preset and seed)
.PHONY: seeds
seeds: $(INSTALLED)
	$(PY) -m tools.seeds $(ARGS)

## runs: mark command-line runs killed outright Crashed in their Prefect records, then list and check every run under a storage root: make runs STORAGE=outputs (or s3://...); ARGS="--clean --older-than 2h" lists leftovers, --yes removes them
.PHONY: runs
runs: $(INSTALLED)
	$(PY) -m tasks.runtime.crashed_runs
	$(PY) -m tools.verify --all "$${STORAGE:-outputs}" $(ARGS)

## predict: score reviews with the champion, one JSON line each: make predict TEXT="A wonderful film" (STORAGE=, ARGS="--file f.txt", "--run <uri> --variant <name>")
.PHONY: predict
predict: $(INSTALLED)
	@test -n "$$TEXT$(ARGS)" || { echo 'usage: make predict TEXT="<review>" [STORAGE=<root>] [ARGS="--file <path>"]' >&2; exit 2; }
	$(PY) -m tools.predict $(if $(TEXT),--text "$$TEXT") --storage "$${STORAGE:-outputs}" $(ARGS)

## score: batch-score a CSV, Parquet or JSONL of reviews with the champion: make score INPUT=reviews.csv [OUTPUT=<root>] [STORAGE=<root>] (ARGS="--text-column body --id-column id")
.PHONY: score
score: $(INSTALLED)
	@test -n "$$INPUT" || { echo "usage: make score INPUT=<path or URI> [OUTPUT=<root>] [STORAGE=<root>]" >&2; exit 2; }
	$(PY) -m flows.batch_scoring --input "$$INPUT" --storage "$${STORAGE:-outputs}" $(if $(OUTPUT),--output "$$OUTPUT") $(ARGS)

## watch: look once at a prefix of your own reviews for snapshots no published run trained on, and announce them: make watch SOURCE=<prefix> [STORAGE=<root>]
.PHONY: watch
watch: $(INSTALLED)
	$(PY) -m flows.data_watch --source "$$SOURCE" --storage "$${STORAGE:-outputs}" $(ARGS)

## snapshots: write the next dated snapshot of the offline corpus's IMDB rows under a prefix: make snapshots ARGS="--into <prefix> --count 5"
.PHONY: snapshots
snapshots: $(INSTALLED)
	$(PY) -m tools.snapshots $(ARGS)

## champion: show the champion and its history: make champion [STORAGE=<root>] (ARGS="--pin" or "--unpin": runs never/again replace it)
.PHONY: champion
champion: $(INSTALLED)
	$(PY) -m tools.champion --storage "$${STORAGE:-outputs}" $(ARGS)

## rollback: restore the previous champion, or a named one (RUN=<run id>), after verifying its run
.PHONY: rollback
rollback: $(INSTALLED)
	$(PY) -m tools.champion --storage "$${STORAGE:-outputs}" --rollback $(if $(RUN),"$$RUN") $(ARGS)

## s3: start a local S3 server (SeaweedFS) on 127.0.0.1:8333 and print how to use it; Ctrl+C stops it
.PHONY: s3
s3: $(INSTALLED)
	$(PY) -m infra.local_s3

## dask: start a local Dask scheduler (127.0.0.1:8786) and one single-threaded worker per core, print the address; Ctrl+C stops them (ARGS="--workers 2")
.PHONY: dask
dask: $(INSTALLED)
	$(PY) -m infra.local_dask $(ARGS)

# The UI asks /ui-settings where its API is; Prefect answers from PREFECT_UI_API_URL, which
# `--port` does not change (it would still send the browser to port 4200).
server: export PREFECT_UI_API_URL ?= http://$(PREFECT_HOST):$(PREFECT_PORT)/api

## server: start a local Prefect server with its UI on http://127.0.0.1:4200 (PREFECT_PORT=4300 moves it; SQLite in .prefect/)
.PHONY: server
server: $(INSTALLED)
	$(PREFECT) server start --host $(PREFECT_HOST) --port $(PREFECT_PORT)

# The targets below talk to that server unless PREFECT_API_URL points elsewhere.
deploy worker retrain rescore: export PREFECT_API_URL ?= http://$(PREFECT_HOST):$(PREFECT_PORT)/api

## deploy: create the process work pool if missing and apply infra/prefect.yaml (retraining weekly and on new data, re-scoring on promotion, watching SOURCE=<prefix> every 15 minutes)
.PHONY: deploy
deploy: $(INSTALLED)
	$(PREFECT) work-pool inspect $(POOL) >/dev/null 2>&1 || $(PREFECT) work-pool create $(POOL) --type process
	IMDB_PIPELINE_ROOT=$(CURDIR) IMDB_PIPELINE_SOURCE="$$SOURCE" $(PREFECT) --no-prompt deploy --all --prefect-file infra/prefect.yaml
	$(PY) -m tasks.runtime.heartbeats

## worker: start a worker that runs the pool's flow runs from this checkout
.PHONY: worker
worker: $(INSTALLED)
	$(PREFECT) worker start --pool $(POOL) $(ARGS)

## retrain: trigger the retraining deployment now and follow the run until it ends
.PHONY: retrain
retrain: $(INSTALLED)
	$(PREFECT) deployment run '$(DEPLOYMENT)' --watch $(ARGS)

## rescore: trigger the re-scoring deployment now (it also runs on every promotion) and follow the run
.PHONY: rescore
rescore: $(INSTALLED)
	$(PREFECT) deployment run '$(RESCORING)' --watch $(ARGS)

## clean: remove the virtual environment, caches, Prefect state, local outputs and the built docs site
.PHONY: clean
clean:
	rm -rf $(VENV) .prefect .cache .work outputs .pytest_cache .mypy_cache .ruff_cache .s3data .dask site
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
