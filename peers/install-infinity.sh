#!/usr/bin/env bash
# Install Infinity (PyPI `infinity-emb`, an embedding server) into a venv of its own, cached
# outside the repository, and print its CLI's path:
#
#     INFINITY=$(peers/install-infinity.sh | tail -1)
#     "$INFINITY" v2 --model-id DIR --engine torch --batch-size 32 --port 7997 --url-prefix /v1
#
# -> ${XDG_CACHE_HOME:-$HOME/.cache}/nanoserve/infinity-<version>/bin/infinity_emb
#
# Its own venv because it pins what nanoserve's does not (sentence-transformers 3, transformers 4,
# numpy 1): installed beside nanoserve it would change their versions. torch is installed first and
# pinned to the version pyproject.toml pins (a machine with a local CPU build of it takes that;
# unpinned, Infinity's requirement would pull a CUDA build of several GB). Idempotent: when the
# CLI exists, it prints its path and exits at once. pip's output goes to stderr.
set -euo pipefail

INFINITY_VERSION=${INFINITY_VERSION:-0.0.78}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
torch_pin="$(grep -o 'torch==[0-9][0-9A-Za-z.]*' "$repo/pyproject.toml" | head -1)"
if [ -z "$torch_pin" ]; then
  echo "install-infinity: no torch==<version> pin in $repo/pyproject.toml" >&2
  exit 1
fi
dest="${XDG_CACHE_HOME:-$HOME/.cache}/nanoserve/infinity-$INFINITY_VERSION"
bin="$dest/bin/infinity_emb"

if [ -x "$bin" ] && [ -f "$dest/.installed" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$(dirname "$dest")"
exec 9>"$dest.lock"
flock 9  # one install at a time: a second caller waits, then finds the CLI
if [ -x "$bin" ] && [ -f "$dest/.installed" ]; then
  echo "$bin"
  exit 0
fi

{
  echo "install-infinity: infinity-emb $INFINITY_VERSION ($torch_pin) -> $dest"
  rm -rf "$dest"
  "${PYTHON:-python3}" -m venv "$dest"
  "$dest/bin/pip" install --quiet --upgrade pip
  "$dest/bin/pip" install --quiet "$torch_pin"
  "$dest/bin/pip" install --quiet "$torch_pin" "infinity-emb[server,torch]==$INFINITY_VERSION"
  touch "$dest/.installed"
} >&2

echo "$bin"
