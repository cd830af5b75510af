"""Ingest one document: parse, chunk, embed, then replace it in the store in one transaction.

Everything slow (parsing, embedding) happens before the store is touched, and the store swaps the
document's chunks in a single transaction, so a crash at any point leaves either the old version
or the new one, never half a document. A document whose content hash is unchanged is skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from nanoserve.errors import BadRequest, NotFound, PayloadTooLarge
from nanoserve.rag.chunking import chunk_document, embedding_text
from nanoserve.rag.client import EMBED_BATCH, InferenceClient
from nanoserve.rag.documents import Format, parse_document
from nanoserve.rag.store.base import NewChunk, NewDocument, VectorStore, check_document_name

log = logging.getLogger("nanoserve.rag")

# (chunks embedded so far, chunks in the document)
Progress = Callable[[int, int], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class IngestResult:
    collection: str
    document: str
    title: str
    status: Literal["created", "updated", "unchanged"]
    chunks: int
    chars: int
    parse_ms: float
    embed_ms: float
    store_ms: float

    @property
    def total_ms(self) -> float:
        return self.parse_ms + self.embed_ms + self.store_ms


class Ingestor:
    def __init__(
        self,
        store: VectorStore,
        client: InferenceClient,
        *,
        embedding_model: str,
        chunk_max_chars: int,
        max_document_bytes: int,
    ):
        self.store = store
        self.client = client
        self.embedding_model = embedding_model
        self.chunk_max_chars = chunk_max_chars
        self.max_document_bytes = max_document_bytes

    async def ingest(
        self,
        collection: str,
        name: str,
        data: bytes | str,
        fmt: Format,
        *,
        source: str | None = None,
        title: str | None = None,
        progress: Progress | None = None,
    ) -> IngestResult:
        check_document_name(name)
        raw = data.encode() if isinstance(data, str) else data
        if len(raw) > self.max_document_bytes:
            raise PayloadTooLarge(
                f"document {name!r} is {len(raw)} bytes; the limit is {self.max_document_bytes}"
            )
        content_hash = hashlib.sha256(raw + f"\0{fmt}\0{title or ''}".encode()).hexdigest()
        model = self.embedding_model
        try:
            info = await asyncio.to_thread(self.store.get_collection, collection)
            model = info.embedding_model
            existing = await asyncio.to_thread(self.store.get_document, collection, name)
        except NotFound:
            existing = None
        if existing is not None and existing.content_hash == content_hash:
            return IngestResult(
                collection, name, existing.title, "unchanged", existing.chunks, existing.chars, 0, 0, 0
            )

        t0 = time.perf_counter()
        parsed = await asyncio.to_thread(parse_document, data, fmt, name=name)
        if title:
            parsed.title = title
        specs = chunk_document(parsed, max_chars=self.chunk_max_chars)
        if not specs:
            raise BadRequest(f"document {name!r} has no text to index", param="file")
        t1 = time.perf_counter()

        texts = [embedding_text(parsed.title, s.section, s.text) for s in specs]
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            vectors.extend(await self.client.embed(model, texts[start : start + EMBED_BATCH]))
            if progress is not None:
                maybe = progress(len(vectors), len(texts))
                if maybe is not None:
                    await maybe
        t2 = time.perf_counter()

        await asyncio.to_thread(self.store.ensure_collection, collection, len(vectors[0]), model)
        document = NewDocument(name, source or name, parsed.title, content_hash, fmt, len(parsed.text))
        chunks = [
            NewChunk(s.position, s.text, s.section, s.start, s.end, text, vec)
            for s, text, vec in zip(specs, texts, vectors)
        ]
        stored = await asyncio.to_thread(self.store.replace_document, collection, document, chunks)
        t3 = time.perf_counter()
        status: Literal["created", "updated"] = "created" if existing is None else "updated"
        log.info(
            "ingested %s/%s: %s, %d chunks in %.0f ms", collection, name, status, len(chunks), (t3 - t0) * 1e3
        )
        return IngestResult(
            collection, name, stored.title, status, stored.chunks, stored.chars,
            round((t1 - t0) * 1e3, 1), round((t2 - t1) * 1e3, 1), round((t3 - t2) * 1e3, 1),
        )  # fmt: skip
