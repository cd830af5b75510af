"""Ingestion through RagService with fake models: atomic per document, progress, limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeModels

from nanoserve.errors import BadRequest, ModelNotFound, PayloadTooLarge, Unavailable
from nanoserve.rag.client import EMBED_BATCH
from nanoserve.rag.config import RagConfig
from nanoserve.rag.service import RagService


def long_markdown(sections: int) -> str:
    return "# Big\n\n" + "\n\n".join(
        f"## Part {i}\n\nParagraph number {i} about topic {i}." for i in range(sections)
    )


async def test_a_failure_mid_document_leaves_the_old_version(tmp_path: Path) -> None:
    good = FakeModels()
    service = RagService(tmp_path, good.client())
    await service.ingest("docs", "big.md", long_markdown(3), "markdown")

    # the second embeddings batch of the new version fails: nothing of it may be visible
    failing = FakeModels(fail_embed_call=2)
    broken = RagService(tmp_path, failing.client())
    with pytest.raises(Unavailable):
        await broken.ingest("docs", "big.md", long_markdown(EMBED_BATCH + 10), "markdown")
    assert failing.embed_calls == 2
    info, docs = await service.get_collection("docs")
    assert (info.documents, info.chunks, docs[0].chunks) == (1, 3, 3)

    # and a new document that fails is not there at all
    with pytest.raises(Unavailable):
        await RagService(tmp_path, FakeModels(fail_embed_call=2).client()).ingest(
            "docs", "other.md", long_markdown(EMBED_BATCH + 10), "markdown"
        )
    assert [d.name for d in (await service.get_collection("docs"))[1]] == ["big.md"]
    await service.aclose()
    await broken.aclose()


async def test_progress_is_reported_per_batch(tmp_path: Path) -> None:
    service = RagService(tmp_path, FakeModels().client())
    seen: list[tuple[int, int]] = []
    result = await service.ingest(
        "docs",
        "big.md",
        long_markdown(EMBED_BATCH + 5),
        "markdown",
        progress=lambda done, total: seen.append((done, total)),
    )
    total = result.chunks
    assert seen == [(EMBED_BATCH, total), (total, total)]
    await service.aclose()


async def test_limits_and_errors(tmp_path: Path) -> None:
    service = RagService(tmp_path, FakeModels().client(), RagConfig(max_document_bytes=2048))
    with pytest.raises(PayloadTooLarge):
        await service.ingest("docs", "big.txt", "x " * 2000, "text")
    with pytest.raises(BadRequest):
        await service.ingest("bad name", "a.txt", "text", "text")
    with pytest.raises(BadRequest):
        await service.ingest("docs", "", "text", "text")
    other = RagService(tmp_path / "2", FakeModels().client(), RagConfig(embedding_model="nope"))
    await other.ingest("docs", "a.txt", "some text", "text")  # the fake embeds with any model
    with pytest.raises(ModelNotFound):  # but only smollm2 chats
        await RagService(
            tmp_path / "3", FakeModels().client(), RagConfig(generation_model="nope")
        ).client.chat("nope", [{"role": "user", "content": "hi"}])
    await service.aclose()
    await other.aclose()


async def test_collection_keeps_its_embedding_model(tmp_path: Path) -> None:
    models = FakeModels()
    first = RagService(tmp_path, models.client(), RagConfig(embedding_model="emb-a"))
    await first.ingest("docs", "a.txt", "alpha text", "text")
    second = RagService(tmp_path, models.client(), RagConfig(embedding_model="emb-b"))
    await second.ingest("docs", "b.txt", "beta text", "text")
    info, _ = await second.get_collection("docs")
    assert info.embedding_model == "emb-a"  # vectors of one collection come from one model
    await first.aclose()
    await second.aclose()
