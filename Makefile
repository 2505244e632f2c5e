# Two commands for a fresh machine:  make demo  |  make test
# Each creates its own virtual environment in .venv; constraints.txt pins torch to the
# CPU build so pip never pulls several GB of CUDA packages.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt
# TORCH_INDEX=https://download.pytorch.org/whl/cpu takes PyTorch's CPU wheel from PyTorch's own
# index (about 200 MB) instead of PyPI's CUDA build (several GB on a stock Linux machine).
TORCH_INDEX ?=

.PHONY: demo test test-slow test-fast lint bench clean

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
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

test-slow: $(VENV)/.test
	$(BIN)/python -m pytest -q -m slow

test-fast: $(VENV)/.test
	$(BIN)/python -m pytest -q -m "not slow and not browser"

bench: $(VENV)/.core
	$(BIN)/python benchmarks/bench_speed.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
