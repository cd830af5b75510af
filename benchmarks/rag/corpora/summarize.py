"""The table of one evaluation run (benchmarks/rag/results/runs/<run>/): one row per corpus.

python benchmarks/rag/corpora/summarize.py benchmarks/rag/results/runs/<run> [--strategy auto]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CORPORA = (("git", "tuning"), ("debian", "tuning"), ("postgres", "held out"))


def fmt(value: object) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument(
        "--strategy", default="auto", help="the retrieval row to show (auto: the pipeline's routing)"
    )
    args = parser.parse_args()
    head = ["corpus", "role", "questions", "recall@5", "MRR", "nDCG@10", "cites relevant", "false refusals",
            "out-of-scope declined", "refusal precision", "generated/extractive/refused", "ms/query (p50)"]  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for corpus, role in CORPORA:
        path = args.run / f"{corpus}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        r = result["strategies"].get(args.strategy, {})
        a = result.get("answers", {})
        modes = a.get("answer_modes", {})
        latency = a.get("latency_ms", {})
        total = latency.get("total", {}).get("p50")
        n = f"{a['in_scope']}+{a['out_of_scope']}" if a else str(r.get("questions", ""))
        row = [corpus, role, n, fmt(r.get("recall@5")), fmt(r.get("mrr")), fmt(r.get("ndcg@10")),
               fmt(a.get("cites_relevant")), fmt(a.get("false_refusal_rate")), fmt(a.get("out_of_scope_declined")),
               fmt(a.get("refusal_precision")),
               "/".join(str(modes.get(m, 0)) for m in ("generated", "extractive", "refused")) if a else "",
               fmt(round(total)) if total else ""]  # fmt: skip
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
