# Two commands for a fresh machine: `make demo` and `make test`. Both set up a venv when needed.
# Supported interpreters: Python 3.11, 3.12 and 3.13 (pyproject.toml pins a stack for each; tsb_aihw/stack.py).
# PYTHON picks one: the default `python3` gets .venv; any other gets its own venv named by its version, e.g.
# `make test PYTHON=$(pyenv root)/versions/3.13.0/bin/python3` -> .venv-3.13. VENV=dir overrides the name.
PYTHON ?= python3
SUPPORTED := 3.11 3.12 3.13
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
VENV ?= $(if $(filter python3,$(PYTHON)),.venv,.venv-$(PYVER))
PY := $(VENV)/bin/python
# The venv belongs to one interpreter version: a stamp per version, so a changed `python3` rebuilds it.
PYSTAMP := $(VENV)/.python-$(PYVER)
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= runs/demo
# DEMO_WORKERS=N runs the demo's (method, chip) cells in N processes, one torch thread each (1: in this process;
# on 2 cores that was not faster: docs/performance.md)
DEMO_WORKERS ?= 1
# TEST_WORKERS: pytest-xdist processes for `make test` (each gets cores/N torch threads: tests/conftest.py)
TEST_WORKERS ?= 2

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

# Refuse an unsupported or missing interpreter in one line, before anything is created or installed.
$(PYSTAMP):
	$(if $(PYVER),,$(error PYTHON=$(PYTHON) does not run; tsb-aihw needs Python 3.11, 3.12 or 3.13: make test PYTHON=/path/to/python3.13))
	$(if $(filter $(PYVER),$(SUPPORTED)),,$(error PYTHON=$(PYTHON) is Python $(PYVER); tsb-aihw needs 3.11, 3.12 or 3.13: make test PYTHON=/path/to/python3.13))
	@if [ "$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" != "$(PYVER)" ]; then \
		echo "creating $(VENV) with $(PYTHON) (Python $(PYVER))"; $(PYTHON) -m venv --clear $(VENV); fi
	@echo '*' > $(VENV)/.gitignore
	@touch $@

$(STAMP): pyproject.toml $(PYSTAMP)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,cost]'  # cost: the field models, Python >= 3.12 only (empty on 3.11)
	$(PY) -m tsb_aihw.cli.main doctor
	@touch $(STAMP)

demo: setup
	$(PY) -m tsb_aihw.cli.main demo --out $(DEMO_OUT) --workers $(DEMO_WORKERS)

test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

lint: setup
	$(VENV)/bin/ruff check tsb_aihw
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

bench: setup
	$(PY) benchmarks/run.py

clean:
	rm -rf runs .pytest_cache
