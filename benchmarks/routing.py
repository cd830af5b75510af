"""What routing costs per request: the prompt's block hashes plus the replica choice.

    .venv/bin/python benchmarks/routing.py            # prints a table and writes results/routing.json

Measured in the gateway's own terms: the work ``api/affinity.py`` and ``ReplicaGroup.choose`` do
for one request (hashing the conversation's text into blocks, matching them against the prefix
table, choosing among the ready replicas, recording the blocks). Best of 5 rounds of 2,000 calls.
"""

from __future__ import annotations

import json
import random
import sys
import timeit
from pathlib import Path

from nanoserve.orchestrator.router import Affinity, Candidate, PrefixTable, choose, prefix_blocks

ROUNDS, CALLS = 5, 2000
SYSTEM = "You are a helpful assistant for a hardware shop; answer briefly and politely. " * 16


def route_once(table: PrefixTable, candidates: list[Candidate], text: str, rng: random.Random) -> None:
    blocks = prefix_blocks(text)
    replica = choose(candidates, Affinity(prefix_blocks=blocks), table.seen, rng=rng)
    assert replica is not None
    table.record(blocks, replica)


def main() -> None:
    rows = []
    rng = random.Random(0)
    for replicas in (2, 4, 8):
        for chars in (200, 1300, 8000):
            table = PrefixTable()
            candidates = [Candidate(i, rng.randrange(8)) for i in range(replicas)]
            for i in range(2000):  # a warm table: many conversations seen before
                route_once(table, candidates, f"{SYSTEM[: chars // 2]} question {i} " * 2, rng)
            text = (SYSTEM * 8)[:chars]

            def one(
                table: PrefixTable = table, candidates: list[Candidate] = candidates, text: str = text
            ) -> None:
                route_once(table, candidates, text, rng)

            best = min(timeit.repeat(one, number=CALLS, repeat=ROUNDS))
            rows.append(
                {"replicas": replicas, "prompt_chars": chars, "us_per_request": round(best / CALLS * 1e6, 1)}
            )
    print(f"{'replicas':>8} {'prompt chars':>12} {'µs/request':>10}")
    for row in rows:
        print(f"{row['replicas']:>8} {row['prompt_chars']:>12} {row['us_per_request']:>10}")
    out = Path(__file__).parent / "results" / "routing.json"
    out.write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
