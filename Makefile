VENV ?= .venv
# the interpreter the venv is made from: `make bench PYTHON=/usr/bin/python3 VENV=.venv-system` measures
# the distribution's optimised build (README, Performance)
PYTHON ?= python3
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
# the tools of each extra of pyproject.toml, installed by the targets that use them: test (pytest and what the
# tests drive), lint (ruff, import-linter, mypy), release (build, twine)
TEST := $(VENV)/.extra-test
LINT := $(VENV)/.extra-lint
RELEASE := $(VENV)/.extra-release

.PHONY: run test test-unit test-core test-pythons lint install dist bench bench-pythons bench-smoke clean test-tools proto

# what the bridge needs to run, and nothing else
$(RUN_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.extra-%: $(RUN_STAMP)
	$(PY) -m pip install --quiet -e '.[$*]'
	touch $@

# everything the targets below use
install: $(TEST) $(LINT) $(RELEASE)

run: $(RUN_STAMP)
	$(VENV)/bin/statsd-bridge $(ARGS)

NODE_CLIENTS := tests/clients/node_modules/.installed

# Node's hot-shots for the client tests, pinned by tests/clients/package-lock.json
$(NODE_CLIENTS): tests/clients/package-lock.json
	-npm ci --prefix tests/clients --no-audit --no-fund --loglevel=error && touch $@

# The programs some tests run beside the venv, listed once in tests/external/programs.txt (which .ci/run installs
# from): named here when missing, so that a skipped test is no mystery. Those tests skip without them on a
# workstation and fail in CI (.ci/run sets CI=true).
PROGRAMS := tests/external/programs.txt
test-tools:
	@missing=""; \
	while read -r tool packages purpose; do \
		case "$$tool" in ""|"#"*) continue;; esac; \
		if [ "$$tool" = statsd_exporter ] && [ -n "$$STATSD_EXPORTER" ]; then \
			test -x "$$STATSD_EXPORTER" || missing="$$missing $$tool (STATSD_EXPORTER=$$STATSD_EXPORTER)"; \
		else \
			command -v "$$tool" >/dev/null 2>&1 || missing="$$missing $$tool"; \
		fi; \
	done < $(PROGRAMS); \
	test -d tests/clients/node_modules/hot-shots || missing="$$missing hot-shots (npm ci --prefix tests/clients)"; \
	if [ -n "$$missing" ]; then echo "make test: missing, so their tests will skip:$$missing ($(PROGRAMS) says what provides each)"; fi

# make lint, then every test
test: $(TEST) $(RELEASE) $(NODE_CLIENTS) test-tools lint
	$(PY) -m pytest -q -n 4 --dist loadgroup $(PYTEST_ARGS)

# the unit and integration tests (the bridge and real sockets, no other program), as CI runs them on
# each supported Python besides the default
test-core: $(TEST)
	$(PY) -m pytest -q -n 4 tests/unit tests/integration $(PYTEST_ARGS)

# test-core on each other supported Python, each in its own venv (.venv-3.X), the interpreters found by
# path under PYENV (pyenv's versions folder: $PYENV_ROOT, else `pyenv root`, else ~/.pyenv); one that is missing
# is skipped here and fails in CI
PYTHON_VERSIONS := 3.10 3.12 3.13
PYENV ?= $(or $(PYENV_ROOT),$(shell pyenv root 2>/dev/null),$(HOME)/.pyenv)/versions
test-pythons:
	@for version in $(PYTHON_VERSIONS); do \
		python=$$(ls -d $(PYENV)/$$version.*/bin/python3 2>/dev/null | sort -V | tail -1); \
		if [ -z "$$python" ]; then \
			if [ -n "$$CI" ]; then echo "make test-pythons: no Python $$version under $(PYENV)"; exit 1; fi; \
			echo "make test-pythons: no Python $$version under $(PYENV), skipped (CI fails instead)"; continue; \
		fi; \
		echo "== $$($$python --version) ($$python)"; \
		$(MAKE) --no-print-directory test-core VENV=.venv-$$version PYTHON=$$python || exit 1; \
	done

# the unit tests alone (tests/unit: no process, no socket), in seconds
test-unit: $(TEST)
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

lint: $(LINT)
	$(PY) -m ruff check bridge tests
	$(PY) -m ruff format --check bridge tests
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

# the sdist and the wheel, in dist/, for pip install elsewhere (docs/deployment.md)
dist: $(RELEASE)
	$(PY) -m build --outdir dist

STATSD_JS := bench/.statsd/node_modules/statsd/stats.js

# The original StatsD daemon, for the side-by-side numbers; without node/npm the bridge runs alone.
$(STATSD_JS):
	mkdir -p bench/.statsd
	-npm install --prefix bench/.statsd --no-save --no-package-lock --no-audit --no-fund statsd@0.9.0 >/dev/null 2>&1

# A C sender, so that the sender is not what limits the measured rate; without a compiler, Python's.
bench/.build/blast: bench/blast.c
	mkdir -p bench/.build
	-cc -O2 -Wall -o $@ $<

bench: $(RUN_STAMP) $(STATSD_JS) bench/.build/blast
	$(PY) bench/run.py $(BENCH_ARGS)

# the mixed and production loads on each supported Python found (the venvs of make test-pythons), side by side
bench-pythons: $(RUN_STAMP) bench/.build/blast
	$(PY) bench/run.py $(foreach version,$(PYTHON_VERSIONS),$(if $(wildcard .venv-$(version)/bin/python),--python .venv-$(version)/bin/python)) $(BENCH_ARGS)

bench-smoke: $(RUN_STAMP) $(STATSD_JS) bench/.build/blast
	$(PY) bench/run.py --smoke

# bridge/exposition/metrics_pb2.py from client_model's metrics.proto (checked in; regenerate after changing either)
proto: $(VENV)/.extra-proto
	$(PY) -m grpc_tools.protoc -I bridge/exposition/proto --python_out=bridge/exposition bridge/exposition/proto/metrics.proto

clean:
	rm -rf $(VENV) build dist *.egg-info
