#!/usr/bin/env bash
# Build llama.cpp's C++ `llama-server` from the source vendored in the llama-cpp-python sdist that
# pyproject.toml pins, and cache the binary outside the repository:
#
#     BIN=$(peers/build-llama-server.sh | tail -1)
#
# -> ${XDG_CACHE_HOME:-$HOME/.cache}/nanoserve/llama-server-<version>/llama-server
#
# Idempotent: when the binary exists, it prints its path and exits at once. The path is the last
# (and only) line of stdout; pip's and cmake's output goes to stderr. A first build takes about
# 10 CPU-minutes (5 minutes on 2 idle cores). Needs cmake and g++ (scripts/install-system.sh
# installs them) and pip (PYTHON: the interpreter whose pip downloads the sdist; default
# .venv/bin/python, else python3).
# LLAMA_CPP_PYTHON_SDIST=path/to/llama_cpp_python-<version>.tar.gz uses that sdist instead (offline).
# Nothing is downloaded at build time: no web UI (LLAMA_USE_PREBUILT_UI, on by default, would
# fetch it from Hugging Face), no curl, no OpenSSL, no tests or examples.
#
# The binary is built for this CPU (GGML_NATIVE, llama.cpp's default). Run it with `-nr`
# (--no-repack: no weights repacked into the AMX/extra buffer types): this project's VMs report
# AMX, and the AMX kernels fault there on the first prompt:
#
#     llama-server -m model.gguf --host 127.0.0.1 --port 8081 -nr
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
version="$(awk 'match($0, /llama-cpp-python==[0-9][0-9A-Za-z.]*/) {
  print substr($0, RSTART + 18, RLENGTH - 18); exit }' "$repo/pyproject.toml")"
if [ -z "$version" ]; then
  echo "build-llama-server: no llama-cpp-python==<version> pin in $repo/pyproject.toml" >&2
  exit 1
fi
dest="${XDG_CACHE_HOME:-$HOME/.cache}/nanoserve/llama-server-$version"
bin="$dest/llama-server"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

for tool in cmake g++ tar flock; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build-llama-server: '$tool' is missing (scripts/install-system.sh installs the build tools)" >&2
    exit 1
  fi
done
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then PYTHON="$repo/.venv/bin/python"; else PYTHON=python3; fi
fi

mkdir -p "$dest"
# One build at a time: a second caller waits, then finds the binary.
exec 9>"$dest/.lock"
flock 9
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/llama-server-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$SECONDS

{
  echo "build-llama-server: llama-cpp-python $version sdist -> $bin"
  sdist="${LLAMA_CPP_PYTHON_SDIST:-}"
  if [ -z "$sdist" ]; then
    # from pip's cache when it has it
    "$PYTHON" -m pip download --quiet --no-binary :all: --no-deps "llama-cpp-python==$version" -d "$work"
    sdist="$work/llama_cpp_python-$version.tar.gz"
  fi
  mkdir "$work/sdist"
  tar -xzf "$sdist" -C "$work/sdist" --strip-components=1
  src="$work/sdist/vendor/llama.cpp"
  test -f "$src/tools/server/CMakeLists.txt"

  # LLAMA_CURL is deprecated (ignored) in recent trees, kept for older ones.
  cmake -S "$src" -B "$work/build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF
  cmake --build "$work/build" --target llama-server -j "$(nproc)"

  "$work/build/bin/llama-server" --version
  cp "$work/build/bin/llama-server" "$bin.tmp"
  mv -f "$bin.tmp" "$bin"
  echo "build-llama-server: built in $((SECONDS - start))s"
} >&2

echo "$bin"
