"""The sentence-transformers engine's bound on one forward pass (issue 18): ``max_batch_tokens``
counts padded tokens, so one long text among many short ones cannot blow its memory up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

pytest.importorskip("sentence_transformers")

from nanoserve.config import default_models
from nanoserve.engines.base import EngineSpec
from nanoserve.engines.sentence import SentenceTransformersEngine
from nanoserve.sources import resolve_source

MINILM = default_models()[1]
BUDGET = 512


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine() -> AsyncIterator[SentenceTransformersEngine]:
    spec = EngineSpec(
        name="minilm",
        path=resolve_source(MINILM.source or ""),
        kind="embedding",
        context_length=256,
        options={"max_batch_tokens": BUDGET, "backend": "torch"},  # test_sentence_onnx.py: onnx's
    )
    eng = SentenceTransformersEngine(spec)
    await eng.start()
    yield eng
    await eng.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_each_forward_pass_holds_at_most_max_batch_tokens_with_padding(
    engine: SentenceTransformersEngine,
) -> None:
    shapes: list[tuple[int, int]] = []
    model: Any = engine._model
    forward = model.forward

    def recording(features: dict[str, Any], **kwargs: Any) -> Any:
        shapes.append(tuple(features["input_ids"].shape))
        return forward(features, **kwargs)

    model.forward = recording
    try:
        long = " ".join(["tokens"] * 300)  # truncated to 256
        texts = [long] + [f"short {i}" for i in range(40)]  # ~256 + 40 x 4 real tokens: one request
        result = await engine.embed(texts)
    finally:
        model.forward = forward
    assert len(result.vectors) == 41
    assert result.prompt_tokens <= BUDGET
    # unbounded, the one pass would have been 41 x 256 = 10,496 padded tokens
    assert shapes and all(rows * length <= BUDGET for rows, length in shapes), shapes
    assert sum(rows for rows, _ in shapes) == 41
