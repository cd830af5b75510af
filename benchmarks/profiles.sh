#!/usr/bin/env bash
# The local and cloud profiles side by side in one run (ratios: these machines are noisy), on the
# default chat model: 1 stream (time to first token) and 16 at once (throughput), alternated.
# Writes benchmarks/results/profile-{local,cloud}-{1,16}-{a,b}.json and profiles.md.
#   bash benchmarks/profiles.sh            (PY=/path/to/python to use another interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=benchmarks/results
DATA=$(mktemp -d)
trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DATA"' EXIT
KEY=$($PY -c 'import secrets; print(secrets.token_urlsafe(24))')
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
# An OTLP/HTTP sink standing in for the collector the cloud profile exports traces to.
OTLP=$(free_port)
$PY -c '
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *args): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
' "$OTLP" &
PIDS+=($!)
serve() {  # serve PROFILE -> starts a gateway with that profile (bound to loopback), prints its port
  local port dir
  port=$(free_port)
  dir="$DATA/$1"
  mkdir -p "$dir"
  NANOSERVE_BOOTSTRAP_KEY=$KEY NANOSERVE_OBSERVABILITY__OTLP_ENDPOINT="http://127.0.0.1:$OTLP" \
    $PY -m nanoserve serve --profile "$1" --host 127.0.0.1 --port "$port" --data-dir "$dir" >"$dir/gw.log" 2>&1 &
  PIDS+=($!)
  until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.2; done
  echo "$port"
}
LOCAL=$(serve local)
CLOUD=$(serve cloud)
bench() {  # bench PORT ARGS...
  local port=$1
  shift
  $PY -m nanoserve bench --base-url "http://127.0.0.1:$port" --api-key "$KEY" --model smollm2:135m \
    --input-len 400 --output-len 64 --ignore-eos --temperature 0 --seed 1 --no-progress "$@" >/dev/null
}
for port in $LOCAL $CLOUD; do bench "$port" --num-prompts 2; done  # load (and convert) the model
for round in a b; do
  for profile in local cloud; do
    port=$LOCAL
    [[ $profile == cloud ]] && port=$CLOUD
    bench "$port" --num-prompts 8 --max-concurrency 1 --save-result "$OUT/profile-$profile-1-$round.json"
    bench "$port" --num-prompts 32 --max-concurrency 16 --save-result "$OUT/profile-$profile-16-$round.json"
  done
done
$PY - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def run(profile, streams, rnd):
    result = json.loads((out / f"profile-{profile}-{streams}-{rnd}.json").read_text())["results"][0]
    assert result["failed"] == 0, (profile, streams, rnd)
    return result
lines = [
    "| profile | 1 stream: TTFT p50 ms (a, b) | 1 stream: output tok/s (a, b) | 16 streams: output tok/s (a, b) | 16 streams: TTFT p50 ms (a, b) |",
    "|---|---|---|---|---|",
]
best = {}
for p in ("local", "cloud"):
    one = [run(p, 1, r) for r in "ab"]
    many = [run(p, 16, r) for r in "ab"]
    best[p] = (min(r["median_ttft_ms"] for r in one), max(r["output_throughput"] for r in many))
    lines.append(
        f"| {p} | {one[0]['median_ttft_ms']:.0f}, {one[1]['median_ttft_ms']:.0f} "
        f"| {one[0]['output_throughput']:.1f}, {one[1]['output_throughput']:.1f} "
        f"| {many[0]['output_throughput']:.1f}, {many[1]['output_throughput']:.1f} "
        f"| {many[0]['median_ttft_ms']:.0f}, {many[1]['median_ttft_ms']:.0f} |"
    )
lines.append(
    f"\nTTFT at 1 stream, local / cloud (best of a, b): {best['local'][0] / best['cloud'][0]:.2f}; "
    f"output tok/s at 16 streams, cloud / local: {best['cloud'][1] / best['local'][1]:.2f}"
)
(out / "profiles.md").write_text(
    "`bash benchmarks/profiles.sh`: `nanoserve serve --profile local` and `--profile cloud` (both bound to "
    "127.0.0.1, the cloud one with a bootstrap key and traces exported to a local OTLP sink), the default "
    "chat model; 400-word prompts, 64 tokens each (ignore_eos), temperature 0; 8 requests one at a time, "
    "then 32 requests 16 at a time; rounds a and b alternate the two gateways.\n\n" + "\n".join(lines) + "\n"
)
print("\n".join(lines))
PYEOF
