# Two entry points for a fresh machine (see README): `make app` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
# torch is installed first and pinned: the CPU wheel on CPU machines (a looser spec pulls the multi-GB CUDA
# build). For a CUDA build: make install TORCH_SPEC=torch==2.13.0 TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
UV_VERSION := $(shell sed -n 's/^uv==//p' requirements.txt)
SHARED_DATA := $(abspath ../shared/data/wikiann)
export XNER_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)

.PHONY: install app demo test test-all check lock bench

# The lock (requirements.txt) has every other dependency at its exact version; uv installs it without resolving.
$(BIN)/.installed: requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(UV) pip install -q --python $(BIN)/python --no-deps -r requirements.txt
	$(UV) pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

install: $(BIN)/.installed

app: install
	$(BIN)/xner app

# Before a live demo: train (or find cached) the demo pairs' models as the dashboard would, then serve the app.
demo: install
	$(BIN)/xner grid run demo
	$(BIN)/xner app

test: install
	$(BIN)/python -m pytest -q

test-all: install
	$(BIN)/python -m pytest -q -m ""

# Lint and types (CI runs these before the tests).
check: install
	$(BIN)/ruff check xner_core xner_ui
	$(BIN)/mypy

# Regenerate the lock from pyproject.toml (uv keeps the current pins where they still satisfy it; pass
# LOCK_FLAGS=--upgrade to move them). Where the local CPU wheel of torch exists it stands in for torch while
# resolving, so no CUDA packages enter the lock.
LOCK_FLAGS ?=
lock: install
	@over=$$(mktemp); echo "$(TORCH_SPEC)+cpu" > $$over; \
	$(UV) pip compile pyproject.toml --extra app --extra offline --extra onnx --extra ray --extra uriel \
	  --group test --group dev --python-version 3.11 --no-emit-package torch --no-header --no-annotate \
	  $(if $(wildcard /opt/wheels),--find-links /opt/wheels --override $$over) $(LOCK_FLAGS) -o requirements.txt; \
	rc=$$?; rm -f $$over; [ $$rc = 0 ] || exit $$rc; \
	{ printf '%s\n' "$(LOCK_HEADER_1)" "$(LOCK_HEADER_2)" "$(LOCK_HEADER_3)"; grep -v '^#' requirements.txt; } > requirements.txt.tmp \
	  && mv requirements.txt.tmp requirements.txt
LOCK_HEADER_1 := \# Lock file: the exact version of every dependency (torch excepted) that the Makefile, CI and Docker install.
LOCK_HEADER_2 := \# Generated from pyproject.toml by make lock (all extras + the test and dev groups); do not edit by hand.
LOCK_HEADER_3 := \# Install torch first (pinned where it is installed: the CPU wheel here), then: uv pip install --no-deps -r requirements.txt

bench: install
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done
