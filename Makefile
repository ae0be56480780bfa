# Two commands for a fresh machine: `make demo` and `make test`. Both set up .venv when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= runs/demo
# DEMO_WORKERS=N runs the demo's (method, chip) cells in N processes, one torch thread each (1: in this process;
# on 2 cores that was not faster: docs/performance.md)
DEMO_WORKERS ?= 1

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m tsb_aihw.cli.main doctor
	@touch $(STAMP)

demo: setup
	$(PY) -m tsb_aihw.cli.main demo --out $(DEMO_OUT) --workers $(DEMO_WORKERS)

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check tsb_aihw
	$(VENV)/bin/mypy

bench: setup
	$(PY) benchmarks/run.py

clean:
	rm -rf runs .pytest_cache
