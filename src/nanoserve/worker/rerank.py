"""The worker's ``/v1/rerank``: score every document with the engine, answer in the request's
dialect (``wire/rerank.py``)."""

from __future__ import annotations

from typing import Any

from nanoserve.engines.base import RerankEngine
from nanoserve.wire.rerank import RerankRequest, probability, rerank_answer
from nanoserve.worker.metrics import RequestProbe


class RerankService:
    def __init__(self, engine: RerankEngine):
        self.engine = engine

    async def rerank(
        self, req: RerankRequest, *, model: str, probe: RequestProbe | None = None
    ) -> dict[str, Any] | list[dict[str, Any]]:
        result = await self.engine.score(req.query, req.inputs)
        if probe is not None:
            probe.embedding_done(len(req.inputs), result.prompt_tokens, kind="rerank")
        scores = result.logits if req.raw_scores else [probability(x) for x in result.logits]
        return rerank_answer(req, scores, result.prompt_tokens, model=model)
