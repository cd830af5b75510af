# nanoserve: `make run` serves the default models, `make test` runs the test suite.
# Both install everything first (a venv in .venv, then the Python packages); a stamp file
# makes the second run instant until pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=
GPU    ?= cpu
EXTRAS := llamacpp,sentence,bench,otel,rag,pgvector,hub,ray,test
STAMP  := $(VENV)/.installed-$(GPU)

.PHONY: install run test test-slow peers infinity lint clean screenshots

install: $(STAMP)

# The Python packages come from scripts/install.sh, which the Dockerfiles run too (GPU=cuda builds
# llama.cpp with CUDA).
$(STAMP): pyproject.toml Makefile scripts/install-system.sh scripts/install.sh
	bash scripts/install-system.sh
	GPU=$(GPU) EXTRAS=$(EXTRAS) EDITABLE=1 PYTHON=$(PYTHON) bash scripts/install.sh $(VENV)
	touch $(STAMP)

run: install
	$(BIN)/nanoserve serve --host $(HOST) --port $(PORT)

test: lint
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: install peers
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

# Servers the slow tests run beside nanoserve: llama.cpp's llama-server, built once (~5 min on
# 2 cores) into ~/.cache/nanoserve, outside the repository; instant once built.
peers: install
	PYTHON=$(BIN)/python bash peers/build-llama-server.sh

# Infinity, the embedding server benchmarks/embeddings.py runs beside nanoserve, in a venv of its own
# in ~/.cache/nanoserve (it pins older transformers); not needed by any test.
infinity:
	bash peers/install-infinity.sh

# A PNG of each dashboard page in docs/screenshots/ (the README shows them); not part of `make test`.
screenshots: install
	$(BIN)/python scripts/screenshots.py

# Fails on any finding: ruff's checks, its formatting, and the import contract (pyproject.toml).
lint: install
	$(BIN)/ruff check src tests benchmarks scripts peers
	$(BIN)/ruff format --check src tests benchmarks scripts peers
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build dist src/*.egg-info
