VENV ?= .venv
# the interpreter the venv is made from: `make bench PYTHON=/usr/bin/python3 VENV=.venv-system` measures
# the distribution's optimised build (README, Performance)
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-unit lint install bench bench-smoke clean test-tools proto

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/statsd-bridge $(ARGS)

NODE_CLIENTS := tests/clients/node_modules/.installed

# Node's hot-shots for the client tests, pinned by tests/clients/package-lock.json
$(NODE_CLIENTS): tests/clients/package-lock.json
	-npm ci --prefix tests/clients --no-audit --no-fund --loglevel=error && touch $@

# Programs some tests need beyond the venv: named here, so a missing one is no mystery. Those tests
# skip without them on a workstation and fail in CI (.ci/run installs them and sets CI=true).
test-tools:
	@missing=""; \
	for tool in prometheus:prometheus promtool:prometheus node:nodejs systemd-analyze:systemd chromium:chromium w3m:w3m curl:curl openssl:openssl; do \
		command -v $${tool%%:*} >/dev/null 2>&1 || missing="$$missing $${tool%%:*} (apt-get install $${tool##*:})"; \
	done; \
	test -d tests/clients/node_modules/hot-shots || missing="$$missing hot-shots (npm ci --prefix tests/clients)"; \
	if [ -n "$$missing" ]; then echo "make test: missing, so their tests will skip:$$missing"; fi

test: $(STAMP) $(NODE_CLIENTS) test-tools
	$(PY) -m ruff check bridge tests
	$(VENV)/bin/lint-imports
	$(PY) -m mypy
	$(PY) -m pytest -q -n 4 $(PYTEST_ARGS)

# the unit tests alone (tests/unit: no process, no socket), in seconds
test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check bridge tests
	$(PY) -m ruff format --check bridge tests
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

STATSD_JS := bench/.statsd/node_modules/statsd/stats.js

# The original StatsD daemon, for the side-by-side numbers; without node/npm the bridge runs alone.
$(STATSD_JS):
	mkdir -p bench/.statsd
	-npm install --prefix bench/.statsd --no-save --no-package-lock --no-audit --no-fund statsd@0.9.0 >/dev/null 2>&1

# A C sender, so that the sender is not what limits the measured rate; without a compiler, Python's.
bench/.build/blast: bench/blast.c
	mkdir -p bench/.build
	-cc -O2 -Wall -o $@ $<

bench: $(STAMP) $(STATSD_JS) bench/.build/blast
	$(PY) bench/run.py $(BENCH_ARGS)

bench-smoke: $(STAMP) $(STATSD_JS) bench/.build/blast
	$(PY) bench/run.py --smoke

# bridge/exposition/metrics_pb2.py from client_model's metrics.proto (checked in; regenerate after changing either)
proto: $(STAMP)
	$(PY) -m pip install --quiet 'grpcio-tools>=1.85'
	$(PY) -m grpc_tools.protoc -I bridge/exposition/proto --python_out=bridge/exposition bridge/exposition/proto/metrics.proto

clean:
	rm -rf $(VENV) build *.egg-info
