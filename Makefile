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

.PHONY: install repro test check clean

$(VENV)/.installed: requirements.txt requirements-assets.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-assets.txt
	touch $@

install: $(VENV)/.installed

repro: install
	dvc repro

check: install
	python -m stages.params

test: install
	python -m pytest -q tests

clean:
	rm -rf $(VENV)
