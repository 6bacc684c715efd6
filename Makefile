# The verbs CI runs; `make check` green locally means CI green.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install fmt lint test check serve

install:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -q -e '.[test]'

fmt:
	$(VENV)/bin/ruff format src tests bench conformance
	$(VENV)/bin/ruff check --fix src tests bench conformance

lint:
	$(VENV)/bin/ruff format --check src tests bench conformance
	$(VENV)/bin/ruff check src tests bench conformance
	$(VENV)/bin/mypy

test:
	$(PY) -m pytest

check: lint test

serve:
	$(VENV)/bin/pushwire serve
