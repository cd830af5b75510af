"""/metrics with the real default embedding model: micro-batches and tokens as the engine saw them."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
from gateway import Gateway
from prom import parse, value

from nanoserve.config import default_models

TEXTS = [f"sentence number {i} about rivers, light and stone" for i in range(6)]


def test_embedding_batches_and_tokens_of_the_real_model(tmp_path: Path) -> None:
    model = next(m for m in default_models() if m.kind == "embedding")
    # warm-up requests would count in the engine's batch statistics
    gw = Gateway(tmp_path, {"models": [model.model_dump()], "memory": {"warm_up": False}})
    try:
        tokens: list[int] = []

        def embed(texts: list[str]) -> None:
            with httpx.Client(base_url=gw.url, timeout=120) as http:
                resp = http.post("/v1/embeddings", json={"model": model.id, "input": texts})
                resp.raise_for_status()
                tokens.append(resp.json()["usage"]["prompt_tokens"])

        embed(TEXTS[:1])  # loads the model
        threads = [threading.Thread(target=embed, args=(TEXTS[i : i + 2],)) for i in range(0, 6, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        samples = parse(httpx.get(gw.url + "/metrics", timeout=30).text)
    finally:
        gw.stop()
    assert value(samples, "nanoserve_embedding_batch_size_sum", model=model.id) == 7
    batches = value(samples, "nanoserve_embedding_batch_size_count", model=model.id)
    assert 2 <= batches <= 4  # concurrent requests may share a forward pass
    assert value(samples, "nanoserve_engine_batches_total", model=model.id) == batches
    assert value(samples, "nanoserve_embedding_inputs_total", model=model.id) == 7
    assert value(samples, "nanoserve_prompt_tokens_total", model=model.id) == sum(tokens)
    assert (
        value(samples, "nanoserve_requests_total", route="/v1/embeddings", model=model.id, status="200") == 4
    )
