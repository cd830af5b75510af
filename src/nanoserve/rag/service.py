"""``RagService``: the one object the API layer talks to.

Built by ``create_app`` with the data dir and an ``InferenceClient`` on the gateway's own URL;
it owns the vector store, the trace store, the ingestor and the query pipeline. Stores are opened
on first use (a PostgreSQL that is down fails the requests that need it, not the gateway's start).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prometheus_client.registry import Collector

from nanoserve.errors import BadRequest, NotFound, QuotaExceeded, Unavailable
from nanoserve.rag.client import InferenceClient
from nanoserve.rag.config import RagConfig
from nanoserve.rag.documents import Format
from nanoserve.rag.ingest import Ingestor, IngestResult, Progress, Upload
from nanoserve.rag.intent import IntentClassifier, Strategy, route
from nanoserve.rag.learning import UsedChunk, assign_credit
from nanoserve.rag.metrics import RagStats
from nanoserve.rag.pipeline import QueryOutcome, QueryPipeline, Retrieval
from nanoserve.rag.store.base import (
    CollectionInfo,
    DocumentInfo,
    ValueChanges,
    ValueRow,
    VectorStore,
    check_collection_name,
)
from nanoserve.rag.traces import Trace, TraceStore

log = logging.getLogger("nanoserve.rag")


class RagService:
    def __init__(
        self,
        data_dir: str | Path,
        client: InferenceClient,
        config: RagConfig | None = None,
        *,
        store: VectorStore | None = None,
    ):
        self.data_dir = Path(data_dir)
        self.client = client
        self.config = config or RagConfig()
        self.stats = RagStats()
        self.classifier = IntentClassifier(self.config.intent_specs())
        self._store = store
        self._traces: TraceStore | None = None
        self._ingestor: Ingestor | None = None
        self._open_lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------------

    def _open_store(self) -> VectorStore:
        with self._open_lock:
            if self._store is None:
                if self.config.store == "pgvector":
                    from nanoserve.rag.store.pgvector import PgVectorStore

                    assert self.config.postgres_dsn is not None
                    self._store = PgVectorStore(self.config.postgres_dsn)
                else:
                    from nanoserve.rag.store.sqlite import SqliteStore

                    self._store = SqliteStore(self.data_dir / "rag" / "rag.db")
            if self._traces is None:
                self._traces = TraceStore(self.data_dir / "rag" / "traces.db")
            return self._store

    async def stores(self) -> tuple[VectorStore, TraceStore]:
        if self._store is None or self._traces is None:
            try:
                await asyncio.to_thread(self._open_store)
            except ImportError as exc:
                raise Unavailable(
                    f"the RAG store needs an optional dependency: {exc.name} (pip install 'nanoserve[rag]')"
                ) from exc
        assert self._store is not None and self._traces is not None
        return self._store, self._traces

    async def aclose(self) -> None:
        if self._ingestor is not None:
            await self._ingestor.aclose()

        def close() -> None:
            with self._open_lock:
                if self._store is not None:
                    self._store.close()
                if self._traces is not None:
                    self._traces.close()

        await asyncio.to_thread(close)

    def prometheus_collector(self) -> Collector:
        return self.stats.collector()

    async def _pipeline(self) -> QueryPipeline:
        store, traces = await self.stores()
        return QueryPipeline(store, traces, self.client, self.config, self.classifier)

    # --- collections and documents --------------------------------------------------------------

    async def list_collections(self) -> list[CollectionInfo]:
        store, _ = await self.stores()
        return await asyncio.to_thread(store.list_collections)

    async def get_collection(self, name: str) -> tuple[CollectionInfo, list[DocumentInfo]]:
        store, _ = await self.stores()
        info = await asyncio.to_thread(store.get_collection, name)
        return info, await asyncio.to_thread(store.list_documents, name)

    async def delete_collection(self, name: str) -> None:
        store, _ = await self.stores()
        await asyncio.to_thread(store.delete_collection, name)

    async def delete_document(self, collection: str, name: str) -> None:
        store, _ = await self.stores()
        await asyncio.to_thread(store.delete_document, collection, name)

    async def ingestor(self) -> Ingestor:
        """The one ingestion pipeline: documents of concurrent requests share embedding requests."""
        store, _ = await self.stores()
        if self._ingestor is None:
            self._ingestor = Ingestor(
                store,
                self.client,
                embedding_model=self.config.embedding_model,
                chunk_max_chars=self.config.chunk_max_chars,
                max_document_bytes=self.config.max_document_bytes,
            )
        return self._ingestor

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
        ingestor = await self.ingestor()
        check_collection_name(collection)
        await asyncio.to_thread(self._check_quotas, ingestor.store, collection, name)
        result = await ingestor.ingest(
            collection, name, data, fmt, source=source, title=title, progress=progress
        )
        if result.status != "unchanged":
            self.stats.observe_ingest(collection, result.chunks)
        return result

    async def ingest_many(
        self, collection: str, uploads: Sequence[Upload]
    ) -> AsyncIterator[tuple[Upload, IngestResult | Exception]]:
        """Ingest ``uploads`` together (their chunks share embedding requests), yielding each
        document's result or error as soon as it is stored or failed. Each document is its own
        transaction: one that fails loses nothing of the others. Closing the iterator early (the
        client left) cancels the documents not stored yet."""
        check_collection_name(collection)
        await self.ingestor()

        async def one(upload: Upload) -> tuple[Upload, IngestResult | Exception]:
            try:
                result = await self.ingest(
                    collection, upload.name, upload.data, upload.format, source=upload.source,
                    title=upload.title,
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - reported per document
                return upload, exc
            return upload, result

        tasks = [asyncio.create_task(one(u), name="rag-ingest") for u in uploads]
        try:
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _check_quotas(self, store: VectorStore, collection: str, document: str) -> None:
        """``QuotaExceeded`` naming the quota this document would pass (rag.max_*)."""
        config = self.config
        size = store.size_bytes()
        if size is not None and size > config.max_store_mib * 1024 * 1024:
            raise QuotaExceeded(
                f"the document store is {size // (1024 * 1024)} MiB, over its quota "
                f"(rag.max_store_mib: {config.max_store_mib}); delete collections or documents first"
            )
        try:
            info = store.get_collection(collection)
        except NotFound:
            if len(store.list_collections()) >= config.max_collections:
                raise QuotaExceeded(
                    f"there are {config.max_collections} collections already, the quota "
                    "(rag.max_collections); delete one first",
                    param="collection",
                ) from None
            return
        # replacing a document adds none
        if info.documents >= config.max_documents and store.get_document(collection, document) is None:
            raise QuotaExceeded(
                f"collection {collection!r} has {info.documents} documents, the quota "
                "(rag.max_documents); delete some first",
                param="name",
            )

    # --- queries --------------------------------------------------------------------------------

    async def query(
        self, collection: str, query: str, *, top_k: int | None = None, strategy: Strategy | None = None
    ) -> QueryOutcome:
        pipeline = await self._pipeline()
        try:
            outcome = await pipeline.run(collection, query, top_k=top_k, strategy=strategy)
        except Exception:
            self.stats.observe_query(collection, "error", 0.0, None)
            raise
        trace = outcome.trace
        self.stats.observe_query(collection, trace.status, trace.total_ms / 1e3, trace.quality)
        return outcome

    async def search(
        self, collection: str, query: str, *, top_k: int = 10, strategy: Strategy | None = None
    ) -> tuple[Retrieval, str]:
        """Retrieval only (no generation, no trace): what ``rag eval`` measures."""
        pipeline = await self._pipeline()
        store, _ = await self.stores()
        info = await asyncio.to_thread(store.get_collection, collection)
        (vec,) = await self.client.embed(info.embedding_model, [query])
        embed = pipeline.embedder(info.embedding_model)
        if strategy is None:
            intent = await self.classifier.classify(info.embedding_model, vec, embed)
            strategy = route(query, intent.name, self.classifier.strategies).strategy
            return await pipeline.retrieve(collection, query, vec, strategy, top_k, embed), intent.name
        return await pipeline.retrieve(collection, query, vec, strategy, top_k, embed), ""

    async def trace(self, trace_id: str) -> Trace:
        _, traces = await self.stores()
        return await asyncio.to_thread(traces.get, trace_id)

    # --- learning -------------------------------------------------------------------------------

    async def feedback(self, trace_id: str, rating: float) -> dict[str, Any]:
        if not -1.0 <= rating <= 1.0:
            raise BadRequest("rating must be between -1 and 1", param="rating")
        store, traces = await self.stores()
        trace = await asyncio.to_thread(traces.record_feedback, trace_id, rating)
        try:
            used = [UsedChunk(c.chunk_id, c.document_id, c.rank, c.citation) for c in trace.retrieved]
            chunk_values, document_values = await asyncio.to_thread(
                store.values_of, [u.chunk_id for u in used]
            )
            live = [u for u in used if u.chunk_id in chunk_values]  # chunks replaced since are skipped
            assignment = assign_credit(
                live, rating, chunk_values, document_values, rate=self.config.learning_rate
            )
            changes = ValueChanges(
                {u.id: u.new for u in assignment.chunks}, {u.id: u.new for u in assignment.documents}
            )
            await asyncio.to_thread(store.update_values, changes)
        except BaseException:
            await asyncio.to_thread(traces.clear_feedback, trace_id)
            raise
        self.stats.observe_feedback(trace.collection)
        return {
            "trace_id": trace_id,
            "rating": rating,
            "chunks": [_rounded(asdict(u)) for u in assignment.chunks],
            "documents": [_rounded(asdict(u)) for u in assignment.documents],
            "skipped_chunks": len(used) - len(live),
        }

    async def values(self, collection: str, limit: int = 50) -> list[ValueRow]:
        store, _ = await self.stores()
        return await asyncio.to_thread(store.list_values, collection, limit)

    async def metrics(self, collection: str | None = None) -> list[dict[str, Any]]:
        _, traces = await self.stores()
        return await asyncio.to_thread(traces.metrics, collection)


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
