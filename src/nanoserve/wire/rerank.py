"""The rerank API's wire shapes, shared by the gateway and the workers. No heavy imports.

One request model reads the two dialects servers share (docs/rerank.md):

* Jina/Cohere, as llama-server, vLLM and Infinity serve it: ``query``, ``documents`` (strings, or
  objects with ``text`` as Cohere and vLLM take them), ``top_n``, ``return_documents`` → ``{id,
  model, object, results: [{index, relevance_score, document: {text}}], usage}``;
* Hugging Face TEI's ``/rerank``: ``query``, ``texts``, ``return_text``, ``raw_scores`` → a bare
  list ``[{index, score, text}]``. A request with ``texts`` is answered in TEI's shape, as
  llama-server does.

Results are sorted by score, best first, then cut to ``top_n``. Scores are relevance
probabilities (the sigmoid of the cross-encoder's logit, as TEI and vLLM report them) unless
``raw_scores`` asks for the logits.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

MAX_RERANK_DOCUMENTS = 1000  # Cohere's recommended ceiling per request


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RerankDocument(_Wire):
    text: str


class RerankRequest(_Wire):
    model: str = Field(min_length=1)
    query: str
    documents: list[str | RerankDocument] | None = Field(default=None, description="Jina/Cohere/vLLM")
    texts: list[str] | None = Field(default=None, description="TEI's name for the documents")
    top_n: int | None = Field(default=None, ge=1, description="results kept (default: all)")
    return_documents: StrictBool = True
    return_text: StrictBool = False  # TEI's return_documents
    raw_scores: StrictBool = False  # TEI: the logits instead of probabilities
    keep_alive: str | float | int | None = None
    priority: int | None = None

    @model_validator(mode="after")
    def _documents(self) -> RerankRequest:
        if (self.documents is None) == (self.texts is None):
            raise ValueError("send the documents to rank as 'documents' (or TEI's 'texts'), not both")
        n = len(self.inputs)
        if n == 0:
            raise ValueError("documents must not be empty")
        if n > MAX_RERANK_DOCUMENTS:
            raise ValueError(f"at most {MAX_RERANK_DOCUMENTS} documents per request; this one has {n}")
        return self

    @property
    def tei(self) -> bool:
        """Sent in TEI's dialect (``texts``): answered in it."""
        return self.texts is not None

    @property
    def inputs(self) -> list[str]:
        if self.texts is not None:
            return list(self.texts)
        return [d if isinstance(d, str) else d.text for d in self.documents or ()]

    def upstream_body(self) -> dict[str, Any]:
        """What a backend is sent: every document, scores only (the gateway sorts, cuts and
        attaches the documents, so each dialect is answered the same whatever serves it)."""
        return {
            "model": self.model,
            "query": self.query,
            "documents": self.inputs,
            "return_documents": False,
            "raw_scores": self.raw_scores,
        }


def probability(logit: float) -> float:
    """The sigmoid of a cross-encoder's logit, without overflow."""
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    e = math.exp(logit)
    return e / (1.0 + e)


def rerank_answer(
    req: RerankRequest, scores: Sequence[float], prompt_tokens: int, *, model: str
) -> dict[str, Any] | list[dict[str, Any]]:
    """The answer in the request's dialect: ``scores`` (one per document, in order) ranked best
    first (ties: the earlier document), cut to ``top_n``."""
    texts = req.inputs
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[: req.top_n]
    if req.tei:
        return [
            {"index": i, "score": scores[i], **({"text": texts[i]} if req.return_text else {})} for i in order
        ]
    results = [
        {
            "index": i,
            "relevance_score": scores[i],
            **({"document": {"text": texts[i]}} if req.return_documents else {}),
        }
        for i in order
    ]
    return {
        "id": f"rerank-{uuid.uuid4().hex}",
        "object": "list",
        "model": model,
        "results": results,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


class BadRerankAnswer(ValueError):
    """A backend's rerank answer that does not score each document exactly once."""


def scores_from_answer(body: Any, documents: int) -> tuple[list[float], int]:
    """One score per document and the prompt tokens, from a backend's answer in either dialect
    (a Jina/Cohere ``results`` list with ``relevance_score``, or TEI's bare list with ``score``).

    Raises ``BadRerankAnswer`` when it does not score each document exactly once."""
    rows = body if isinstance(body, list) else body.get("results") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise BadRerankAnswer("no 'results' list")
    scores: dict[int, float] = {}
    for row in rows:
        if not isinstance(row, dict):
            raise BadRerankAnswer("a result is not an object")
        index, score = row.get("index"), row.get("relevance_score", row.get("score"))
        if not isinstance(index, int) or not isinstance(score, (int, float)) or not 0 <= index < documents:
            raise BadRerankAnswer(f"a result without a valid index and score: {row}")
        scores[index] = float(score)
    if len(scores) != documents:
        raise BadRerankAnswer(f"{len(scores)} scores for {documents} documents")
    usage = body.get("usage") if isinstance(body, dict) else None
    tokens = usage.get("prompt_tokens", usage.get("total_tokens", 0)) if isinstance(usage, dict) else 0
    return [scores[i] for i in range(documents)], int(tokens or 0)
