# Two commands on a fresh machine: `make run` and `make test`. Each sets up .venv from the lock file.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-lock
HOME_ENV := DAGSTER_HOME=$(CURDIR)/dagster_home

.PHONY: run materialize test bench lock clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $(STAMP)

## Materialize every data product, then start the Dagster UI and daemon on http://127.0.0.1:3000
run: $(STAMP)
	$(HOME_ENV) $(BIN)/mesh dev --host 127.0.0.1 --port $(or $(PORT),3000)

## Materialize every data product headlessly (for scripts and CI)
materialize: $(STAMP)
	$(HOME_ENV) $(BIN)/mesh materialize

## Run the test suite (real Dagster instance, DuckDB, Pandera and GX; two workers)
test: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

## Benchmarks: ratios against a baseline measured in the same run, one table (docs/performance.md)
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH)

## Re-pin requirements.lock after changing pyproject.toml
lock: $(STAMP)
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 --generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV) dagster_home/storage dagster_home/data dagster_home/history dagster_home/schedules dagster_home/logs
