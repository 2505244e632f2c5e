# Two commands for a fresh machine:  make demo  |  make test
# Each creates its own virtual environment in .venv. constraints.txt pins torch==2.13.0; what
# that fetches depends on the machine (PyPI's Linux build is the CUDA one, several GB): set
# TORCH_INDEX (below) for PyTorch's CPU build. docs/install.md has the details.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt
# TORCH_INDEX=https://download.pytorch.org/whl/cpu takes PyTorch's CPU wheel from PyTorch's own
# index (about 200 MB) instead of PyPI's CUDA build (several GB on a stock Linux machine).
TORCH_INDEX ?=

.PHONY: demo test test-slow test-fast lint bench docs docs-gen clean

# Each step that can fail says what to do next (make demo must never end in a dead end).
NO_VENV  = echo "make: '$(PYTHON) -m venv' failed. Next: install the venv module (Debian/Ubuntu: sudo apt install python3-venv), or use another Python 3.9+: make $(or $(MAKECMDGOALS),demo) PYTHON=/path/to/python3" >&2; rm -rf $(VENV); exit 1
NO_PIP   = echo "make: pip could not install the packages above. Next: if this machine is offline, run make once with a network, or point pip at a folder of wheels (PIP_NO_INDEX=1 PIP_FIND_LINKS=/path/to/wheels make demo); if the PyTorch download is the problem, take the CPU build: make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu" >&2; exit 1

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { $(NO_VENV); }

$(VENV)/.core: $(BIN)/python pyproject.toml constraints.txt
	$(if $(TORCH_INDEX),$(PIP) torch --index-url $(TORCH_INDEX) || { $(NO_PIP); })
	$(PIP) -e . || { $(NO_PIP); }
	touch $@

$(VENV)/.test: $(VENV)/.core
	$(PIP) -e '.[test,web]' || { $(NO_PIP); }
	touch $@

demo: $(VENV)/.core
	$(BIN)/painterly demo

# The default suite (about 10 minutes on 2 cores); the end-to-end runs marked slow run in CI
# (.ci/run) and with make test-slow.
test: $(VENV)/.test
	$(BIN)/python -m pytest -q -m "not slow"

# ruff: the formatter and the linter (pyproject.toml [tool.ruff]); CI fails on either.
lint: $(VENV)/.test
	$(BIN)/ruff format --check src tests benchmarks docs
	$(BIN)/ruff check src tests benchmarks docs

test-slow: $(VENV)/.test
	$(BIN)/python -m pytest -q -m slow

test-fast: $(VENV)/.test
	$(BIN)/python -m pytest -q -m "not slow and not browser"

# The documentation: docs-gen rewrites the generated regions of docs/*.md (the option and CLI
# references from the code, the benchmark tables from benchmarks/results/); docs builds the site
# into build/site strictly (a broken link or a page missing from the nav fails), offline.
$(VENV)/.docs: $(VENV)/.core
	$(PIP) -e '.[docs]' || { $(NO_PIP); }
	touch $@

docs-gen: $(VENV)/.core
	$(BIN)/python docs/gen.py

docs: $(VENV)/.docs docs-gen
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

bench: $(VENV)/.core
	$(BIN)/python benchmarks/bench_speed.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
