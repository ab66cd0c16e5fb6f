# The two commands: `make run` and `make test` do all set-up on a fresh machine
# (python3, make and apt available, nothing else).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install install-test run test test-fast lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $(STAMP)

# Test-only dependencies: pytest & co, ZooKeeper (Debian) and pymesos (PyPI).
install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(STAMP) pyproject.toml scripts/install-test-deps.sh
	$(BIN)/pip install -q -e '.[test]'
	bash scripts/install-test-deps.sh $(BIN)
	touch $(VENV)/.installed-test

run: install
	$(BIN)/mezzo demo

test: install-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: install-test
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

lint: install-test
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/allocator.py

clean:
	rm -rf $(VENV) build *.egg-info
