# Two commands for a fresh machine: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
DATA   ?= data
SELLERS ?= 2000
WEEKS  ?= 52
SEED   ?= 7

.PHONY: demo test bench install install-dev clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

install: $(UV)
	$(UV) pip install --quiet --python $(BIN)/python -e .

install-dev: $(UV)
	$(UV) pip install --quiet --python $(BIN)/python -e '.[dev]'

## demo: set up .venv, simulate a marketplace on the embedded defaults, check it, summarise it
demo: install
	$(BIN)/seller-risk simulate --sellers $(SELLERS) --weeks $(WEEKS) --seed $(SEED) --out $(DATA)/events
	$(BIN)/seller-risk validate --events $(DATA)/events

## test: install the dev extras and run the whole test suite
test: install-dev
	$(BIN)/python -m pytest

## bench: performance benchmarks (prints a table; not part of the tests)
bench: install-dev
	$(BIN)/python benchmarks/simulate.py

clean:
	rm -rf $(DATA) .pytest_cache
