from __future__ import annotations

from collections.abc import Sequence

import pytest

from nanoserve.rag import rerank
from nanoserve.rag.store.base import StoredChunk


def chunk(i: int, text: str, section: str = "") -> StoredChunk:
    return StoredChunk(i, i, f"d{i}", f"d{i}", f"Doc {i}", section, 0, text, 0, len(text), 0.0, 0.0)


def test_fuse_refines_the_first_stage_order() -> None:
    assert rerank.fuse([0, 1, 2], [0.1, 0.2, 0.3], 0.0) == [0, 1, 2]  # no vote: first stage
    assert rerank.fuse([0, 1, 2], [0.1, 0.2, 0.9], 2.0) == [2, 1, 0]  # a strong vote wins
    assert rerank.fuse([0, 1, 2], [0.5, 0.5, 0.5], 1.0) == [0, 1, 2]  # ties keep the order


async def test_sentence_scores_take_the_best_sentence_or_heading() -> None:
    vectors = {"alpha": [1.0, 0.0], "beta": [0.0, 1.0]}

    async def embed(texts: Sequence[str]) -> list[list[float]]:
        return [next((v for k, v in vectors.items() if k in t), [0.6, 0.8]) for t in texts]

    chunks = [
        chunk(1, "Nothing about it here at all. But this sentence names alpha clearly."),
        chunk(2, "Only unrelated words in this long sentence.", section="alpha"),
        chunk(3, "Another unrelated sentence about other things."),
    ]
    scores = await rerank.sentence_scores([1.0, 0.0], chunks, embed)
    assert scores[0] == pytest.approx(1.0) and scores[1] == pytest.approx(1.0)
    assert scores[2] == pytest.approx(0.6)


async def test_judge_scores() -> None:
    async def judge(query: str, c: StoredChunk) -> bool:
        return "yes" in c.text

    assert await rerank.judge_scores("q", [chunk(1, "yes it does"), chunk(2, "no")], judge) == [1.0, 0.0]
