# Two commands do everything on a fresh machine with Python 3.11:
#   make up     installs what it needs, then starts the product with demo data
#   make test   installs what it needs, then runs the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install up test lint schemas bench bench-quick clean

# the bench extra too: the suite runs the benchmark's quick mode once (no timings asserted)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

up: install
	@$(BIN)/dealreg up --demo

# pytest's exit 5 (no tests collected) counts as a failure.
test: install
	@$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$rc

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

schemas: install
	$(BIN)/dealreg schemas

bench: install
	$(BIN)/python -m bench.run

bench-quick: install
	$(BIN)/python -m bench.run --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
