# Two commands set everything up on a fresh machine (Python 3.11 on the PATH as python3.11 or python3):
#   make demo   creates .venv, installs the pinned stack, reprograms the speech AM for Coffee (offline)
#   make test   creates .venv if missing, runs the test suite (what CI runs)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# Where this workplace keeps the original AM weights and the UCR copy; empty on a user's machine.
SHARED := $(wildcard ../shared)
export V2S_AM_DIR ?= $(if $(SHARED),$(abspath ../shared/am),)
PYTEST_ARGS ?=

.PHONY: demo test test-all env clean

$(VENV)/.installed: requirements.txt requirements-extras.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

env: $(VENV)/.installed

demo: env
	$(PY) v2s_main.py --dataset Coffee --eps 20 --seg 3 --data-dir Datasets

test: env
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-all: env
	$(PY) -m pytest -q -m "" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
