"""Calibration of the RAG pipeline's scores, on the tuning corpora only.

gate: the "not in the documents" gate, the best query-chunk cosine of in-scope questions (the
eval set) against out-of-scope ones, on a collection served by a running gateway:

    python benchmarks/rag/calibrate.py gate --url URL --collection C --questions Q.jsonl --out-of-scope OOS.txt

quality: the answer quality score. Reads answers labelled right or wrong by reading them
(benchmarks/rag/answer-labels.jsonl: query, answer, the context chunks, "right"), scores each
dimension with the default embedding model in this process (as the pipeline does), reports the
ROC AUC of every dimension and of the current overall score, and fits the logistic regression
over the dimensions given (``--keep``) whose coefficients are nanoserve.rag.quality.CALIBRATION:

    python benchmarks/rag/calibrate.py quality benchmarks/rag/answer-labels.jsonl --keep relevance,grounding
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
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


def quality_rows(labels: list[dict]) -> list[dict[str, float]]:  # type: ignore[type-arg]
    """Every dimension of every labelled answer, scored as the pipeline scores it."""
    from support_check import local_embedder

    from nanoserve.rag.citations import split_answer
    from nanoserve.rag.quality import DIMENSIONS, SCORERS, QualityInput
    from nanoserve.rag.text import strip_citations

    embed = local_embedder()
    rows = []
    for ex in labels:
        sentences = [strip_citations(s) for s in split_answer(ex["answer"])]
        vecs = embed([ex["query"], ex["answer"], *sentences, *ex["contexts"]])
        n = len(sentences)
        q = QualityInput(
            ex["query"], ex["answer"], ex["contexts"], vecs[0], vecs[1], vecs[2 : 2 + n], vecs[2 + n :]
        )
        rows.append({name: SCORERS[name](q) for name in DIMENSIONS})
    return rows


def quality_main(argv: list[str]) -> None:
    from nanoserve.rag.quality import CALIBRATION, DIMENSIONS, fit_calibration, roc_auc

    parser = argparse.ArgumentParser(prog="calibrate.py quality")
    parser.add_argument("labels", type=Path)
    parser.add_argument("--keep", default=",".join(DIMENSIONS), help="dimensions the fit uses")
    parser.add_argument("--l2", type=float, default=1.0)
    parser.add_argument("--output", "-o", type=Path)
    args = parser.parse_args(argv)
    labels = [json.loads(line) for line in args.labels.read_text().splitlines() if line.strip()]
    rows = quality_rows(labels)
    right = [bool(ex["right"]) for ex in labels]
    keep = [d for d in args.keep.split(",") if d]
    fitted = fit_calibration(rows, right, keep, l2=args.l2)
    auc = {d: round(roc_auc([r[d] for r in rows], right), 3) for d in DIMENSIONS}
    auc["overall (committed CALIBRATION)"] = round(
        roc_auc([CALIBRATION.probability(r) for r in rows], right), 3
    )
    auc["overall (this fit)"] = round(roc_auc([fitted.probability(r) for r in rows], right), 3)
    # leave-one-out: the fit's AUC on answers it was not fitted on
    loo = [
        fit_calibration(rows[:i] + rows[i + 1 :], right[:i] + right[i + 1 :], keep, l2=args.l2).probability(
            rows[i]
        )
        for i in range(len(rows))
    ]
    auc["overall (this fit, leave-one-out)"] = round(roc_auc(loo, right), 3)
    by_corpus: dict[str, list[bool]] = {}
    for ex, y in zip(labels, right):
        by_corpus.setdefault(ex["corpus"], []).append(y)
    result = {
        "answers": len(labels),
        "right": sum(right),
        "by_corpus": {c: {"answers": len(v), "right": sum(v)} for c, v in by_corpus.items()},
        "roc_auc": auc,
        "fit": {"dimensions": keep, "l2": args.l2, "intercept": round(fitted.intercept, 4),
                "weights": {d: round(w, 4) for d, w in fitted.weights.items()}},
    }  # fmt: skip
    print(f"{len(labels)} labelled answers, {sum(right)} right")
    for name, value in auc.items():
        print(f"  ROC AUC {name:<36}{value:.3f}")
    print(json.dumps(result["fit"]))
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")


def main() -> None:
    if sys.argv[1:2] == ["quality"]:
        quality_main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["gate"]:
        sys.argv.pop(1)
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
