"""TTFT of a repeated long system prompt: first request (cold) versus the next one (cached).

Each pair uses a fresh ~``--system-words``-token system prompt (seeded random words, one token
each) and two different short user questions; both requests stream with ``max_tokens`` small.
The first pays the whole prefill, the second should reuse the system prompt's KV cache.

    python benchmarks/prefix_cache.py --base-url http://127.0.0.1:8000 --model smollm2:135m \\
        --pairs 3 --json results/prefix-cache.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from nanoserve.bench.workload import random_text

QUESTIONS = ("What is the first word above?", "Summarize the text above in one line.")


def ttft(client: httpx.Client, model: str, system: str, question: str, max_tokens: int) -> dict[str, Any]:
    """Stream one chat request; seconds to the first content chunk, and the server's usage."""
    body = {
        "model": model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first: float | None = None
    usage: dict[str, Any] = {}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                continue
            data = json.loads(line[5:])
            delta = (data.get("choices") or [{}])[0].get("delta") or {}
            if first is None and delta.get("content"):
                first = time.perf_counter()
            usage = data.get("usage") or usage
    if first is None:
        raise SystemExit(f"error: no token came back from {client.base_url}")
    details = usage.get("prompt_tokens_details") or {}
    return {
        "ttft_ms": (first - start) * 1000,
        "prompt_tokens": usage.get("prompt_tokens"),
        "cached_tokens": details.get("cached_tokens"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="smollm2:135m")
    parser.add_argument("--system-words", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    pairs = []
    with httpx.Client(base_url=args.base_url.rstrip("/"), timeout=600) as client:
        ttft(client, args.model, "Warm up.", QUESTIONS[0], 2)  # loads the model, if it is not yet
        for _ in range(args.pairs):
            system = "You answer questions about this text. " + random_text(rng, args.system_words)
            cold, warm = (ttft(client, args.model, system, q, args.max_tokens) for q in QUESTIONS)
            pairs.append({"first": cold, "second": warm, "speedup": cold["ttft_ms"] / warm["ttft_ms"]})
            print(
                f"prompt {cold['prompt_tokens']} tokens: TTFT first {cold['ttft_ms']:.1f} ms, "
                f"second {warm['ttft_ms']:.1f} ms (cached {warm['cached_tokens']}), "
                f"{pairs[-1]['speedup']:.1f}x"
            )
    result = {
        "tool": "benchmarks/prefix_cache.py",
        "base_url": args.base_url,
        "model": args.model,
        "system_words": args.system_words,
        "pairs": pairs,
        "median_first_ttft_ms": statistics.median(p["first"]["ttft_ms"] for p in pairs),
        "median_second_ttft_ms": statistics.median(p["second"]["ttft_ms"] for p in pairs),
        "median_speedup": statistics.median(p["speedup"] for p in pairs),
    }
    print(f"median speedup {result['median_speedup']:.1f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
