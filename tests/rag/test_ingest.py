"""Ingestion through RagService with fake models: atomic per document, progress, limits, and
documents packed together into full embedding requests."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeModels

from nanoserve.api.rag import embed_batch
from nanoserve.config import ModelConfig, Settings
from nanoserve.errors import BadRequest, ModelNotFound, PayloadTooLarge, Unavailable
from nanoserve.rag.client import EMBED_BATCH
from nanoserve.rag.config import RagConfig
from nanoserve.rag.ingest import IngestResult, Upload
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
    assert sorted(seen) == [(EMBED_BATCH, total), (total, total)]
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


def notes(count: int, paragraphs: int) -> list[Upload]:
    """``count`` text documents of ``paragraphs`` one-chunk paragraphs each."""

    def paragraph(i: int, p: int) -> str:
        return f"Note {i} paragraph {p}: " + "words of the paragraph " * 25  # ~600 characters

    return [
        Upload(f"note-{i:02d}.txt", "\n\n".join(paragraph(i, p) for p in range(paragraphs)), "text")
        for i in range(count)
    ]


async def ingest_all(service: RagService, uploads: list[Upload]) -> dict[str, IngestResult | Exception]:
    return {upload.name: outcome async for upload, outcome in service.ingest_many("docs", uploads)}


async def stored_chunks(service: RagService) -> dict[str, int]:
    _, docs = await service.get_collection("docs")
    return {d.name: d.chunks for d in docs}


async def test_documents_share_full_embedding_requests(tmp_path: Path) -> None:
    models = FakeModels(embed_delay=0.02)
    service = RagService(tmp_path, models.client(embed_batch=8))
    outcomes = await ingest_all(service, notes(12, 5))
    assert {o.status for o in outcomes.values() if isinstance(o, IngestResult)} == {"created"}
    assert await stored_chunks(service) == {f"note-{i:02d}.txt": 5 for i in range(12)}
    # 60 chunks in requests of at most 8 across documents, not 12 requests of one document's 5:
    # at most the first (nothing else in flight) and the last are not full
    assert sum(models.embed_sizes) == 60 and max(models.embed_sizes) == 8
    assert len(models.embed_sizes) <= 60 // 8 + 2, models.embed_sizes
    # unchanged content is skipped without embedding anything
    again = await ingest_all(service, notes(12, 5))
    assert {o.status for o in again.values() if isinstance(o, IngestResult)} == {"unchanged"}
    assert sum(models.embed_sizes) == 60
    await service.aclose()


async def test_a_failed_shared_request_fails_only_its_documents_whole(tmp_path: Path) -> None:
    models = FakeModels(fail_embed_call=3, embed_delay=0.02)
    service = RagService(tmp_path, models.client(embed_batch=8))
    outcomes = await ingest_all(service, notes(12, 5))
    failed = {name for name, o in outcomes.items() if isinstance(o, Unavailable)}
    stored = await stored_chunks(service)
    # the third request held chunks of two or three documents: they are absent, the rest whole
    assert 2 <= len(failed) <= 3 and set(stored) == set(outcomes) - failed
    assert set(stored.values()) == {5}
    # running it again completes the rest and skips what is there
    rerun = RagService(tmp_path, FakeModels().client(embed_batch=8))
    statuses = {name: o.status for name, o in (await ingest_all(rerun, notes(12, 5))).items()}  # type: ignore[union-attr]
    assert statuses == {name: "created" if name in failed else "unchanged" for name in outcomes}
    assert set((await stored_chunks(rerun)).values()) == {5} and len(await stored_chunks(rerun)) == 12
    await service.aclose()
    await rerun.aclose()


async def test_one_bad_file_loses_none_of_the_others(tmp_path: Path) -> None:
    service = RagService(tmp_path, FakeModels().client(embed_batch=8))
    uploads = notes(6, 3)
    uploads[2] = Upload("binary.txt", b"\x00\x01garbage", "text")
    uploads[4] = Upload("bad/../name.txt", "text", "text")
    outcomes = await ingest_all(service, uploads)
    assert isinstance(outcomes["binary.txt"], BadRequest) and isinstance(
        outcomes["bad/../name.txt"], BadRequest
    )
    assert await stored_chunks(service) == {u.name: 3 for i, u in enumerate(uploads) if i not in (2, 4)}
    await service.aclose()


def test_the_batch_follows_the_engines_cap() -> None:
    settings = Settings()  # all-minilm: max_batch_tokens 8192 (default), context_length 256
    assert embed_batch(settings)("all-minilm:l6-v2") == embed_batch(settings)("all-minilm") == 32
    smaller = Settings(
        models=[
            ModelConfig(id="e", kind="embedding", engine="sentence-transformers", context_length=128,
                        options={"max_batch_tokens": 4096}),
            ModelConfig(id="m", kind="embedding", engine="mock-embedding"),
        ]
    )  # fmt: skip
    assert embed_batch(smaller)("e") == 32 and embed_batch(smaller)("m") == EMBED_BATCH
    assert embed_batch(smaller)("not-configured") == EMBED_BATCH
