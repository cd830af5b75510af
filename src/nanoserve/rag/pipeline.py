"""The query pipeline: each phase timed, every query traced.

embed      the question, with the collection's embedding model
intent     nearest intent prototypes (embedding model), then a route to a strategy
retrieve   semantic (vectors), keyword (full text) or hybrid (weighted reciprocal-rank fusion of
           both), document-level aggregation and diversity, the learned values (bounded), then
           the second-stage reranker over the best candidates when one is configured (rerank.py)
generate   a grounded answer from the numbered context chunks (generation model), ended at a
           blank line (``rag.stop``: the one- or two-sentence answer asked for, not the lists and
           loops a 135M model writes after it); skipped when the best match is below the
           calibrated threshold, or the question names something no candidate chunk mentions
           (scope.py): then the answer is NOT_IN_DOCUMENTS
cite       the support check: answer sentences matched to the chunks that support them (embedding
           model), unsupported and repeated sentences removed (citations.py); an answer left
           mostly unsupported is replaced by the extractive fallback (extractive.py), and one
           with nothing supported by "not in the documents"; a supported one also gives way to
           the extractive answer when a context sentence answers the question well enough
           (``rag.prefer_quote_score``): ``settle_answer``
quality    the named quality dimensions (quality.py)
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from nanoserve.rag import extractive, rerank
from nanoserve.rag.citations import ASSIGN_SUPPORT, CitedAnswer, attach_citations, split_answer
from nanoserve.rag.client import InferenceClient
from nanoserve.rag.config import RagConfig
from nanoserve.rag.extractive import MIN_GROUNDING
from nanoserve.rag.intent import OUT_OF_SCOPE, EmbedFn, IntentClassifier, IntentResult, Strategy, route
from nanoserve.rag.quality import QualityInput, score
from nanoserve.rag.ranking import Ranked, apply_values, diversify, reciprocal_rank_fusion
from nanoserve.rag.scope import unknown_names
from nanoserve.rag.store.base import StoredChunk, VectorStore
from nanoserve.rag.text import keyword_query_terms, strip_citations
from nanoserve.rag.traces import Trace, TraceChunk, TraceStore

log = logging.getLogger("nanoserve.rag")

NOT_IN_DOCUMENTS = "I could not find this in the documents."
SYSTEM_PROMPT = (
    "Answer the question using only the numbered passages. Be brief and factual: one or two "
    "sentences. Cite the passage you used like [1]."
)


@dataclass(slots=True)
class PhaseTimer:
    phases: list[dict[str, Any]] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phases.append({"name": name, "ms": round((time.perf_counter() - start) * 1e3, 2)})

    def as_dict(self) -> dict[str, float]:
        return {p["name"]: p["ms"] for p in self.phases}


@dataclass(frozen=True, slots=True)
class RetrievedChunk:
    chunk: StoredChunk
    rank: int
    score: float
    base_score: float


@dataclass(slots=True)
class Retrieval:
    strategy: Strategy
    chunks: list[RetrievedChunk]
    best_similarity: float  # best cosine between the query and any chunk of the collection
    unknown_names: list[str] = field(default_factory=list)  # names in none of the candidates (scope.py)


@dataclass(slots=True)
class QueryOutcome:
    trace: Trace
    citations: list[dict[str, Any]]
    timings_ms: dict[str, float]


def answerable(intent: str, best_similarity: float, config: RagConfig, unknown: Sequence[str] = ()) -> bool:
    """The calibrated gate: is anything in the collection close enough to answer from, and does
    the collection know every name the question is about (scope.py)?"""
    if best_similarity < config.min_similarity or unknown:
        return False
    return not (intent == OUT_OF_SCOPE and best_similarity < config.out_of_scope_similarity)


def build_messages(query: str, contexts: Sequence[StoredChunk], budget_chars: int) -> list[dict[str, str]]:
    """Numbered passages within ``budget_chars`` (each passage gets an equal share at most)."""
    share = max(200, budget_chars // max(1, len(contexts)))
    passages = []
    for n, chunk in enumerate(contexts, start=1):
        header = chunk.title + (f" > {chunk.section}" if chunk.section else "")
        text = chunk.text if len(chunk.text) <= share else chunk.text[:share].rsplit(" ", 1)[0] + " ..."
        passages.append(f"[{n}] ({header}) {text}")
    user = "Passages:\n" + "\n".join(passages) + f"\n\nQuestion: {query}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def without_announcement(generated: str) -> str:
    """The generation without closing sentences that announce what follows ("... you can use the
    following commands:"): the stop sequence ends the answer at a blank line, and what such a
    sentence promised was after it, so it says nothing by itself."""
    parts = split_answer(generated)
    while parts and strip_citations(parts[-1]).endswith(":"):
        parts.pop()
    return " ".join(parts)


def citation_records(cited: CitedAnswer, retrieved: Sequence[RetrievedChunk]) -> list[dict[str, Any]]:
    """The answer's citations as the API returns them, by number."""
    out = []
    for c in sorted(cited.citations, key=lambda c: c.n):
        r = retrieved[c.context_index]
        out.append({
            "n": c.n, "document": r.chunk.document, "source": r.chunk.source, "chunk_id": r.chunk.id,
            "section": r.chunk.section, "text": r.chunk.text, "score": r.score, "support": c.support,
        })  # fmt: skip
    return out


async def cite_generated(
    query: str, generated: str, contexts: Sequence[str], embed: EmbedFn
) -> CitedAnswer | None:
    """The generated answer with citations, or None when it is not grounded enough."""
    cited = await _with_citations(query, generated, contexts, embed)
    if cited is None:
        return None
    supported = sum(1 for v in cited.sentence_support if v >= ASSIGN_SUPPORT)
    if not cited.citations or supported / len(cited.sentence_support) < MIN_GROUNDING:
        return None
    return cited


Quotes = tuple[list[extractive.Candidate], list[list[float]]]


async def quote_candidates(contexts: Sequence[str], embed: EmbedFn) -> Quotes:
    """The context sentences the extractive answer is picked from, and their vectors."""
    cands = extractive.candidates(contexts)
    return cands, (await embed([c.text for c in cands]) if cands else [])


async def extract_answer(
    query: str,
    query_vec: Sequence[float],
    contexts: Sequence[str],
    embed: EmbedFn,
    quotes: Quotes | None = None,
) -> CitedAnswer | None:
    """The extractive fallback: the context sentences that best answer the question (``quotes``:
    ``quote_candidates`` already computed for these contexts)."""
    cands, vecs = quotes if quotes is not None else await quote_candidates(contexts, embed)
    picked = extractive.pick(query, query_vec, cands, vecs) if cands else []
    if not picked:
        return None
    cited = await _with_citations(query, extractive.compose(picked), contexts, embed)
    return cited if cited is not None and cited.citations else None


async def _with_citations(
    query: str, text: str, contexts: Sequence[str], embed: EmbedFn
) -> CitedAnswer | None:
    """``text`` with each sentence's citations (unsupported sentences dropped); None if it has none."""
    sentences = [strip_citations(s) for s in split_answer(text)]
    if not any(sentences):
        return None
    vecs = await embed([*sentences, *contexts])
    return attach_citations(
        text,
        contexts,
        sentence_vecs=vecs[: len(sentences)],
        context_vecs=vecs[len(sentences) :],
        query=query,
        drop_unsupported=True,
    )


async def settle_answer(
    query: str,
    query_vec: Sequence[float],
    generated: str,
    contexts: Sequence[str],
    embed: EmbedFn,
    config: RagConfig,
) -> tuple[str, CitedAnswer | None]:
    """The cite phase: (answer mode, the cited answer). The generated answer when grounded enough,
    else the extractive fallback, else nothing ("refused")."""
    cited = await cite_generated(query, without_announcement(generated), contexts, embed)
    quotes = None
    if cited is not None and config.prefer_quote_score is not None:
        quotes = await quote_candidates(contexts, embed)
        scores = extractive.pick_scores(query, query_vec, *quotes)
        if scores and max(scores)[0] >= config.prefer_quote_score:
            # a context sentence answers the question as it is asked: quote the documents
            quoted = await extract_answer(query, query_vec, contexts, embed, quotes)
            if quoted is not None:
                return "extractive", quoted
    if cited is not None:
        return "generated", cited
    cited = await extract_answer(query, query_vec, contexts, embed, quotes)
    return ("extractive" if cited is not None else "refused"), cited


class QueryPipeline:
    def __init__(
        self,
        store: VectorStore,
        traces: TraceStore,
        client: InferenceClient,
        config: RagConfig,
        classifier: IntentClassifier,
    ):
        self.store = store
        self.traces = traces
        self.client = client
        self.config = config
        self.classifier = classifier

    async def retrieve(
        self,
        collection: str,
        query: str,
        query_vec: Sequence[float],
        strategy: Strategy,
        top_k: int,
        embed: EmbedFn | None = None,
    ) -> Retrieval:
        n = max(self.config.candidates, top_k)
        dense = await asyncio.to_thread(self.store.dense_search, collection, query_vec, n)
        best = dense[0].score if dense else 0.0
        if strategy == "semantic":
            hits = [(h.chunk_id, h.document_id, h.score) for h in dense]
        else:
            terms = keyword_query_terms(query)
            keyword = await asyncio.to_thread(self.store.keyword_search, collection, terms, n)
            if strategy == "keyword":
                hits = [(h.chunk_id, h.document_id, h.score) for h in keyword]
            else:
                docs = {h.chunk_id: h.document_id for h in (*dense, *keyword)}
                fused = reciprocal_rank_fusion(
                    [[h.chunk_id for h in dense], [h.chunk_id for h in keyword]],
                    k=self.config.rrf_k,
                    weights=(self.config.dense_weight, self.config.keyword_weight),
                )
                hits = [(cid, docs[cid], s) for cid, s in fused]
        hits = diversify(hits, aggregate=self.config.document_aggregate, decay=self.config.document_decay)
        chunks = await asyncio.to_thread(self.store.get_chunks, [h[0] for h in hits])
        hits = [h for h in hits if h[0] in chunks]
        ranked: list[Ranked] = apply_values(
            [(c, d, max(0.0, s)) for c, d, s in hits],
            {cid: c.value for cid, c in chunks.items()},
            {c.document_id: c.document_value for c in chunks.values()},
            strength=self.config.value_strength,
        )
        ranked = await self._rerank(query, query_vec, ranked, chunks, embed)
        top = [
            RetrievedChunk(chunks[r.chunk_id], rank, round(r.score, 6), round(r.base_score, 6))
            for rank, r in enumerate(ranked[:top_k], start=1)
        ]
        texts = (f"{c.title} {c.section or ''} {c.text}" for c in chunks.values())
        return Retrieval(strategy, top, best, unknown_names(query, texts))

    async def _rerank(
        self,
        query: str,
        query_vec: Sequence[float],
        ranked: list[Ranked],
        chunks: dict[int, StoredChunk],
        embed: EmbedFn | None,
    ) -> list[Ranked]:
        """The first ``rerank_candidates`` reordered by the configured reranker (rerank.py)."""
        kind = "model" if self.config.rerank_model else self.config.reranker
        head, tail = ranked[: self.config.rerank_candidates], ranked[self.config.rerank_candidates :]
        if kind == "none" or len(head) < 2:
            return ranked
        candidates = [chunks[r.chunk_id] for r in head]
        if self.config.rerank_model:
            scores = await rerank.model_scores(query, candidates, self.client, self.config.rerank_model)
        elif kind == "sentences":
            if embed is None:
                return ranked
            scores = await rerank.sentence_scores(query_vec, candidates, embed)
        else:
            scores = await rerank.judge_scores(query, candidates, self._judge)
        order = rerank.fuse(list(range(len(head))), scores, self.config.rerank_weight)
        return [head[i] for i in order] + tail

    async def _judge(self, query: str, chunk: StoredChunk) -> bool:
        prompt = rerank.JUDGE_PROMPT.format(header=rerank.heading(chunk), text=chunk.text[:600], query=query)
        reply = await self.client.chat(
            self.config.generation_model, [{"role": "user", "content": prompt}], max_tokens=2, temperature=0.0
        )
        return reply.strip().lower().startswith("yes")

    async def run(
        self, collection: str, query: str, *, top_k: int | None = None, strategy: Strategy | None = None
    ) -> QueryOutcome:
        top_k = top_k or self.config.top_k
        info = await asyncio.to_thread(self.store.get_collection, collection)  # NotFound: no trace
        model = info.embedding_model
        started = time.perf_counter()
        timer = PhaseTimer()
        trace = Trace(id="tr_" + uuid.uuid4().hex, collection=collection, query=query)
        citations: list[dict[str, Any]] = []
        cache: dict[str, list[float]] = {}

        async def embed(texts: Sequence[str]) -> list[list[float]]:
            """Embeddings, each distinct text embedded once per query."""
            missing = [t for t in dict.fromkeys(texts) if t not in cache]
            if missing:
                cache.update(zip(missing, await self.client.embed(model, missing)))
            return [cache[t] for t in texts]

        try:
            with timer.phase("embed"):
                (query_vec,) = await embed([query])
            with timer.phase("intent"):
                intent: IntentResult = await self.classifier.classify(model, query_vec, self.embedder(model))
                chosen = route(query, intent.name, self.classifier.strategies, strategy)
            trace.intent = {"name": intent.name, "confidence": intent.confidence, "scores": intent.scores}
            trace.strategy, trace.route = chosen.strategy, chosen.reason
            with timer.phase("retrieve"):
                retrieval = await self.retrieve(collection, query, query_vec, chosen.strategy, top_k, embed)
            trace.retrieved = [
                TraceChunk(r.rank, r.chunk.id, r.chunk.document_id, r.chunk.document, r.chunk.section,
                           r.score, r.base_score, None, r.chunk.text)
                for r in retrieval.chunks
            ]  # fmt: skip
            trace.answerable = bool(retrieval.chunks) and answerable(
                intent.name, retrieval.best_similarity, self.config, retrieval.unknown_names
            )
            contexts = [r.chunk for r in retrieval.chunks]
            context_texts = [c.text for c in contexts]
            answer, cited = NOT_IN_DOCUMENTS, None
            if trace.answerable:
                with timer.phase("generate"):
                    trace.generated = await self.client.chat(
                        self.config.generation_model,
                        build_messages(query, contexts, self.config.context_chars),
                        max_tokens=self.config.max_tokens,
                        temperature=self.config.temperature,
                        **({"stop": self.config.stop} if self.config.stop else {}),
                    )
                with timer.phase("cite"):
                    trace.answer_mode, cited = await settle_answer(
                        query, query_vec, trace.generated, context_texts, embed, self.config
                    )
                if cited is not None:
                    answer = cited.text
                    citations = citation_records(cited, retrieval.chunks)
                    for c in cited.citations:
                        trace.retrieved[c.context_index].citation = c.n
            trace.answer_mode = trace.answer_mode or "refused"
            with timer.phase("quality"):
                sentences = [strip_citations(s) for s in split_answer(answer)]
                vecs = await embed([answer, *sentences, *context_texts])
                trace.quality = score(
                    QualityInput(
                        query, answer, context_texts, query_vec, vecs[0],
                        vecs[1 : 1 + len(sentences)], vecs[1 + len(sentences) :],
                    )
                )  # fmt: skip
            trace.answer = answer
            trace.status = "ok" if cited is not None else "refused"
        except BaseException as exc:
            trace.status = "error"
            trace.error = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
            raise
        finally:
            trace.phases = timer.phases
            trace.total_ms = round((time.perf_counter() - started) * 1e3, 2)
            await self._save(trace)
        return QueryOutcome(trace, citations, timer.as_dict())

    @staticmethod
    async def _cite(
        query: str, generated: str, contexts: Sequence[str], embed: EmbedFn
    ) -> CitedAnswer | None:
        """The generated answer with citations, or None when it is not grounded enough."""
        return await cite_generated(query, generated, contexts, embed)

    @staticmethod
    async def _extract(
        query: str, query_vec: Sequence[float], contexts: Sequence[str], embed: EmbedFn
    ) -> CitedAnswer | None:
        """The extractive fallback: the context sentences that best answer the question."""
        return await extract_answer(query, query_vec, contexts, embed)

    def embedder(self, model: str) -> Any:
        async def embed(texts: Sequence[str]) -> list[list[float]]:
            return await self.client.embed(model, texts)

        return embed

    async def _save(self, trace: Trace) -> None:
        try:
            await asyncio.to_thread(self.traces.save, trace)
        except Exception:  # a failing trace store must not fail the query itself
            log.exception("cannot save trace %s", trace.id)
