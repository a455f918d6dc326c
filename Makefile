# Two commands: `make run` (set up + serve the demo site) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= development.ini

.PHONY: run test lint format bench clean

# The venv is reinstalled only when setup.py changes. One install covers every
# target (the app with its dev and testing extras), so `make run` then
# `make test` installs once. setup.py pins setuptools.
INSTALLED := $(VENV)/.installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel

$(INSTALLED): setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,testing]'
	touch $@

run: $(INSTALLED)
	$(BIN)/myapp-initdb $(CONFIG) --demo
	$(BIN)/pserve $(CONFIG)

# Security lint first (no medium or high findings), then the types, then every
# test, on every core (PYTEST_WORKERS=0 runs them in this one process).
PYTEST_WORKERS ?= auto
test: $(INSTALLED)
	$(BIN)/bandit --quiet --recursive myapp --severity-level medium
	$(BIN)/mypy
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check myapp tests bench setup.py
	$(BIN)/ruff format --check myapp tests bench setup.py

format: $(INSTALLED)
	$(BIN)/ruff format myapp tests bench setup.py
	$(BIN)/ruff check --fix myapp tests bench setup.py

bench: $(INSTALLED)
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache var myapp.sqlite*
