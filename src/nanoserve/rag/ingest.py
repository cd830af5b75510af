"""Ingestion: parse, chunk, embed, then replace each document in the store in one transaction.

Every document, from whichever caller (one upload, a folder sent by ``nanoserve ingest``, several
clients at once), goes through one pipeline per gateway that keeps the embedding model busy:

    content-hash check -> parse and chunk (in threads, ahead of embedding)
      -> the chunks of several documents packed into full embedding requests
         (``client.embed_batch(model)`` texts: what the model's engine takes in one request),
         ``IN_FLIGHT`` requests at once so the engine always has the next one waiting
      -> each document written in its own transaction as soon as all its chunks have vectors

A request that is not full is only sent when nothing is in flight (the model would idle) or no
document is being parsed (nothing more is coming). Everything slow happens before the store is
touched, and the store swaps a document's chunks in one transaction, so a crash at any point
leaves the old version or the new one, never half a document. A document whose content hash is
unchanged is skipped. A document that fails (unreadable, or an embedding request holding some of
its chunks failed) fails alone; the others go on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from nanoserve.errors import BadRequest, NotFound, PayloadTooLarge
from nanoserve.rag.chunking import chunk_document, embedding_text
from nanoserve.rag.client import InferenceClient
from nanoserve.rag.documents import Format, parse_document
from nanoserve.rag.store.base import NewChunk, NewDocument, VectorStore, check_document_name

log = logging.getLogger("nanoserve.rag")

# (chunks embedded so far, chunks in the document)
Progress = Callable[[int, int], Awaitable[None] | None]

IN_FLIGHT = 3  # embedding requests sent at once: the engine encodes one, the next ones wait
MAX_DOCUMENTS = 64  # documents parsed or embedding at once (their texts are held in memory)
PARSERS = 2  # documents parsed at once (threads)


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


@dataclass(frozen=True, slots=True)
class Upload:
    """One document to ingest (a file of a folder, a part of a multipart upload)."""

    name: str
    data: bytes | str
    format: Format
    source: str | None = None
    title: str | None = None


@dataclass(eq=False)
class _Texts:
    """One document's chunk texts waiting for their vectors."""

    texts: list[str]
    future: asyncio.Future[list[list[float]]]
    progress: Progress | None
    vectors: list[list[float]] = field(default_factory=list)
    done: int = 0

    def __post_init__(self) -> None:
        self.vectors = [[] for _ in self.texts]


class EmbeddingPacker:
    """Chunk texts of many documents packed into embedding requests of one model each."""

    def __init__(self, client: InferenceClient, in_flight: int = IN_FLIGHT):
        self.client = client
        self.limit = in_flight
        self.in_flight = 0
        self.preparing = 0  # documents being parsed: their chunks are coming
        self._queues: dict[str, deque[tuple[_Texts, int]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def embed(self, model: str, texts: list[str], progress: Progress | None = None) -> _Texts:
        """Queue ``texts``; their vectors arrive in the returned entry's ``future``."""
        entry = _Texts(texts, asyncio.get_running_loop().create_future(), progress)
        self._queues.setdefault(model, deque()).extend((entry, i) for i in range(len(texts)))
        self.dispatch()
        return entry

    def dispatch(self) -> None:
        """Send what should be sent now (called whenever something changed)."""
        for model, queue in self._queues.items():
            size = self.client.embed_batch(model)
            while self.in_flight < self.limit:
                while queue and queue[0][0].future.done():  # its document failed or left
                    queue.popleft()
                if not queue or (len(queue) < size and self.in_flight > 0 and self.preparing > 0):
                    break  # more chunks are coming: fill the request while the model is busy
                batch: list[tuple[_Texts, int]] = []
                while queue and len(batch) < size:
                    item = queue.popleft()
                    if not item[0].future.done():
                        batch.append(item)
                if not batch:
                    continue
                self.in_flight += 1
                task = asyncio.create_task(self._send(model, batch), name="rag-embed")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _send(self, model: str, batch: list[tuple[_Texts, int]]) -> None:
        try:
            vectors = await self.client.embed(model, [entry.texts[i] for entry, i in batch])
        except Exception as exc:  # noqa: BLE001 - every document in the request hears of it
            for entry, _ in batch:
                if not entry.future.done():
                    entry.future.set_exception(exc)
        else:
            touched: dict[int, _Texts] = {}
            for (entry, i), vector in zip(batch, vectors):
                entry.vectors[i] = vector
                entry.done += 1
                touched[id(entry)] = entry
            for entry in touched.values():
                try:
                    if entry.progress is not None and not entry.future.done():
                        maybe = entry.progress(entry.done, len(entry.texts))
                        if maybe is not None:
                            await maybe
                except Exception as exc:  # noqa: BLE001 - the caller's own callback failed
                    if not entry.future.done():
                        entry.future.set_exception(exc)
                if entry.done == len(entry.texts) and not entry.future.done():
                    entry.future.set_result(entry.vectors)
        finally:
            self.in_flight -= 1
            if not self._closed:
                self.dispatch()

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Ingestor:
    """The ingestion pipeline of one store (one per ``RagService``, shared by every request)."""

    def __init__(
        self,
        store: VectorStore,
        client: InferenceClient,
        *,
        embedding_model: str,
        chunk_max_chars: int,
        max_document_bytes: int,
        in_flight: int = IN_FLIGHT,
    ):
        self.store = store
        self.client = client
        self.embedding_model = embedding_model
        self.chunk_max_chars = chunk_max_chars
        self.max_document_bytes = max_document_bytes
        self.packer = EmbeddingPacker(client, in_flight)
        self._documents = asyncio.Semaphore(MAX_DOCUMENTS)
        self._parsers = asyncio.Semaphore(PARSERS)

    async def aclose(self) -> None:
        await self.packer.aclose()

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

        async with self._documents:
            packer = self.packer
            packer.preparing += 1
            try:
                t0 = time.perf_counter()
                async with self._parsers:
                    parsed = await asyncio.to_thread(parse_document, data, fmt, name=name)
                    if title:
                        parsed.title = title
                    specs = await asyncio.to_thread(chunk_document, parsed, max_chars=self.chunk_max_chars)
                if not specs:
                    raise BadRequest(f"document {name!r} has no text to index", param="file")
                texts = [embedding_text(parsed.title, s.section, s.text) for s in specs]
            finally:
                packer.preparing -= 1
                packer.dispatch()  # the last document parsed: a partial request may go now
            t1 = time.perf_counter()
            entry = packer.embed(model, texts, progress)
            try:
                vectors = await entry.future
            finally:
                entry.future.cancel()  # if this caller left: its queued chunks are dropped
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
