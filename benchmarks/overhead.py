"""The gateway's own cost: one request through the gateway versus the same request to a worker.

Sequential non-streaming chat requests asking for one token, over one keep-alive connection to
each; blocks alternate between the two targets so drift in the machine's load hits both alike.
Overhead = p50 through the gateway - p50 straight to the worker. Meant for the mock engine
(``tokens_per_second: 0``), so the engine adds next to nothing to either side.

    python benchmarks/overhead.py --gateway http://127.0.0.1:8000 --worker http://127.0.0.1:8100 \\
        --model mock-chat --requests 400 --json results/overhead.json

``--keyed-gateway URL --api-key KEY`` adds a gateway that requires API keys (``auth.required``),
in the same alternation: its overhead is reported beside the first one's. ``--floor URL`` adds
benchmarks/proxy_floor.py relaying to the same worker: the least this stack's hop can cost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np

BLOCK = 50


def timed(client: httpx.Client, body: dict[str, object]) -> float:
    start = time.perf_counter()
    response = client.post("/v1/chat/completions", json=body)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    if response.json()["usage"]["completion_tokens"] != 1:
        raise SystemExit(f"error: {client.base_url} did not answer with one token")
    return elapsed * 1000


def summary(ms: list[float]) -> dict[str, float]:
    values = np.asarray(ms)
    return {
        "n": len(ms),
        "p50_ms": float(np.percentile(values, 50)),
        "p90_ms": float(np.percentile(values, 90)),
        "p99_ms": float(np.percentile(values, 99)),
        "mean_ms": float(values.mean()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", required=True, help="gateway URL")
    parser.add_argument("--worker", required=True, help="worker URL (same engine and options)")
    parser.add_argument("--keyed-gateway", help="a gateway with auth.required, sent --api-key")
    parser.add_argument("--api-key", help="the key for --keyed-gateway")
    parser.add_argument("--floor", help="benchmarks/proxy_floor.py relaying to --worker")
    parser.add_argument("--model", default="mock-chat")
    parser.add_argument("--requests", type=int, default=400, help="per target")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests per target")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    body: dict[str, object] = {
        "model": args.model,
        "messages": [{"role": "user", "content": "Say one word."}],
        "max_tokens": 1,
        "stream": False,
    }
    clients = {
        "gateway": httpx.Client(base_url=args.gateway, timeout=60),
        "worker": httpx.Client(base_url=args.worker, timeout=60),
    }
    if args.keyed_gateway:
        headers = {"authorization": f"Bearer {args.api_key}"}
        clients["keyed_gateway"] = httpx.Client(base_url=args.keyed_gateway, timeout=60, headers=headers)
    if args.floor:
        clients["floor"] = httpx.Client(base_url=args.floor, timeout=60)
    times: dict[str, list[float]] = {name: [] for name in clients}
    with contextlib.ExitStack() as stack:
        for client in clients.values():
            stack.enter_context(client)
        for client in clients.values():
            for _ in range(args.warmup):
                timed(client, body)
        while len(times["worker"]) < args.requests:
            for name, client in clients.items():
                n = min(BLOCK, args.requests - len(times[name]))
                times[name].extend(timed(client, body) for _ in range(n))
    result = {
        "tool": "benchmarks/overhead.py",
        "model": args.model,
        **{name: summary(ms) for name, ms in times.items()},
    }
    for name in (n for n in times if n != "worker"):
        prefix = "overhead" if name == "gateway" else f"{name}_overhead"
        result[f"{prefix}_p50_ms"] = result[name]["p50_ms"] - result["worker"]["p50_ms"]
        result[f"{prefix}_mean_ms"] = statistics.fmean(times[name]) - statistics.fmean(times["worker"])
        print(
            f"p50 {name} {result[name]['p50_ms']:.3f} ms, worker {result['worker']['p50_ms']:.3f} ms: "
            f"overhead {result[f'{prefix}_p50_ms']:.3f} ms"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
