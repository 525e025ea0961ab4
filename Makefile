# Two commands set up everything on a fresh machine:
#   make repro   virtual environment, install, `dvc repro` on the embedded default
#   make test    the test suite (no network, no ../shared needed)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
# Never call home from tests or stages; the Hub itself is still used when a param names a Hub id.
export HF_HUB_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1

.PHONY: install repro test test-durations test-fast lint check report remote push pull hub-push bench bench-defaults bench-processes bench-memory bench-calibration bench-class-weights bench-text-tasks bench-int8 predict serve loadtest soak profile-serve clean

# predict and serve read an exported model folder and nothing else.
MODEL ?= models/export
HOST ?= 127.0.0.1
PORT ?= 8000
FORMAT ?= int8

$(VENV)/.installed: requirements.txt requirements-serve.txt requirements-train.txt requirements-assets.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-assets.txt
	$(BIN)/pip install --quiet --no-deps --editable .   # the `hfx` command; the code stays where it is
	touch $@

# Test-only tools (pytest, hypothesis, a test S3 server): `make test` adds them, `make repro` never does.
$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# vega, vega-lite and vega-embed for the offline report (versions pinned in report/package-lock.json).
report/node_modules/.package-lock.json: report/package.json report/package-lock.json
	npm ci --prefix report --no-audit --no-fund --ignore-scripts --silent

install: $(VENV)/.installed

# `dvc repro` leaves each out as its stage wrote it, a copy of what it commits to the cache; relinking
# swaps those copies for links into the cache (cache.type in .dvc/config), so a model takes its space once.
repro: install
	dvc repro
	dvc checkout --relink --quiet

check: install
	python -m stages.check_params

# A worker per core, up to 4 (`make test WORKERS=8` for more), each taking whole modules (--dist loadscope: a
# module's tiny run is built once; the shared ones once for all workers, tests/session_builds.py), longest first
# as tests/module_seconds.json ranks them (tests/conftest.py);
# --durations: the slowest tests, so the suite's time (CI's budget) stays in view.
WORKERS ?= $(shell $(PYTHON) -c 'import os; print(min(os.cpu_count() or 1, 4))')
PYTEST_PARALLEL = python -m pytest -q -n $(WORKERS) --dist loadscope --no-loadscope-reorder --durations=25
test: $(VENV)/.installed-dev report/node_modules/.package-lock.json
	$(PYTEST_PARALLEL) tests

# The whole suite, rewriting tests/module_seconds.json when it passes: run it after adding or growing a module.
test-durations: $(VENV)/.installed-dev report/node_modules/.package-lock.json
	$(PYTEST_PARALLEL) --record-durations tests

# ruff's lint and format check (pyproject.toml); `ruff format .` and `ruff check --fix .` apply them.
lint: $(VENV)/.installed-dev
	ruff check .
	ruff format --check .

# The quick part, for every edit: tests/unit (no `dvc repro`, no server). tests/pipeline runs the real thing.
test-fast: $(VENV)/.installed-dev  # no Node.js: the report's test is a pipeline test
	python -m pytest -q tests/unit

# An HTML page with `dvc plots show` and the metrics table that renders offline.
# `make report REVS="exp-a exp-b"` compares experiments (dvc plots diff).
report: install report/node_modules/.package-lock.json
	python report/build.py build/report $(REVS)

# The project against a plain run_glue.py-style script on SST-2 (../shared/data/sst2 or $$HFX_SST2), plus
# MFU, preprocess, inference and dvc timings: a table and benchmarks/results.json. Not part of `make test`.
bench: install
	python -m benchmarks.bench

# The default params on TREC, rotten_tomatoes and SST-2 samples of 2,000 and 5,000 rows, against the TF-IDF
# baseline: benchmarks/defaults.json. Reads ../shared/data (or $$HFX_SHARED_DATA). About half an hour on 2 cores.
bench-defaults: install
	python -m benchmarks.defaults

# finetune as 1 process x all cores against 1 process per core (DDP, gloo): benchmarks/processes.json.
bench-processes: install
	python -m benchmarks.processes

# Peak memory and rows/s of download + preprocess on generated csv files of 100,000 and 1,000,000 rows:
# benchmarks/memory.json. About 15 minutes and 4 GB of disk under build/memory on 2 cores.
bench-memory: install
	python -m benchmarks.memory

# The temperature's effect on the last run's validation and test ECE, with a bootstrap interval for the test
# change: benchmarks/calibration.json. About a minute, after `dvc repro`.
bench-calibration: install
	python -m benchmarks.calibration

# finetune.class_weights null against balanced on SST-2 splits with 5% positives, beside the TF-IDF baseline:
# benchmarks/class_weights.json. About 15 minutes on 2 cores.
bench-class-weights: install
	python -m benchmarks.class_weights

# Several labels (GoEmotions), pairs (MRPC), regression (STS-B), long texts (IMDb) and questions (SQuAD) from
# ../shared/data (or $$HFX_SHARED_DATA), as docs/tasks.md runs them: benchmarks/text_tasks.json.
# `make bench-text-tasks NAMES=stsb` runs one (10 to 50 minutes on 2 cores; squad about 2 hours).
bench-text-tasks: install
	python -m benchmarks.text_tasks $(NAMES)

# Which int8 to serve: dynamic int8 one row per call, batched (answers depend on the batch) and static int8,
# against fp32, on the last run's test texts: benchmarks/int8.json. A few minutes, after `dvc repro`.
bench-int8: install
	python -m benchmarks.int8

# Label a file (.csv, .tsv, .jsonl, .parquet: TEXT_COLUMN=text) or stdin (INPUT=-): JSONL to stdout, or OUTPUT=.
predict: install
	@test -n "$(INPUT)" || { echo "make predict: INPUT is required: a .csv/.tsv/.jsonl/.parquet file, a folder of images, or - for stdin" >&2; exit 2; }
	python -m hfx.predict "$(INPUT)" --model "$(MODEL)" --format $(FORMAT) --text-column "$(or $(TEXT_COLUMN),text)" \
		--image-column "$(or $(IMAGE_COLUMN),image)" $(if $(OUTPUT),--output "$(OUTPUT)")

# The HTTP service on $(HOST):$(PORT): POST /predict, GET /health /info /metrics /docs.
serve: install
	python -m hfx.serve --model "$(MODEL)" --host $(HOST) --port $(PORT) --format $(FORMAT)

# hfx.serve against FastAPI + transformers.pipeline under wrk, on SST-2 sentences and on sentences mixed with
# IMDb paragraphs (../shared/data): benchmarks/loadtest.json, about 6 minutes. `make soak`: hfx alone at
# concurrency 32 on the mixed workload for 10 minutes, with its resident memory: benchmarks/soak.json.
loadtest: install
	python -m benchmarks.loadtest

soak: install
	python -m benchmarks.loadtest --soak 600

# Where the server's time goes under load (py-spy, a test-only tool): benchmarks/serve_profile.json
profile-serve: $(VENV)/.installed-dev
	python -m benchmarks.serve_profile

# Where `dvc push` / `dvc pull` share data and models: `make remote URL=s3://bucket/hfx`, gs://, azure://,
# or a folder (`URL=/mnt/team/hfx-storage`). ENDPOINT= for S3-compatible servers (MinIO, R2, Ceph).
# The URL goes into .dvc/config (commit it); credentials never do: see README "Sharing".
remote: install
	@test -n "$(URL)" || { echo "make remote: URL is required, e.g. make remote URL=s3://my-bucket/hfx or URL=/mnt/team/hfx-storage" >&2; exit 2; }
	dvc remote add --default --force storage $(URL)
	$(if $(ENDPOINT),dvc remote modify storage endpointurl $(ENDPOINT))

push: install
	dvc push

pull: install
	dvc pull

# The exported folder to a Hugging Face Hub model repository (private; created if missing), token from HF_TOKEN.
hub-push: install
	@test -n "$(REPO)" || { echo "make hub-push: REPO is required, e.g. make hub-push REPO=my-org/sentiment" >&2; exit 2; }
	python -m hfx.push --repo "$(REPO)" --model "$(MODEL)"

clean:
	rm -rf $(VENV) report/node_modules build
