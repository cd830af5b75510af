"""Cold start: time to the first token of a stopped model, and where the time goes.

Each round, through a gateway (``--gateway``, serving the default chat model with its weights
already converted): unload the model, wait a second, stream one chat request and time its first
content token; then the same request warm. Alongside, the same worker command the gateway runs,
started here by hand: the interpreter and imports alone (``python -c 'import ...'``), spawn to
``/health`` answering 200 (polled every 5 ms), its first request's TTFT and a second one's.

    python benchmarks/cold_start.py --gateway http://127.0.0.1:8000 --weights DATA/weights/<digest>-q8_0.gguf \\
        --rounds 5 --json benchmarks/results/cold-start.json
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

MODEL = "smollm2:135m"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4, "stream": True}
IMPORTS = "import nanoserve.worker.main, nanoserve.engines.llamacpp.engine"


def ttft_ms(client: httpx.Client, url: str) -> float:
    start = time.perf_counter()
    with client.stream("POST", f"{url}/v1/chat/completions", json=BODY, timeout=120) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data:") and '"content":"' in line.replace(" ", ""):
                return (time.perf_counter() - start) * 1000
    raise SystemExit(f"error: {url} streamed no content")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def by_hand(client: httpx.Client, weights: Path) -> dict[str, float]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORTS], check=True)
    imports = (time.perf_counter() - start) * 1000
    port = free_port()
    cmd = [
        sys.executable, "-m", "nanoserve", "worker", "--engine", "llamacpp", "--model", str(weights),
        "--name", MODEL, "--kind", "chat", "--context-length", "2048", "--parallel", "8", "--threads", "2",
        "--options", '{"quantize": "keep"}', "--port", str(port),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if client.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise SystemExit("error: the worker exited while starting")
            time.sleep(0.005)
        healthy = (time.perf_counter() - start) * 1000
        first = ttft_ms(client, url)
        second = ttft_ms(client, url)
    finally:
        proc.terminate()
        proc.wait()
    return {
        "imports_ms": imports,
        "spawn_to_healthy_ms": healthy,
        "first_ttft_ms": first,
        "warm_ttft_ms": second,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--weights", type=Path, required=True, help="the Q8_0 file the gateway serves")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rounds = []
    with httpx.Client() as client:
        for r in range(args.rounds):
            client.post(f"{args.gateway}/models/unload", json={"model": MODEL}, timeout=60).raise_for_status()
            time.sleep(1.0)
            row = {"gateway_cold_ttft_ms": ttft_ms(client, args.gateway)}
            row["gateway_warm_ttft_ms"] = ttft_ms(client, args.gateway)
            row.update(by_hand(client, args.weights))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v:.0f}" for k, v in row.items()), file=sys.stderr)
            rounds.append(row)
    medians = {key: statistics.median(row[key] for row in rounds) for key in rounds[0]}
    for key, value in medians.items():
        print(f"{key:24} {value:8.0f} ms (median of {len(rounds)})")
    if args.json:
        report = {"command": " ".join(["python", *sys.argv]), "rounds": rounds, "median": medians}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
