# Two commands: `make run` (set up + serve the demo site) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= development.ini

.PHONY: run test lint format bench clean

# The venv is rebuilt only when setup.py changes; one stamp per extra.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel

$(VENV)/.installed-%: setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[$*]'
	touch $@

run: $(VENV)/.installed-dev
	$(BIN)/myapp-initdb $(CONFIG) --demo
	$(BIN)/pserve $(CONFIG)

# Security lint first (no medium or high findings), then every test.
test: $(VENV)/.installed-testing
	$(BIN)/bandit --quiet --recursive myapp --severity-level medium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check myapp tests bench setup.py
	$(BIN)/ruff format --check myapp tests bench setup.py

format: $(VENV)/.installed-dev
	$(BIN)/ruff format myapp tests bench setup.py
	$(BIN)/ruff check --fix myapp tests bench setup.py

bench: $(VENV)/.installed-testing
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache var myapp.sqlite*
