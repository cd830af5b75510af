"""The cross-encoder engine in-process: the trained preference, micro-batching, many passes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tiny_reranker import sentence

from nanoserve.engines.base import EngineSpec
from nanoserve.engines.crossencoder import CrossEncoderEngine
from nanoserve.errors import ConfigError

DOCS = [
    sentence("dog", "plays", "by the road"),
    sentence("llama", "rests", "in the garden"),  # verbs and places the model never saw
    sentence("owl", "waits", "on the hill"),
    "Paris is the capital of France.",
]


def engine(path: Path, **options: object) -> CrossEncoderEngine:
    return CrossEncoderEngine(EngineSpec("tiny", path, kind="rerank", context_length=128, options=options))


async def test_scores_the_trained_preference_and_batches_concurrent_calls(tiny_reranker: Path) -> None:
    e = engine(tiny_reranker, max_wait_ms=50)
    await e.start()
    try:
        results = await asyncio.gather(*(e.score(f"Question {i}?", DOCS) for i in range(6)))
        for scores in results:
            assert max(range(len(DOCS)), key=lambda i: scores.logits[i]) == 1
            assert scores.prompt_tokens > 4 * len(DOCS)
        stats = e.info()["stats"]
        assert stats["scored_pairs_total"] == 6 * len(DOCS)
        assert stats["batches_total"] < 6  # concurrent calls shared forward passes
    finally:
        await e.close()


async def test_requests_already_waiting_join_the_batch_when_the_wait_is_over(tiny_reranker: Path) -> None:
    """Regression: with the first request's wait over (max_wait_ms 0), the batcher took no more
    requests, even those already queued: every request ran a forward pass of its own."""
    e = engine(tiny_reranker, max_wait_ms=0)
    await e.start()
    try:
        await asyncio.gather(*(e.score(f"Question {i}?", DOCS) for i in range(6)))
        assert e.info()["stats"]["batches_total"] == 1
    finally:
        await e.close()


async def test_a_request_over_the_token_budget_runs_in_several_passes(tiny_reranker: Path) -> None:
    e = engine(tiny_reranker, max_batch_tokens=64)  # a pair is ~15 tokens: 4 per pass
    await e.start()
    try:
        docs = DOCS * 10
        scores = await e.score("Which animal?", docs)
        assert len(scores.logits) == 40 and scores.prompt_tokens > 64
        assert scores.logits[1] == pytest.approx(scores.logits[5], abs=1e-4)
    finally:
        await e.close()


def test_unknown_options_are_refused(tiny_reranker: Path) -> None:
    with pytest.raises(ConfigError, match="normalize"):
        engine(tiny_reranker, normalize=True)
