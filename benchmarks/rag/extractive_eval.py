"""The pipeline's answers without the generation model, on every question of a corpus.

Generation with the 135M model on this 2-core machine under load took 100-300 s a question (the
gateway gives up at 300 s), too slow to answer every question of three corpora in one session.
This measures the rest of the answer path on all of them: retrieval through a running gateway
(/v1/rag/search, the pipeline's routing, the top ``rag.top_k`` chunks as context), the gate
(similarity, out-of-scope intent, unknown names: ``pipeline.answerable``), then the extractive
answer with the support check, exactly as ``QueryPipeline._extract`` builds it when the generated
answer is dropped. Prints answers citing a relevant document, false refusals, out-of-scope
questions declined and refusal precision, and writes every answer as JSON.

    python benchmarks/rag/extractive_eval.py URL COLLECTION QUESTIONS.jsonl OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
from support_check import local_embedder

from nanoserve.rag import extractive
from nanoserve.rag.citations import attach_citations, split_answer
from nanoserve.rag.config import RagConfig
from nanoserve.rag.pipeline import answerable
from nanoserve.rag.scope import unknown_names
from nanoserve.rag.text import strip_citations


def answer_all(url: str, coll: str, qfile: str) -> list[dict]:  # type: ignore[type-arg]
    embed = local_embedder()
    cfg = RagConfig()
    rows = []
    qs = [json.loads(line) for line in Path(qfile).read_text().splitlines() if line.strip()]
    with httpx.Client(base_url=url, timeout=600) as client:
        for q in qs:
            r = client.post(
                "/v1/rag/search", json={"collection": coll, "query": q["query"], "top_k": cfg.candidates}
            ).json()
            texts = [f"{c['section'] or ''} {c['text']}" for c in r["results"]]
            top = r["results"][: cfg.top_k]
            ctx = [c["text"] for c in top]
            gate = answerable(r["intent"], r["best_similarity"], cfg, unknown_names(q["query"], texts))
            row = {"corpus": coll, "query": q["query"], "relevant": q["relevant"], "gate": gate,
                   "intent": r["intent"], "best_similarity": r["best_similarity"],
                   "contexts": ctx, "documents": [c["document"] for c in top]}  # fmt: skip
            if gate:
                (qvec,) = embed([q["query"]])
                cands = extractive.candidates(ctx)
                picked = (
                    extractive.pick(q["query"], qvec, cands, embed([c.text for c in cands])) if cands else []
                )
                if picked:
                    text = extractive.compose(picked)
                    sents = [strip_citations(s) for s in split_answer(text)]
                    vecs = embed([*sents, *ctx])
                    cited = attach_citations(
                        text, ctx, sentence_vecs=vecs[: len(sents)], context_vecs=vecs[len(sents) :],
                        query=q["query"], drop_unsupported=True,
                    )  # fmt: skip
                    if cited.citations:
                        row["answer"] = cited.text
                        row["cited"] = sorted({top[c.context_index]["document"] for c in cited.citations})
            rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict:  # type: ignore[type-arg]
    ins = [r for r in rows if r["relevant"]]
    outs = [r for r in rows if not r["relevant"]]
    declined = [r for r in rows if not r.get("answer")]
    cites = sum(1 for r in ins if r.get("answer") and set(r["cited"]) & set(r["relevant"]))
    return {
        "in_scope": len(ins), "out_of_scope": len(outs),
        "cites_relevant": round(cites / len(ins), 4),
        "false_refusal_rate": round(sum(1 for r in ins if not r.get("answer")) / len(ins), 4),
        "out_of_scope_declined": round(sum(1 for r in outs if not r.get("answer")) / len(outs), 4) if outs else None,
        "refusal_precision": round(sum(1 for r in declined if not r["relevant"]) / len(declined), 4) if declined else None,
    }  # fmt: skip


def main() -> None:
    url, coll, qfile, out = sys.argv[1:5]
    rows = answer_all(url, coll, qfile)
    result = {"collection": coll, "questions_file": qfile, "answers": summary(rows), "per_question": rows}
    print(json.dumps(result["answers"]))
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
