"""Replay the recorded generations of an eval run through variants of the cite step.

The cite step (``pipeline.settle_answer``: the support check, the choice of the chunk each sentence
cites, the extractive fallback) is cheap; the generation before it is not. This reads the traces of
an eval run from a gateway's traces.db (the raw generation, the context chunks and their
documents), settles each answer again under each variant, with the embedding model in this process
(``support_check.local_embedder``, the vectors the pipeline uses), and prints per variant the
answer modes and the in-scope questions whose answer cites a relevant document, side by side on
the same generations. Tuning corpora only (never the held-out one).

    python benchmarks/rag/replay_cite.py TRACES_DB COLLECTION QUESTIONS.jsonl [--run RUN.json] [-o OUT.json]

``--run``: the traces of that eval run (``nanoserve rag eval -o RUN.json``: its trace ids), not the
latest trace of each question.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from replay_generation import from_traces_db
from support_check import local_embedder

from nanoserve.rag.config import RagConfig
from nanoserve.rag.pipeline import settle_answer

BASE = RagConfig().model_dump()

# name -> the RagConfig settings of the cite step that differ from the defaults
VARIANTS: dict[str, dict[str, Any]] = {
    "prefer_quote_score off (before)": {"prefer_quote_score": None},
    "prefer_quote_score 0.7": {"prefer_quote_score": 0.7},
    "prefer_quote_score 0.8 (after: the default)": {"prefer_quote_score": 0.8},
    "prefer_quote_score 0.9": {"prefer_quote_score": 0.9},
    "prefer_quote_score 1.0": {"prefer_quote_score": 1.0},
    "prefer_quote_score 1.1": {"prefer_quote_score": 1.1},
    "every answer extractive (the generation dropped)": {"_drop_generation": True},
}


def replay(run: dict[str, Any], variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    local = local_embedder()
    cache: dict[str, list[float]] = {}

    async def embed(texts: Sequence[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            cache.update(zip(missing, local(missing)))
        return [cache[t] for t in texts]

    async def go() -> list[dict[str, Any]]:
        rows = []
        for q in run["per_question"]:
            trace = q["answer"]["trace"]
            if trace.get("generated") is None:
                continue  # declined before generation: no variant changes it
            contexts = [c["text"] for c in trace["retrieved"]]
            documents = [c["document"] for c in trace["retrieved"]]
            (qvec,) = await embed([q["query"]])
            row: dict[str, Any] = {
                "query": q["query"],
                "relevant": q["relevant"],
                "context_documents": documents,
                "recorded_mode": trace["answer_mode"],
                "generated": trace["generated"],
                "variants": {},
            }
            for name, settings in variants.items():
                settings = dict(settings)
                generated = "" if settings.pop("_drop_generation", False) else trace["generated"]
                config = RagConfig(**{**BASE, **settings})
                mode, cited = await settle_answer(q["query"], qvec, generated, contexts, embed, config)
                docs = sorted({documents[c.context_index] for c in cited.citations}) if cited else []
                row["variants"][name] = {
                    "mode": mode,
                    "answer": cited.text if cited else None,
                    "cited": docs,
                    "cites_relevant": bool(set(docs) & set(q["relevant"])),
                }
            rows.append(row)
        return rows

    rows = asyncio.run(go())
    summary = {}
    for name in variants:
        vs = [r["variants"][name] for r in rows]
        in_scope = [v for v, r in zip(vs, rows) if r["relevant"]]
        out_scope = [v for v, r in zip(vs, rows) if not r["relevant"]]
        summary[name] = {
            "in_scope_citing_relevant": f"{sum(v['cites_relevant'] for v in in_scope)}/{len(in_scope)}",
            "in_scope_modes (generated/extractive/refused)": "/".join(
                str(sum(v["mode"] == m for v in in_scope)) for m in ("generated", "extractive", "refused")
            ),
            "out_of_scope_answered": f"{sum(v['mode'] != 'refused' for v in out_scope)}/{len(out_scope)}",
        }
    return {"summary": summary, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("traces_db", type=Path)
    parser.add_argument("collection")
    parser.add_argument("questions", type=Path)
    parser.add_argument("--run", type=Path, help="an eval run's JSON: replay its traces")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    ids = None
    if args.run:
        ids = {q["answer"]["trace_id"] for q in json.loads(args.run.read_text())["per_question"]}
    run = from_traces_db(args.traces_db, args.collection, args.questions, ids)
    result = replay(run, VARIANTS)
    print(json.dumps(result["summary"], indent=1))
    if args.output:
        args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
