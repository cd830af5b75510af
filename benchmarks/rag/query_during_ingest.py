"""A RAG query's embedding while bulk ingestion runs: is the one-text request held behind the bulk?

Against a running gateway (``nanoserve serve``) and its default embedding model, two phases:

  idle    one-text requests (a query's embedding, ~12 words) every ``--interval`` seconds, alone
  loaded  the same, while ``--bulk`` clients each send requests of ``--texts`` texts of
          ``--words`` words back to back (ingestion's requests: the default model's engine takes
          32 texts of up to 256 tokens, its max_batch_tokens of 8192, in one request)

and reports the one-text requests' latency (p50/p95/max) in each phase and the bulk requests'
throughput (texts/s). On a shared machine the CPU a worker gets swings from minute to minute: with
``--worker-pid`` (and ``--baseline-worker-pid``: the embedding worker processes, same machine) the
loaded phase also reports texts per worker CPU second (/proc), which the machine's load does not
move. With ``--baseline-url`` a second gateway (say one serving the code before a
change) is measured in the same run, the two alternated phase by phase, round by round, so both
see the same load on the machine. Texts are nanoserve.bench.workload's random words (nothing is
downloaded).

    python benchmarks/rag/query_during_ingest.py --url http://127.0.0.1:PORT \\
        [--baseline-url http://127.0.0.1:PORT2] [--worker-pid PID --baseline-worker-pid PID2] \\
        [--rounds 3] [--seconds 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from typing import Any

import httpx

from nanoserve.bench.workload import random_text


async def embed(client: httpx.AsyncClient, url: str, model: str, texts: list[str]) -> int:
    """POST /v1/embeddings; the prompt tokens of its usage."""
    response = await client.post(f"{url}/v1/embeddings", json={"model": model, "input": texts})
    response.raise_for_status()
    body = response.json()
    if len(body["data"]) != len(texts):
        raise RuntimeError(f"{len(body['data'])} vectors for {len(texts)} texts")
    return int(body.get("usage", {}).get("prompt_tokens", 0))


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 without one)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def phase(
    client: httpx.AsyncClient,
    url: str,
    args: argparse.Namespace,
    rng: random.Random,
    *,
    loaded: bool,
    worker_pid: int | None,
) -> dict[str, Any]:
    """One phase: queries every ``args.interval`` for ``args.seconds``, with the bulk load or not."""
    stop = asyncio.Event()
    bulk_texts = 0
    bulk_tokens: list[int] = []

    async def bulk_client(seed: int) -> None:
        nonlocal bulk_texts
        local = random.Random(seed)
        while not stop.is_set():
            texts = [random_text(local, args.words) for _ in range(args.texts)]
            bulk_tokens.append(await embed(client, url, args.model, texts))
            bulk_texts += len(texts)

    async def query(latencies: list[float]) -> None:
        started = time.perf_counter()
        await embed(client, url, args.model, [random_text(rng, 12)])
        latencies.append(time.perf_counter() - started)

    cpu = cpu_seconds(worker_pid)  # from the bulk's start to its last request's end
    bulk = [asyncio.create_task(bulk_client(rng.randrange(2**32))) for _ in range(args.bulk if loaded else 0)]
    if bulk:
        await asyncio.sleep(args.warmup)  # the bulk clients' requests queue up first
    latencies: list[float] = []
    queries = []
    started = time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        queries.append(asyncio.create_task(query(latencies)))
        await asyncio.sleep(args.interval)
    await asyncio.gather(*queries)
    bulk_seconds = time.perf_counter() - started + (args.warmup if bulk else 0)
    stop.set()
    done_before_stop = bulk_texts
    await asyncio.gather(*bulk)
    cpu = cpu_seconds(worker_pid) - cpu
    result: dict[str, Any] = {"queries": len(latencies), "latencies_s": latencies}
    if bulk:
        # texts finished while the queries ran (requests still in flight at the end are not counted)
        result["bulk_texts_per_s"] = done_before_stop / bulk_seconds
        result["bulk_request_tokens"] = statistics.mean(bulk_tokens) if bulk_tokens else 0
        if worker_pid is not None:  # every text embedded in the phase, the queries' too
            result["texts_per_worker_cpu_s"] = (bulk_texts + len(latencies)) / cpu
    return result


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    return {"n": len(ordered), "p50_ms": at(50), "p95_ms": at(95), "max_ms": ordered[-1] * 1000}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    targets = {"after": args.url, **({"before": args.baseline_url} if args.baseline_url else {})}
    pids = {"after": args.worker_pid, "before": args.baseline_worker_pid}
    keys = ("bulk_texts_per_s", "bulk_request_tokens", "texts_per_worker_cpu_s")
    raw: dict[str, dict[str, list[Any]]] = {
        name: {"idle": [], "loaded": [], **{key: [] for key in keys}} for name in targets
    }
    rng = random.Random(args.seed)
    async with httpx.AsyncClient(timeout=300) as client:
        for url in targets.values():  # warm up: the model loads at its first request
            await embed(client, url, args.model, ["warm up"])
            await embed(client, url, args.model, [random_text(rng, args.words) for _ in range(args.texts)])
        for round_ in range(args.rounds):
            order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
            for name in order:
                for loaded in (False, True):
                    result = await phase(
                        client, targets[name], args, rng, loaded=loaded, worker_pid=pids[name]
                    )
                    raw[name]["loaded" if loaded else "idle"].extend(result["latencies_s"])
                    for key in keys:
                        if key in result:
                            raw[name][key].append(result[key])
                    label = "loaded" if loaded else "idle"
                    stats = summary(result["latencies_s"])
                    extra = f", bulk {result['bulk_texts_per_s']:.1f} texts/s" if loaded else ""
                    if "texts_per_worker_cpu_s" in result:
                        extra += f", {result['texts_per_worker_cpu_s']:.1f} texts per worker CPU s"
                    print(
                        f"round {round_ + 1} {name:6} {label:6}  p50 {stats['p50_ms']:7.1f} ms  "
                        f"p95 {stats['p95_ms']:7.1f} ms  max {stats['max_ms']:7.1f} ms{extra}",
                        flush=True,
                    )
    results = {
        name: {
            "idle": summary(data["idle"]),
            "loaded": summary(data["loaded"]),
            "bulk_texts_per_s": statistics.mean(data["bulk_texts_per_s"]),
            "bulk_texts_per_s_by_round": data["bulk_texts_per_s"],
            "bulk_request_tokens": statistics.mean(data["bulk_request_tokens"]),
            "texts_per_worker_cpu_s_by_round": data["texts_per_worker_cpu_s"],
        }
        for name, data in raw.items()
    }
    return {
        "tool": "benchmarks/rag/query_during_ingest.py",
        "model": args.model,
        "bulk_clients": args.bulk,
        "texts_per_bulk_request": args.texts,
        "words_per_bulk_text": args.words,
        "query_interval_s": args.interval,
        "seconds_per_phase": args.seconds,
        "rounds": args.rounds,
        "load_average_at_end": os.getloadavg(),
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="the gateway measured ('after')")
    parser.add_argument("--baseline-url", help="a second gateway measured in the same run ('before')")
    parser.add_argument("--worker-pid", type=int, help="the embedding worker behind --url (CPU seconds)")
    parser.add_argument("--baseline-worker-pid", type=int, help="the one behind --baseline-url")
    parser.add_argument("--model", default="all-minilm")
    parser.add_argument("--bulk", type=int, default=3, help="concurrent bulk clients (ingestion: 3)")
    parser.add_argument("--texts", type=int, default=32, help="texts per bulk request")
    parser.add_argument("--words", type=int, default=250, help="words per bulk text (~1 token a word)")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between one-text requests")
    parser.add_argument("--seconds", type=float, default=20.0, help="of one-text requests per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="bulk load before the queries start")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    print(f"\n{'':7} {'idle p50/p95/max ms':>24}  {'loaded p50/p95/max ms':>24}  bulk texts/s  per CPU s")
    for name, r in report["results"].items():
        idle, loaded = r["idle"], r["loaded"]
        print(
            f"{name:7} {idle['p50_ms']:8.1f}{idle['p95_ms']:8.1f}{idle['max_ms']:8.1f}  "
            f"{loaded['p50_ms']:8.1f}{loaded['p95_ms']:8.1f}{loaded['max_ms']:8.1f}  "
            f"{r['bulk_texts_per_s']:12.1f}  "
            + " ".join(f"{v:.1f}" for v in r["texts_per_worker_cpu_s_by_round"])
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
