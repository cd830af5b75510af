"""Features that tell in-scope questions from out-of-scope ones, per question, as the pipeline sees
them (retrieval through a running gateway's /v1/rag/search, sentences embedded in this process
with the default embedding model). For choosing the "not in the documents" rules on the tuning
corpora only.

    python benchmarks/rag/scope_probe.py --url URL --collection git --questions Q.jsonl [--out-of-scope OOS.txt] -o out.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx
from support_check import local_embedder

from nanoserve.rag.extractive import candidates, pick_scores
from nanoserve.rag.scope import unknown_names
from nanoserve.rag.text import containment


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--collection", required=True)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--out-of-scope", type=Path)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--output", "-o", type=Path)
    args = parser.parse_args()
    qs = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    if args.out_of_scope:
        qs += [
            {"query": line.strip(), "relevant": []}
            for line in args.out_of_scope.read_text().splitlines()
            if line.strip()
        ]
    embed = local_embedder()
    rows = []
    with httpx.Client(base_url=args.url, timeout=120) as client:
        for q in qs:
            r = client.post(
                "/v1/rag/search", json={"collection": args.collection, "query": q["query"], "top_k": 30}
            )
            r.raise_for_status()
            found = r.json()
            top = found["results"][: args.top_k]
            contexts = [c["text"] for c in top]
            cands = candidates(contexts)
            qvec, *cvecs = embed([q["query"], *[c.text for c in cands]])
            scores = sorted(pick_scores(q["query"], qvec, cands, cvecs), reverse=True)
            rows.append({
                "query": q["query"],
                "in_scope": bool(q["relevant"]),
                "intent": found["intent"],
                "best_similarity": found["best_similarity"],
                "pick_best": round(scores[0][0], 4) if scores else 0.0,
                "coverage_top": round(containment(q["query"], " ".join(contexts)), 4),
                "unknown_names": unknown_names(q["query"], [c["text"] + " " + (c["section"] or "") for c in found["results"]]),
                "top_documents": [c["document"] for c in top],
            })  # fmt: skip
    for row in rows:
        print(json.dumps(row))
    if args.output:
        args.output.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
