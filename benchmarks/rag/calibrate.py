"""Calibrate the "not in the documents" gate: the best query-chunk cosine of in-scope questions
(the eval set) against out-of-scope ones, on a collection served by a running gateway.

    python benchmarks/rag/calibrate.py --url URL --collection C --questions Q.jsonl --out-of-scope OOS.txt
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import httpx


def probe(client: httpx.Client, collection: str, query: str) -> tuple[float, str]:
    """(best query-chunk cosine, intent) as the pipeline sees them."""
    r = client.post("/v1/rag/search", json={"collection": collection, "query": query, "top_k": 1})
    r.raise_for_status()
    return float(r.json()["best_similarity"]), r.json()["intent"]


def answered(best: float, intent: str, threshold: float, out_of_scope_threshold: float) -> bool:
    """The pipeline's gate (nanoserve.rag.pipeline.answerable)."""
    return best >= threshold and not (intent == "out-of-scope" and best < out_of_scope_threshold)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--collection", required=True)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--out-of-scope", type=Path, required=True)
    parser.add_argument("--out-of-scope-threshold", type=float, default=0.45)
    parser.add_argument("--output", "-o", type=Path)
    args = parser.parse_args()
    inside = [json.loads(line)["query"] for line in args.questions.read_text().splitlines() if line.strip()]
    outside = [line.strip() for line in args.out_of_scope.read_text().splitlines() if line.strip()]
    with httpx.Client(base_url=args.url, timeout=120) as client:
        ins = [probe(client, args.collection, q) for q in inside]
        outs = [probe(client, args.collection, q) for q in outside]
    oos = args.out_of_scope_threshold
    rows = []
    for threshold in [x / 100 for x in range(10, 61, 5)]:
        kept = sum(answered(b, i, threshold, oos) for b, i in ins) / len(ins)
        refused = sum(not answered(b, i, threshold, oos) for b, i in outs) / len(outs)
        rows.append(
            {
                "threshold": threshold,
                "in_scope_answered": round(kept, 3),
                "out_of_scope_refused": round(refused, 3),
            }
        )
    best_in, best_out = [b for b, _ in ins], [b for b, _ in outs]
    result = {
        "out_of_scope_threshold": oos,
        "in_scope": {"n": len(ins), "min": round(min(best_in), 3), "median": round(statistics.median(best_in), 3),
                     "intent_out_of_scope": sum(i == "out-of-scope" for _, i in ins)},
        "out_of_scope": {"n": len(outs), "max": round(max(best_out), 3), "median": round(statistics.median(best_out), 3),
                         "intent_out_of_scope": sum(i == "out-of-scope" for _, i in outs)},
        "thresholds": rows,
    }  # fmt: skip
    print(f"min_similarity (out_of_scope_similarity {oos})")
    print(f"{'threshold':>10}{'in-scope answered':>20}{'out-of-scope refused':>23}")
    for row in rows:
        print(
            f"{row['threshold']:>10.2f}{row['in_scope_answered']:>20.3f}{row['out_of_scope_refused']:>23.3f}"
        )
    print(json.dumps({k: v for k, v in result.items() if k != "thresholds"}))
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
