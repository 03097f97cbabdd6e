# Two commands on a fresh machine: `make run` and `make test`. Each sets up .venv from the lock file.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-lock
HOME_ENV := DAGSTER_HOME=$(CURDIR)/dagster_home

# Debian packages the tests start for real (Chromium for the UI tests, PostgreSQL and Redis for tests/deploy,
# Java 17 for the local Spark of the Spark products);
# `make test` installs them as root.
SYSTEM_PACKAGES := chromium postgresql redis-server openjdk-17-jre-headless

.PHONY: run materialize test bench lock clean system-packages

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements.lock
	@# A .venv made before the distribution was renamed mesh-core still holds the old one: drop it.
	$(BIN)/pip uninstall --quiet --yes mesh 2>/dev/null || true
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
test: $(STAMP) system-packages
	$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian packages for the tests: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "The tests need these Debian packages: $$missing. Install them (sudo apt-get install $$missing); the tests that use them fail until then." >&2; \
	  fi; \
	fi

## Benchmarks: ratios against a baseline measured in the same run, one table (docs/performance.md)
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH)

## Re-pin requirements.lock after changing pyproject.toml
# (the test extra holds mesh-core's deploy, example and spark extras, and uv itself)
lock: $(STAMP)
	$(BIN)/uv --version >/dev/null 2>&1 || $(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra test --extra deploy --python-version 3.11 --generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV) build dist dagster_home/storage dagster_home/data dagster_home/history dagster_home/schedules dagster_home/logs
