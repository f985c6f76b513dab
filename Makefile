# Two commands set everything up on a fresh machine (Python 3.11 on the PATH as python3.11 or python3):
#   make demo   creates .venv with the runtime pins (requirements.txt), reprograms the speech AM for Coffee
#   make test   adds the dev extras (requirements-dev.txt: aeon, Ray, pytest), runs the test suite (what CI runs)
# Two stamp files: `make test` after `make demo` installs only what the tests add.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
# Where this workplace keeps the original AM weights and the UCR copy; empty on a user's machine.
SHARED := $(wildcard ../shared)
export V2S_AM_DIR ?= $(if $(SHARED),$(abspath ../shared/am),)
PYTEST_ARGS ?=

.PHONY: demo test test-all env dev-env clean

$(RUNTIME): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(DEV): $(RUNTIME) requirements-dev.txt requirements-extras.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

env: $(RUNTIME)

dev-env: $(DEV)

demo: env
	mkdir -p Datasets
	$(PY) v2s_main.py --dataset Coffee --eps 20 --seg 3 --data-dir Datasets

test: dev-env
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-all: dev-env
	$(PY) -m pytest -q -m "" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
