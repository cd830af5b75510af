"""Memory honesty: each default model's first estimate against its footprint measured after a
realistic workload (issue 18).

A gateway with the default models; the planner's first estimate is read from /models/status
before anything loads. Then the workloads: the chat model serves `parallel` concurrent streams
that fill their whole context (prompt and answer); the embedding model serves ingestion-like
traffic, concurrent requests of chunks of mixed lengths (the largest batches the engine forms). Unloading measures each worker
once more (the peak since its load), and that is compared with the estimate.

    .venv/bin/python benchmarks/memory_estimates.py [--rounds 4] [--only embedding]

Writes benchmarks/results/memory-estimates.json; with ``--only``, updates that kind's model in it
and keeps the other's row.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nanoserve.config import default_models
from tests.gateway import Gateway

WORDS = [
    "memory",
    "budget",
    "planner",
    "worker",
    "process",
    "engine",
    "batch",
    "token",
    "model",
    "context",
    "stream",
    "cache",
    "prefix",
    "replica",
    "gateway",
    "request",
    "queue",
    "latency",
    "throughput",
    "document",
    "chunk",
    "embedding",
    "vector",
    "search",
]


def status(gw: Gateway) -> dict[str, dict]:
    return {m["id"]: m for m in httpx.get(gw.url + "/models/status", timeout=60).json()["models"]}


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def chat_workload(gw: Gateway, model: str, streams: int, context: int, rng: random.Random) -> None:
    """Every slot's sequence filled to its context length: a prompt of token ids, then the rest
    generated (the most KV cache the engine will touch)."""

    def one(i: int) -> None:
        prompt = [rng.randrange(1000, 20000) for _ in range(context - 256)]
        body = {"model": model, "prompt": prompt, "max_tokens": 248, "ignore_eos": True, "stream": True}
        with httpx.stream("POST", gw.url + "/v1/completions", json=body, timeout=900) as r:
            r.raise_for_status()
            for _ in r.iter_bytes():
                pass

    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(one, range(streams)))


def embedding_workload(gw: Gateway, model: str, rounds: int, rng: random.Random) -> None:
    def one(i: int) -> None:
        chunks = [text(rng, rng.randint(5, 300)) for _ in range(8)]
        httpx.post(
            gw.url + "/v1/embeddings", json={"model": model, "input": chunks}, timeout=600
        ).raise_for_status()

    with ThreadPoolExecutor(16) as pool:
        for _ in range(rounds):
            list(pool.map(one, range(16)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4, help="rounds of 16 concurrent embedding requests")
    parser.add_argument("--only", choices=["chat", "embedding"], help="measure one default model")
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as data:
        gw = Gateway(Path(data), None, start_timeout=120)
        try:
            first = status(gw)
            chat, embed = (
                (m for m in first if first[m]["kind"] == "chat"),
                (m for m in first if first[m]["kind"] == "embedding"),
            )
            chat_id, embed_id = next(chat), next(embed)
            measured = [m for m in (chat_id, embed_id) if args.only in (None, first[m]["kind"])]
            estimates = {m: first[m]["estimated_mib"] for m in measured}
            started = time.perf_counter()
            for model in measured:
                httpx.post(gw.url + "/models/load", json={"model": model}, timeout=300).raise_for_status()
            after_load = {m: status(gw)[m]["measured_mib"] for m in measured}
            chat_config = next(m for m in default_models() if m.id == chat_id)
            if chat_id in measured:
                chat_workload(gw, chat_id, chat_config.parallel, chat_config.context_length, rng)
            if embed_id in measured:
                embedding_workload(gw, embed_id, args.rounds, rng)
            for model in measured:
                httpx.post(gw.url + "/models/unload", json={"model": model}, timeout=300).raise_for_status()
            final = status(gw)
            rows = {
                m: {
                    "estimated_mib": estimates[m],
                    "measured_after_load_mib": after_load[m],
                    "measured_after_workload_mib": final[m]["measured_mib"],
                    "error": round(estimates[m] / final[m]["measured_mib"] - 1, 3),
                }
                for m in measured
            }
        finally:
            gw.stop()
    out = Path(__file__).parent / "results" / "memory-estimates.json"
    seconds = round(time.perf_counter() - started, 1)
    result = {"rounds": args.rounds, "seconds": seconds, "models": rows}
    if args.only and out.exists():  # the other model's row stays, with its own run's facts
        previous = json.loads(out.read_text())
        runs = previous.get("runs", {"all": {"rounds": previous["rounds"], "seconds": previous["seconds"]}})
        result = {
            "runs": {**runs, args.only: {"rounds": args.rounds, "seconds": seconds}},
            "models": {**previous["models"], **rows},
        }
    out.write_text(json.dumps(result, indent=2) + "\n")
    for model, row in rows.items():
        print(
            f"{model}: estimated {row['estimated_mib']} MiB, measured {row['measured_after_load_mib']} MiB after "
            f"load and {row['measured_after_workload_mib']} MiB after the workload: {row['error']:+.1%}"
        )


if __name__ == "__main__":
    main()
