VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint install bench bench-smoke clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/statsd-bridge $(ARGS)

test: $(STAMP)
	$(PY) -m ruff check bridge tests
	$(PY) -m pytest -q -n 4 $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check bridge tests
	$(PY) -m ruff format --check bridge tests

STATSD_JS := bench/.statsd/node_modules/statsd/stats.js

# The original StatsD daemon, for the side-by-side numbers; without node/npm the bridge runs alone.
$(STATSD_JS):
	mkdir -p bench/.statsd
	-npm install --prefix bench/.statsd --no-save --no-package-lock --no-audit --no-fund statsd@0.9.0 >/dev/null 2>&1

bench: $(STAMP) $(STATSD_JS)
	$(PY) bench/run.py $(BENCH_ARGS)

bench-smoke: $(STAMP) $(STATSD_JS)
	$(PY) bench/run.py --smoke

clean:
	rm -rf $(VENV) build *.egg-info
