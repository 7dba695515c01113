# Two entry points for a fresh machine (see README): `make app` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_DATA := $(abspath ../shared/data/wikiann)
export XNER_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)

.PHONY: install app test test-all bench

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel; a looser spec would pull the multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

install: $(BIN)/.installed

app: install
	$(BIN)/streamlit run app.py --server.headless true

test: install
	$(BIN)/python -m pytest -q

test-all: install
	$(BIN)/python -m pytest -q -m ""

bench: install
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done
