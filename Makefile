VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint install bench clean

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

clean:
	rm -rf $(VENV) build *.egg-info
