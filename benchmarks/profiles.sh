#!/usr/bin/env bash
# The local and cloud profiles side by side in one run (ratios: these machines are noisy), on the
# default chat model: 1 stream (time to first token) and 16 at once (throughput), interleaved.
# Writes benchmarks/results/profile-{local,cloud}-{1,16}-{1,2}.json and profiles.md.
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
serve() {  # serve PROFILE: starts a gateway with that profile (bound to loopback); PORT= its port
  local dir="$DATA/$1"
  PORT=$(free_port)
  mkdir -p "$dir"
  NANOSERVE_BOOTSTRAP_KEY=$KEY NANOSERVE_OBSERVABILITY__OTLP_ENDPOINT="http://127.0.0.1:$OTLP" \
    $PY -m nanoserve serve --profile "$1" --host 127.0.0.1 --port "$PORT" --data-dir "$dir" >"$dir/gw.log" 2>&1 &
  PIDS+=($!)  # not in a $(...) subshell: the pid must reach the trap
  until curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; do sleep 0.2; done
}
serve local
LOCAL=$PORT
serve cloud
CLOUD=$PORT
bench() {  # bench PROFILE STREAMS ROUND: one run, saved as profile-PROFILE-STREAMS-ROUND.json
  local port=$LOCAL
  [[ $1 == cloud ]] && port=$CLOUD
  local args=(--num-prompts 4 --max-concurrency 1 --input-len 400 --output-len 32)  # time to first token
  [[ $2 == 16 ]] && args=(--num-prompts 16 --max-concurrency 16 --input-len 64 --output-len 32)  # throughput
  $PY -m nanoserve bench --base-url "http://127.0.0.1:$port" --api-key "$KEY" --model smollm2:135m \
    --ignore-eos --temperature 0 --seed "$3" --no-progress "${args[@]}" --save-result "$OUT/profile-$1-$2-$3.json" >/dev/null
}
for profile in local cloud; do bench $profile 1 0; done  # load (and convert) the model, not kept
cat /proc/loadavg >"$OUT/profiles-load.txt"
# Finely interleaved (the machine is shared; its load changes by the minute): each round runs both
# profiles back to back, the order swapped from one round to the next.
for round in 1 2; do
  order=(local cloud)
  [[ $round == 2 ]] && order=(cloud local)
  for streams in 1 16; do
    for profile in "${order[@]}"; do bench "$profile" "$streams" "$round"; done
  done
  cat /proc/loadavg >>"$OUT/profiles-load.txt"
done
rm -f "$OUT"/profile-*-1-0.json
$PY - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def run(profile, streams, rnd):
    result = json.loads((out / f"profile-{profile}-{streams}-{rnd}.json").read_text())["results"][0]
    assert result["failed"] == 0, (profile, streams, rnd)
    return result
lines = [
    "| round | streams | local | cloud | ratio |",
    "|---|---|---|---|---|",
]
for rnd in (1, 2):
    l1, c1 = run("local", 1, rnd), run("cloud", 1, rnd)
    lines.append(
        f"| {rnd} | 1: TTFT p50 ms | {l1['median_ttft_ms']:.0f} | {c1['median_ttft_ms']:.0f} "
        f"| local / cloud = {l1['median_ttft_ms'] / c1['median_ttft_ms']:.2f} |"
    )
    lines.append(
        f"| {rnd} | 1: TPOT p50 ms | {l1['median_tpot_ms']:.0f} | {c1['median_tpot_ms']:.0f} "
        f"| local / cloud = {l1['median_tpot_ms'] / c1['median_tpot_ms']:.2f} |"
    )
    l16, c16 = run("local", 16, rnd), run("cloud", 16, rnd)
    lines.append(
        f"| {rnd} | 16: output tok/s | {l16['output_throughput']:.1f} | {c16['output_throughput']:.1f} "
        f"| cloud / local = {c16['output_throughput'] / l16['output_throughput']:.2f} |"
    )
load = (out / "profiles-load.txt").read_text().split("\n")
(out / "profiles.md").write_text(
    "`bash benchmarks/profiles.sh`: `nanoserve serve --profile local` and `--profile cloud` (both bound to "
    "127.0.0.1, the cloud one with a bootstrap key and traces exported to a local OTLP sink), the default "
    "chat model, temperature 0, ignore_eos. 1 stream: 4 requests one at a time, 400-word prompts, 32 tokens. "
    "16 streams: 16 requests at once, 64-word prompts, 32 tokens. Two rounds, each running both profiles "
    "back to back (order swapped in round 2).\n\nLoad average (1, 5, 15 min) before round 1 and after "
    "each round: " + "; ".join(" ".join(x.split()[:3]) for x in load if x) + "\n\n" + "\n".join(lines) + "\n"
)
print("\n".join(lines))
PYEOF
