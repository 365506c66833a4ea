# Two commands for a fresh machine: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
DATA   ?= data
SELLERS ?= 2000
WEEKS  ?= 104
SEED   ?= 7
TRIALS ?= 12
SERVE  ?= 1
HOST   ?= 127.0.0.1
PORT   ?= 3000
# the tests run on two workers, each taking whole units (tests/conftest.py `work_unit`), and train with one
# thread each: two LightGBM trainings of two threads each on two cores spin against each other
PYTEST_WORKERS ?= -n 2 --dist loadgroup --no-loadscope-reorder
PYTEST_ENV ?= SELLER_RISK_TRAIN_THREADS=1

.PHONY: demo serve test test-fast lint bench bench-robustness bench-tools install install-dev java postgres chromium clean notebooks

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

install: $(UV)
	$(UV) pip install --quiet --python $(BIN)/python -e '.[serving]'

install-dev: $(UV) java postgres chromium
	$(UV) pip install --quiet --python $(BIN)/python -e '.[dev]'

# the Spark engine's tests need a Java runtime; install Debian's when the machine has none
java:
	@command -v java >/dev/null 2>&1 || { echo "installing a Java runtime for PySpark"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

# the console's store tests run against a throwaway PostgreSQL cluster too; install Debian's server when missing
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { echo "installing PostgreSQL for the console's store tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# the console's browser test drives Debian's Chromium with Playwright (never `playwright install`); install it when missing
chromium:
	@command -v chromium >/dev/null 2>&1 || { echo "installing Chromium for the console's browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

## demo: set up .venv, simulate two years of a marketplace on the embedded defaults (a year before the
## backtest, so the holiday peak has been seen once), check it, build its features, train a model (MLflow
## store under models/), promote it to champion when its gate passes, score the latest week, create the
## console's demo reviewer, then serve the API and the console on http://$(HOST):$(PORT) until Ctrl-C
## (SERVE=0: stop before)
demo: install
	$(BIN)/seller-risk simulate --sellers $(SELLERS) --weeks $(WEEKS) --seed $(SEED) --out $(DATA)/events
	$(BIN)/seller-risk validate --events $(DATA)/events
	$(BIN)/seller-risk features --events $(DATA)/events --out $(DATA)/features
	$(BIN)/seller-risk train --features $(DATA)/features --trials $(TRIALS)
	$(BIN)/seller-risk promote
	$(BIN)/seller-risk score --events $(DATA)/events --features $(DATA)/features --out $(DATA)/scores
	@SELLER_RISK_DATA=$(DATA) $(BIN)/seller-risk accounts list 2>/dev/null | grep -qw demo || \
	  printf 'demo-reviewer\n' | SELLER_RISK_DATA=$(DATA) $(BIN)/seller-risk accounts add demo --name "Demo reviewer" --role leader --password-stdin
	@echo "console: http://$(HOST):$(PORT)/console/  (sign in as demo / demo-reviewer)"
	@if [ "$(SERVE)" != "0" ]; then $(MAKE) --no-print-directory serve; fi

## serve: serve the champion with reasons over HTTP (BentoML) and the reviewer console (/console/) until Ctrl-C
serve: install
	SELLER_RISK_DATA=$(DATA) $(BIN)/seller-risk serve --host $(HOST) --port $(PORT) --features $(DATA)/features

## test: install the dev extras, lint (ruff, import contracts) and run the whole test suite (what CI runs)
test: lint
	$(PYTEST_ENV) $(BIN)/python -m pytest $(PYTEST_WORKERS)

## test-fast: lint, then pytest -m "not slow": no server, JVM, notebook kernel, training, 2,000-seller marketplace or MLflow process
test-fast: lint
	$(PYTEST_ENV) $(BIN)/python -m pytest $(PYTEST_WORKERS) -m "not slow"

## lint: ruff (rules in pyproject.toml) and import-linter (features <- models <- training, serving; no cycles)
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

## bench: performance benchmarks (prints a table; not part of the tests)
bench: install-dev bench-tools
	$(BIN)/python benchmarks/bench_simulate.py
	$(BIN)/python benchmarks/bench_features.py
	$(BIN)/python benchmarks/bench_scoring.py
	$(BIN)/python benchmarks/bench_service.py
	$(BIN)/python benchmarks/bench_notebooks.py

## bench-robustness: the model on five simulated marketplaces against issue 23's bounds (about 6 min on an idle 2-core machine)
bench-robustness: install-dev
	$(BIN)/python benchmarks/bench_robustness.py

# the service benchmark's load tool: wrk, from Debian's packages, when the machine has none
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { echo "installing wrk for benchmarks/bench_service.py"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

clean:
	rm -rf $(DATA) .pytest_cache
	find models -mindepth 1 -maxdepth 1 ! -name README.md ! -name '*.py' -exec rm -rf {} + 2>/dev/null || true

## notebooks: open the analyst notebooks (notebooks/) in JupyterLab on the demo's data and champion
## (run `make demo SERVE=0` first)
notebooks: install
	$(UV) pip install --quiet --python $(BIN)/python -e '.[serving,notebooks]'
	SELLER_RISK_DATA=$(abspath $(DATA)) SELLER_RISK_MODELS=$(abspath models) $(BIN)/jupyter lab --ServerApp.root_dir=notebooks
