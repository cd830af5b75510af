"""Replay the generated answers of an eval run, cut short, through the support check.

At temperature 0 the generation model decodes greedily, so the output of a shorter generation
(a stop sequence, fewer max_tokens) is a prefix of the longer one. This takes an eval run
(``nanoserve rag eval ... -o RUN.json``), reads each answered question's trace from the gateway
(the raw generation and the context chunks), cuts the generation at each variant, and runs the
pipeline's own support check (``QueryPipeline._cite``) and extractive fallback (``_extract``) on
it, with the gateway's embedding model: the answer mode and whether a relevant document is cited,
per variant, the same generations, side by side. Tuning corpora only (never the held-out one).

    python benchmarks/rag/replay_generation.py URL RUN.json [-o OUT.json]
    python benchmarks/rag/replay_generation.py URL QUESTIONS.jsonl --traces-db traces.db --collection C
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from nanoserve.rag.client import InferenceClient
from nanoserve.rag.pipeline import QueryPipeline, without_announcement
from nanoserve.rag.text import sentences


def first_paragraph(text: str) -> str:
    """What a ``stop: ["\\n\\n"]`` generation returns."""
    return text.split("\n\n", 1)[0]


def first_sentences(n: int) -> Callable[[str], str]:
    def cut(text: str) -> str:
        return " ".join(sentences(text)[:n])

    return cut


VARIANTS: dict[str, Callable[[str], str]] = {
    "as generated (before)": lambda text: text,
    "stop at a blank line": first_paragraph,
    "stop at a blank line, announcement dropped (after)": lambda text: without_announcement(
        first_paragraph(text)
    ),
    "first 2 sentences": first_sentences(2),
}


async def replay(url: str, run: dict, model: str) -> dict:  # type: ignore[type-arg]
    client = InferenceClient(url)
    rows = []
    cache: dict[str, list[float]] = {}  # each distinct text embedded once

    async def embed(texts: Sequence[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            cache.update(zip(missing, await client.embed(model, missing)))
        return [cache[t] for t in texts]

    try:
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:
            for q in run["per_question"]:
                a = q.get("answer") or {}
                trace = a.get("trace")
                if trace is None and a.get("trace_id"):
                    trace = (await http.get(f"/v1/rag/traces/{a['trace_id']}")).json()
                if not trace or trace.get("generated") is None:
                    continue  # declined before generation: no variant changes it
                contexts = [c["text"] for c in trace["retrieved"]]
                documents = [c["document"] for c in trace["retrieved"]]
                (qvec,) = await embed([q["query"]])
                row = {
                    "query": q["query"],
                    "relevant": q["relevant"],
                    "recorded_mode": a["mode"],
                    "variants": {},
                }
                for name, cut in VARIANTS.items():
                    text = cut(trace["generated"]).strip()
                    cited = await QueryPipeline._cite(q["query"], text, contexts, embed) if text else None
                    mode = "generated"
                    if cited is None:
                        cited = await QueryPipeline._extract(q["query"], qvec, contexts, embed)
                        mode = "extractive" if cited is not None else "refused"
                    docs = sorted({documents[c.context_index] for c in cited.citations}) if cited else []
                    row["variants"][name] = {
                        "mode": mode, "chars": len(text), "cited": docs,
                        "cites_relevant": bool(set(docs) & set(q["relevant"])),
                    }  # fmt: skip
                rows.append(row)
    finally:
        await client.aclose()
    summary = {}
    for name in VARIANTS:
        vs = [r["variants"][name] for r in rows]
        in_scope = [v for v, r in zip(vs, rows) if r["relevant"]]
        summary[name] = {
            "answered": len(vs),
            "generated": sum(v["mode"] == "generated" for v in vs),
            "extractive": sum(v["mode"] == "extractive" for v in vs),
            "refused": sum(v["mode"] == "refused" for v in vs),
            "in_scope_citing_relevant": f"{sum(v['cites_relevant'] for v in in_scope)}/{len(in_scope)}",
            "mean_chars": round(sum(v["chars"] for v in vs) / max(1, len(vs))),
        }
    return {"summary": summary, "rows": rows}


def from_traces_db(path: Path, collection: str, questions: Path, trace_ids: set[str] | None = None) -> dict:  # type: ignore[type-arg]
    """An eval-run-like dict from a gateway's traces.db (an eval stopped before it wrote its JSON):
    the latest trace of each question of ``questions`` asked of ``collection`` (of ``trace_ids``
    only, when given)."""
    labels = {q["query"]: q["relevant"] for q in map(json.loads, questions.read_text().splitlines()) if q}
    db = sqlite3.connect(path)
    rows = db.execute(
        "SELECT id, query, body FROM traces WHERE collection = ? ORDER BY created_at", (collection,)
    )
    latest = {
        query: json.loads(body)
        for id_, query, body in rows
        if query in labels and (trace_ids is None or id_ in trace_ids)
    }
    return {
        "collection": collection,
        "per_question": [
            {"query": q, "relevant": labels[q], "answer": {"mode": t["answer_mode"], "trace": t}}
            for q, t in latest.items()
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="a gateway with the collection (embeddings; traces unless --traces-db)")
    parser.add_argument("run", type=Path, help="an eval run's JSON, or with --traces-db the questions file")
    parser.add_argument("-o", "--output", type=Path)
    parser.add_argument("--traces-db", type=Path, help="read the traces from this traces.db instead")
    parser.add_argument("--collection", help="with --traces-db")
    args = parser.parse_args()
    if args.traces_db:
        run = from_traces_db(args.traces_db, args.collection, args.run)
    else:
        run = json.loads(args.run.read_text())
    model = httpx.get(f"{args.url}/v1/rag/collections/{run['collection']}", timeout=60).json()[
        "embedding_model"
    ]
    result = asyncio.run(replay(args.url, run, model))
    print(json.dumps(result["summary"], indent=1))
    if args.output:
        args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
