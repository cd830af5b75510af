#!/usr/bin/env bash
# Evaluate the RAG pipeline on the three corpora (build.sh): ingest each into its own collection,
# then `nanoserve rag eval` (retrieval per strategy, and answers unless --no-answers). Every run is
# kept: benchmarks/rag/results/runs/<UTC time>-<LABEL>/ holds each corpus's JSON, the console
# output with the commands that made it, and summary.md (the table).
#
#   bash benchmarks/rag/corpora/run.sh LABEL [--no-answers] [--strategies auto,hybrid]
#
# NANOSERVE_URL set: use that gateway (already ingested collections are skipped by content hash);
# unset: start one with the default models on a free port and a scratch data dir.
# CORPORA: where build.sh puts the corpora (default ~/.cache/nanoserve/rag-corpora).
set -euo pipefail
cd "$(dirname "$0")/../../.."
LABEL=${1:?usage: run.sh LABEL [rag eval options]}
shift
PY=${PYTHON:-.venv/bin/python}
CORPORA=${CORPORA:-$HOME/.cache/nanoserve/rag-corpora}
OUT=benchmarks/rag/results/runs/$(date -u +%Y%m%dT%H%M)-$LABEL
mkdir -p "$OUT"
bash benchmarks/rag/corpora/build.sh "$CORPORA" >/dev/null

SERVER=
if [ -z "${NANOSERVE_URL:-}" ]; then
  WORK=$(mktemp -d)
  trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
  PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export NANOSERVE_URL=http://127.0.0.1:$PORT
  $PY -m nanoserve serve --port "$PORT" --data-dir "$WORK/data" >"$WORK/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 600); do curl -sf "$NANOSERVE_URL/health" >/dev/null && break; sleep 0.2; done
fi

{
  echo "# $(git rev-parse --short HEAD)$(git diff --quiet || echo +changes), $(date -u +%FT%TZ)"
  for corpus in git debian postgres; do
    echo "\$ nanoserve ingest \$CORPORA/$corpus --collection $corpus"
    $PY -m nanoserve ingest "$CORPORA/$corpus" --collection "$corpus" 2>/dev/null
    echo "\$ nanoserve rag eval --collection $corpus --questions benchmarks/rag/corpora/$corpus-questions.jsonl $* -o $OUT/$corpus.json"
    $PY -m nanoserve rag eval --collection "$corpus" --questions "benchmarks/rag/corpora/$corpus-questions.jsonl" \
      "$@" -o "$OUT/$corpus.json" 2>/dev/null
  done
} | tee "$OUT/console.txt"
$PY benchmarks/rag/corpora/summarize.py "$OUT" | tee "$OUT/summary.md"
