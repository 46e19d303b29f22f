# The two commands a newcomer needs: `make demo` and `make test` (see README).
# `make setup` is idempotent: a venv with the project, then the test binaries
# (built once from pinned Go modules into ~/.cache/flotilla, outside the clone).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup testbin browser test lint unit e2e demo bench crds chart-files clean

setup: $(VENV)/.installed testbin

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

testbin: $(VENV)/.installed
	$(BIN)/flotilla testbin path

lint: $(VENV)/.installed
	$(BIN)/ruff check engine tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Every test: lint, types and layering, then unit and end-to-end tests on a real local fleet.
# pytest exits 5 when it collects nothing, which fails this target too. Two pytest workers,
# each with its own fleet (most end-to-end time is waiting on controllers, not CPU); a test
# file stays on one worker. PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= 2
test: setup browser lint
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile tests

# Debian's Chromium for the dashboard's browser test (tests/e2e/test_dashboard.py), installed
# with apt when missing and we may; without it that test fails, saying what to install.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	  >/dev/null; } || echo "chromium not installed: the dashboard's browser test will fail"

unit: $(VENV)/.installed
	$(BIN)/pytest tests/unit -q

e2e: setup
	$(BIN)/pytest tests/e2e

# The real upstream charts next to the clone (../shared/charts), when there, replace the stand-ins.
DEMO_CHARTS := $(if $(wildcard ../shared/charts/index.yaml),--charts ../shared/charts)

demo: setup
	$(BIN)/flotilla demo $(DEMO_CHARTS)

bench: setup
	$(BIN)/python bench/run.py

crds: $(VENV)/.installed
	$(BIN)/python -m engine.model.schema crds/
	$(MAKE) chart-files

# The controller's chart carries copies of crds/ and catalog/ (Helm reads only files
# inside a chart); tests/unit/test_chart_files.py fails when a copy differs.
CHART := deploy/chart/flotilla
chart-files:
	rm -f $(CHART)/crds/*.yaml $(CHART)/files/catalog/*.yaml
	cp crds/*.yaml $(CHART)/crds/
	cp catalog/*.yaml $(CHART)/files/catalog/

clean:
	rm -rf $(VENV) .fleet-demo
