"""Collect what labelling needs from a `nanoserve rag eval` run: per answered question the
generated text, the final answer, its mode and citations, and the context chunks (from the
gateway's traces), one JSON object per line, for reading and labelling by hand.

    python benchmarks/rag/collect.py RUN/git.json --corpus git --url URL > answers-git.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    run = json.loads(args.run.read_text())
    with httpx.Client(base_url=args.url, timeout=60) as client:
        for q in run["per_question"]:
            answer = q.get("answer")
            if not answer:
                continue
            trace = client.get(f"/v1/rag/traces/{answer['trace_id']}").json()
            print(json.dumps({
                "corpus": args.corpus, "query": q["query"], "relevant": q["relevant"],
                "mode": answer["mode"], "generated": trace.get("generated"), "answer": answer["text"],
                "cited": answer["cited"], "dimensions": answer.get("dimensions"),
                "best_similarity": None, "intent": (trace.get("intent") or {}).get("name"),
                "contexts": [{"document": c["document"], "text": c["text"], "citation": c["citation"]}
                             for c in trace.get("retrieved", [])],
            }))  # fmt: skip


if __name__ == "__main__":
    main()
