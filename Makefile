# The two commands: `make run` and `make test` do all set-up on a fresh machine
# (python3, make and apt available, nothing else).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install install-test run test test-fast lint typecheck bench clean

install: $(STAMP)

# Editable install in setuptools' "compat" mode: a plain path in a .pth file. The default mode
# installs an import hook whose own imports cost every Python process of the venv (every
# `mezzo` command, master, agent) ~10 ms of start-up; falls back to it if compat goes away.
EDITABLE := --config-settings editable_mode=compat

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e . $(EDITABLE) || $(BIN)/pip install -q -e .
	touch $(STAMP)

# Test-only dependencies: pytest & co, ZooKeeper (Debian) and pymesos (PyPI).
install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(STAMP) pyproject.toml scripts/install-test-deps.sh
	$(BIN)/pip install -q -e '.[test]' $(EDITABLE) || $(BIN)/pip install -q -e '.[test]'
	bash scripts/install-test-deps.sh $(BIN)
	touch $(VENV)/.installed-test

run: install
	$(BIN)/mezzo demo

test: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy --strict
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: install-test
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

lint: install-test
	$(BIN)/ruff check .

# `mypy --strict` over the modules listed in pyproject.toml ([tool.mypy] files).
typecheck: install-test
	$(BIN)/mypy --strict

bench: install
	$(BIN)/python bench/allocator.py

clean:
	rm -rf $(VENV) build *.egg-info
