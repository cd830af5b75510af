#!/usr/bin/env bash
# Retrieval evaluation of nanoserve's RAG pipeline on real public documentation: the Python 3.11
# tutorial, HOWTOs and FAQ as installed by Debian's python3.11-doc package (44 HTML documents; the
# three index.html tables of contents are left out). Starts a gateway with the default models on a
# free port and a scratch data dir, ingests, evaluates semantic/keyword/hybrid retrieval on
# python-docs-questions.jsonl, calibrates the "not in the documents" gate, and writes results/.
#
#   apt-get install python3.11-doc     # once
#   bash benchmarks/rag/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=benchmarks/rag
DOCS=/usr/share/doc/python3.11/html
PY=${PYTHON:-.venv/bin/python}
NANOSERVE=${NANOSERVE:-.venv/bin/nanoserve}
[ -d "$DOCS/tutorial" ] || { echo "install Debian's python3.11-doc first (apt-get install python3.11-doc)" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/corpus" "$HERE/results"
for part in tutorial howto faq; do
  mkdir -p "$WORK/corpus/$part"
  find "$DOCS/$part" -maxdepth 1 -name '*.html' ! -name index.html -exec cp {} "$WORK/corpus/$part/" \;
done

PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
$NANOSERVE serve --port "$PORT" --data-dir "$WORK/data" >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 300); do curl -sf "$URL/health" >/dev/null && break; sleep 0.2; done

{
  echo "# python3.11-doc $(dpkg-query -W -f='${Version}' python3.11-doc), $(ls "$WORK"/corpus/*/*.html | wc -l) documents"
  echo "\$ nanoserve ingest CORPUS --collection pydocs"
  $NANOSERVE ingest "$WORK/corpus" --collection pydocs --url "$URL" 2>/dev/null
  echo "\$ nanoserve rag eval --collection pydocs --questions $HERE/python-docs-questions.jsonl"
  $NANOSERVE rag eval --collection pydocs --questions "$HERE/python-docs-questions.jsonl" --url "$URL" \
    -o "$HERE/results/python-docs-eval.json" 2>/dev/null
  echo "\$ python $HERE/calibrate.py (gate: best query-chunk cosine)"
  $PY "$HERE/calibrate.py" --url "$URL" --collection pydocs --questions "$HERE/python-docs-questions.jsonl" \
    --out-of-scope "$HERE/out-of-scope.txt" -o "$HERE/results/gate-calibration.json"
} | tee "$HERE/results/python-docs.txt"
