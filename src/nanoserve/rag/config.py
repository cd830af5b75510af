"""Settings of the ask-your-documents pipeline (the ``rag:`` section of the config file)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nanoserve.rag.intent import DEFAULT_INTENTS, STRATEGIES, IntentSpec, Strategy


class IntentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    strategy: Strategy = "hybrid"
    examples: list[str] = Field(min_length=1, description="prototype questions of this intent")


class RagConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    generation_model: str = "smollm2:135m"
    embedding_model: str = "all-minilm:l6-v2"
    store: Literal["sqlite", "pgvector"] = "sqlite"
    postgres_dsn: str | None = Field(default=None, description="libpq connection string for store: pgvector")
    top_k: int = Field(default=3, ge=1, le=50, description="chunks given to the generation model")
    candidates: int = Field(default=30, ge=1, le=500, description="chunks each search strategy returns")
    # Calibrated on benchmarks/rag (docs/rag.md): best query-chunk cosine below this = not answerable.
    min_similarity: float = Field(default=0.35, ge=-1, le=1)
    # An out-of-scope intent needs a closer match than that to be answered anyway.
    out_of_scope_similarity: float = Field(default=0.45, ge=-1, le=1)
    # hybrid retrieval: weighted reciprocal-rank fusion of the dense and keyword rankings, then
    # document-level aggregation and diversity (rag/ranking.py). Tuned on the benchmarks/rag
    # tuning corpora (git, debian); dense_weight 1.5 and document_aggregate 0.3 raised those but
    # lowered the held-out corpus, so the defaults leave them off (docs/rag.md)
    rrf_k: int = Field(default=60, ge=1, le=1000)
    dense_weight: float = Field(default=1.0, ge=0, le=10)
    keyword_weight: float = Field(default=1.0, ge=0, le=10)
    document_aggregate: float = Field(
        default=0.0, ge=0, le=5, description="weight of a document's next chunks"
    )
    document_decay: float = Field(default=1.0, gt=0, le=1, description="damping of a document's n-th chunk")
    # second stage over the best candidates (rag/rerank.py): none, sentences (embedding model),
    # generation (generation model as a yes/no judge)
    reranker: Literal["none", "sentences", "generation"] = "none"
    rerank_model: str | None = Field(
        default=None,
        description="a model of kind rerank (a cross-encoder): when set, the second stage is it, "
        "in place of `reranker` (docs/rerank.md)",
    )
    rerank_candidates: int = Field(default=20, ge=2, le=200)
    rerank_weight: float = Field(
        default=1.0, ge=0, le=10, description="the reranker's vote against the first stage's"
    )
    value_strength: float = Field(default=0.15, ge=0, lt=1, description="max relative score change by value")
    learning_rate: float = Field(default=0.3, gt=0, le=1)
    max_tokens: int = Field(default=96, ge=1, le=4096)
    # The answer asked for is one or two sentences; left alone the 135M model goes on past it
    # (lists of invented steps, the same sentence in a loop) until max_tokens, every token paid for
    # and then dropped by the support check. A blank line ends the answer (docs/rag.md).
    stop: list[str] = Field(
        default_factory=lambda: ["\n\n"], max_length=4, description="stop sequences of the generation"
    )
    # the cite step (rag/citations.py, rag/extractive.py); measured on the tuning corpora (docs/rag.md)
    prefer_quote_score: float | None = Field(
        default=0.8,
        ge=0,
        le=3,
        description="the generated answer is replaced by the extractive one when a context sentence "
        "scores at least this as an answer (extractive.pick_scores); null: off",
    )
    temperature: float = Field(default=0.0, ge=0, le=2)
    context_chars: int = Field(default=1800, ge=200, description="context budget of the prompt")
    chunk_max_chars: int = Field(default=800, ge=100, le=20_000)
    max_document_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # quotas (a 429 naming the quota when one is reached)
    max_collections: int = Field(default=100, ge=1, description="collections in the store")
    max_documents: int = Field(default=100_000, ge=1, description="documents in one collection")
    max_store_mib: int = Field(default=4096, ge=1, description="size of the store on disk (SQLite)")
    intents: list[IntentConfig] | None = Field(default=None, description="replaces the built-in intents")

    @model_validator(mode="after")
    def _check(self) -> RagConfig:
        if self.store == "pgvector" and not self.postgres_dsn:
            raise ValueError("store: pgvector needs postgres_dsn")
        if self.intents is not None and len({i.name for i in self.intents}) != len(self.intents):
            raise ValueError("intents: names must be unique")
        return self

    def intent_specs(self) -> tuple[IntentSpec, ...]:
        if self.intents is None:
            return DEFAULT_INTENTS
        return tuple(IntentSpec(i.name, i.strategy, tuple(i.examples)) for i in self.intents)


__all__ = ["STRATEGIES", "IntentConfig", "RagConfig"]
