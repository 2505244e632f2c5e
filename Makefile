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

.PHONY: demo test test-fast bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.core: $(BIN)/python pyproject.toml constraints.txt
	$(if $(TORCH_INDEX),$(PIP) torch --index-url $(TORCH_INDEX))
	$(PIP) -e .
	touch $@

$(VENV)/.test: $(VENV)/.core
	$(PIP) -e '.[test,web]'
	touch $@

demo: $(VENV)/.core
	$(BIN)/painterly demo

test: $(VENV)/.test
	$(BIN)/python -m pytest -q

test-fast: $(VENV)/.test
	$(BIN)/python -m pytest -q -m "not slow and not browser"

bench: $(VENV)/.core
	$(BIN)/python benchmarks/bench_speed.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
