"""Second-stage rerankers over the first stage's best candidates (``rag.rerank_model``, else
``rag.reranker``).

The first stage (fusion, document diversity, values) orders ``rag.rerank_candidates`` chunks; a
reranker scores each against the question, and the final order is a weighted reciprocal-rank
fusion of the first-stage order and the reranker's (``rag.rerank_weight`` for the reranker's), so a
reranker refines rather than replaces. A configured rerank model (``kind: rerank``, a cross-encoder
served at ``/v1/rerank``) scores each candidate's heading and text. Without one, what the two default
models can do:

* ``sentences``: the embedding model as a late-interaction scorer: the best cosine between the
  question and any one sentence of the chunk (or its heading). A chunk embedding averages
  everything the chunk says; the one sentence that answers stands out here.
* ``generation``: the generation model as a pointwise judge: "does this passage answer the
  question? yes or no" (temperature 0, one token); yes ranks first.

Measured on the benchmarks/rag corpora (docs/rag.md): kept only where they raise the held-out one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, Protocol

from nanoserve.rag.ranking import reciprocal_rank_fusion
from nanoserve.rag.store.base import StoredChunk
from nanoserve.rag.text import cosine, sentences

Reranker = Literal["none", "sentences", "generation"]
EmbedFn = Callable[[Sequence[str]], Awaitable[list[list[float]]]]
JudgeFn = Callable[[str, StoredChunk], Awaitable[bool]]


class RerankClient(Protocol):
    async def rerank(self, model: str, query: str, documents: Sequence[str]) -> list[float]: ...


MAX_SENTENCES_PER_CHUNK = 8
JUDGE_PROMPT = (
    "Does the passage answer the question? Reply with one word: yes or no.\n\n"
    "Passage ({header}): {text}\n\nQuestion: {query}"
)


def heading(chunk: StoredChunk) -> str:
    return chunk.title + (f" > {chunk.section}" if chunk.section else "")


async def sentence_scores(
    query_vec: Sequence[float], chunks: Sequence[StoredChunk], embed: EmbedFn
) -> list[float]:
    """Per chunk: the best cosine of the question with its heading or any of its sentences."""
    units: list[list[str]] = []
    for chunk in chunks:
        parts = [s for s in sentences(chunk.text) if len(s) >= 20][:MAX_SENTENCES_PER_CHUNK]
        units.append([heading(chunk), *parts])
    vecs = await embed([u for unit in units for u in unit])
    out, i = [], 0
    for unit in units:
        out.append(max(cosine(query_vec, v) for v in vecs[i : i + len(unit)]))
        i += len(unit)
    return out


def passage(chunk: StoredChunk) -> str:
    """What a cross-encoder reads of a chunk: its heading, then its text."""
    return f"{heading(chunk)}\n{chunk.text}"


async def model_scores(
    query: str, chunks: Sequence[StoredChunk], client: RerankClient, model: str
) -> list[float]:
    """Per chunk: the rerank model's relevance score (``/v1/rerank``)."""
    return await client.rerank(model, query, [passage(c) for c in chunks])


async def judge_scores(query: str, chunks: Sequence[StoredChunk], judge: JudgeFn) -> list[float]:
    return [1.0 if await judge(query, chunk) else 0.0 for chunk in chunks]


def fuse(first_stage: Sequence[int], scores: Sequence[float], weight: float) -> list[int]:
    """Indexes 0..n-1 (first-stage order) reordered by RRF of that order and ``scores`` (higher
    is better; ties keep the first-stage order)."""
    by_score = sorted(first_stage, key=lambda i: (-scores[i], first_stage.index(i)))
    fused = reciprocal_rank_fusion([list(first_stage), by_score], weights=(1.0, weight))
    return [i for i, _ in fused]
