"""The MCP tools: each a typed function over the gateway's REST API (``GatewayClient``).

A tool validates its arguments (the signature is its input schema), makes one or a few REST
calls and shapes the answer into its output model (``protocol.py``). Failures are raised as the
exception tree; ``server.py`` turns them into MCP tool errors with the gateway's message.

The methods' docstrings are the descriptions MCP clients show to their models.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from nanoserve.errors import BadRequest, NanoserveError, Unavailable
from nanoserve.mcp.client import GatewayClient
from nanoserve.mcp.metrics import summarize
from nanoserve.mcp.protocol import (
    Collections,
    DocumentIngested,
    DocumentValues,
    Expertise,
    FeedbackResult,
    IngestFailure,
    IngestResult,
    LoadResult,
    ModelsStatus,
    ModelStatus,
    NanoMetrics,
    NanoNodeValues,
    NanoObservability,
    NanoQueryResult,
    NanoResult,
    NodeValue,
    Observability,
    PipelineMetrics,
    QueryResult,
)
from nanoserve.rag.documents import supported_suffixes

Strategy = Literal["semantic", "keyword", "hybrid"]
TextFormat = Literal["text", "markdown", "html"]

CollectionName = Annotated[
    str, Field(min_length=1, max_length=64, description="the collection (a named set of documents)")
]
ModelName = Annotated[str, Field(min_length=1, max_length=256, description="a model id or alias")]

MAX_FILES = 10_000


class NanoserveTools:
    """The tools of one MCP server, bound to one gateway client.

    ``allow_paths`` lets ``ingest`` read files and folders from this process's file system: true
    for ``nanoserve mcp`` (stdio, the user's own process, like ``nanoserve ingest``), false when
    mounted in the gateway, where a remote MCP client must not make the server read its files.
    """

    def __init__(self, client: GatewayClient, *, allow_paths: bool):
        self.client = client
        self.allow_paths = allow_paths

    # --- the pipeline ---

    async def query(
        self,
        query: Annotated[str, Field(min_length=1, max_length=4000, description="the question")],
        collection: CollectionName = "default",
        top_k: Annotated[
            int | None, Field(ge=1, le=50, description="chunks given to the model (default 3)")
        ] = None,
        strategy: Annotated[
            Strategy | None,
            Field(description="retrieval strategy; default: chosen from the question's intent"),
        ] = None,
    ) -> QueryResult:
        """Ask a question about the documents of a collection.

        Retrieves the most relevant chunks, answers with the generation model and cites the chunks
        it used as [n] markers. Questions the documents do not cover are refused (answer_mode
        "refused"). The answer has a quality score per dimension and a trace_id: read the trace as
        the resource trace://{trace_id}, rate the answer with the feedback tool.
        """
        if not query.strip():
            raise BadRequest("'query' must not be blank", param="query")
        body = await self.client.query(collection, query, top_k=top_k, strategy=strategy)
        return QueryResult.model_validate(body)

    async def ingest(
        self,
        collection: CollectionName = "default",
        text: Annotated[
            str | None, Field(min_length=1, description="the document's text (give text or path, not both)")
        ] = None,
        path: Annotated[
            str | None,
            Field(
                min_length=1, description="a file or folder to ingest (.txt .md .html .pdf ...); stdio only"
            ),
        ] = None,
        name: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=512,
                description="document name, unique in the collection; "
                "re-ingesting a name replaces it (default: the file name, or one made from the text)",
            ),
        ] = None,
        source: Annotated[
            str | None,
            Field(
                max_length=2048,
                description="where the document comes from (a URL, a path), shown in citations",
            ),
        ] = None,
        title: Annotated[
            str | None, Field(max_length=512, description="title (default: from the document)")
        ] = None,
        format: Annotated[
            TextFormat | None, Field(description="format of text (default: from the name, else plain text)")
        ] = None,
        ctx: Context | None = None,
    ) -> IngestResult:
        """Add a document to a collection (created if new): raw text, or a file or folder by path.

        Documents are parsed (text, Markdown, HTML, PDF), split into chunks and embedded. A document
        whose content did not change is skipped; a changed one is replaced. Folders are walked for
        supported files, each named by its path relative to the folder; progress is reported per file.
        """
        if (text is None) == (path is None):
            raise BadRequest("give either 'text' or 'path' (exactly one of them)", param="text")
        if text is not None:
            if not text.strip():
                raise BadRequest("'text' must contain some text", param="text")
            doc = name or _text_name(text, format)
            body = await self.client.add_text(collection, doc, text, fmt=format, source=source, title=title)
            return _ingest_result(collection, [body], [])
        assert path is not None
        if not self.allow_paths:
            raise BadRequest(
                "'path' is not available over HTTP: the gateway does not read its own files for MCP clients. "
                "Send the document's content as 'text', or run `nanoserve mcp --url ...` (stdio), which reads "
                "files on your machine.",
                param="path",
            )
        files = await asyncio.to_thread(_files_to_ingest, Path(path).expanduser())
        for field, value in (("name", name), ("title", title)):
            if value is not None and len(files) != 1:
                raise BadRequest(f"'{field}' is one document's; it cannot be used for a folder", param=field)
        done: list[dict[str, Any]] = []
        failed: list[IngestFailure] = []
        for i, (file, doc) in enumerate(files):
            doc = name or doc
            if ctx is not None and len(files) > 1:
                await ctx.report_progress(i, len(files), f"ingesting {doc}")
            try:
                data = await asyncio.to_thread(file.read_bytes)
                body = await self.client.add_file(
                    collection, doc, data, fmt=None, source=source or str(file), title=title
                )
            except OSError as exc:
                failed.append(IngestFailure(document=doc, error=f"cannot read {file}: {exc.strerror or exc}"))
            except NanoserveError as exc:
                if len(files) == 1 or isinstance(exc, Unavailable):
                    raise  # one document, or no gateway to send the others to
                failed.append(IngestFailure(document=doc, error=exc.message))
            else:
                done.append(body)
        if not done and failed:
            raise BadRequest(f"no document could be ingested: {failed[0].document}: {failed[0].error}")
        return _ingest_result(collection, done, failed)

    async def feedback(
        self,
        trace_id: Annotated[str, Field(min_length=1, max_length=64, description="the trace_id of an answer")],
        rating: Annotated[float, Field(ge=-1.0, le=1.0, description="-1 (wrong) .. 1 (good)")],
    ) -> FeedbackResult:
        """Rate an answer. The rating becomes credit for the chunks and documents it used, which
        moves their learned values (see document_values) and, a little, their future ranking.
        One rating per answer."""
        return FeedbackResult.model_validate(await self.client.feedback(trace_id, rating))

    async def document_values(
        self,
        collection: CollectionName = "default",
        limit: Annotated[int, Field(ge=1, le=1000, description="rows of each kind")] = 50,
    ) -> DocumentValues:
        """The learned values of the documents and chunks of a collection that received feedback,
        highest first: what the learning loop has made of the ratings so far."""
        return DocumentValues.model_validate(await self.client.values(collection, limit))

    async def list_collections(self) -> Collections:
        """The collections with their document and chunk counts and embedding model."""
        return Collections.model_validate({"collections": await self.client.list_collections()})

    # --- observability and models ---

    async def observability(
        self,
        collection: Annotated[
            str | None,
            Field(min_length=1, max_length=64, description="only this collection's pipeline metrics"),
        ] = None,
    ) -> Observability:
        """Pipeline and serving metrics: per collection the queries, success rate, latency, quality
        and feedback; per model the requests, errors, tokens, latency and time to first token; the
        memory in use; whether the gateway is ready."""
        (ready, reason), pipeline, text = await asyncio.gather(
            self.client.ready(), self.client.rag_metrics(collection), self.client.prometheus()
        )
        return Observability(
            gateway=self.client.base_url,
            ready=ready,
            not_ready_reason=reason,
            pipeline=[PipelineMetrics.model_validate(row) for row in pipeline],
            serving=await asyncio.to_thread(summarize, text),
        )

    async def models_status(self) -> ModelsStatus:
        """Memory per device and every configured model: state (stopped, starting, ready, ...),
        estimated and measured size in MiB, when it was loaded and last used, when it expires,
        requests in flight and queued, priority, pinned."""
        return ModelsStatus.model_validate(await self.client.models_status())

    async def load_model(
        self,
        model: ModelName,
        priority: Annotated[
            int | None, Field(description="higher is kept longer when memory is short")
        ] = None,
        keep_alive: Annotated[
            str | float | None,
            Field(
                description="how long to keep it loaded when idle: seconds or a duration ('10m'); -1 forever"
            ),
        ] = None,
        dry_run: Annotated[
            bool, Field(description="only say whether it fits and what it would evict; load nothing")
        ] = False,
    ) -> LoadResult:
        """Load a model now (instead of on its first request), or with dry_run see what loading it
        would evict. Less important idle models are evicted to make room."""
        body = await self.client.load_model(model, priority=priority, keep_alive=keep_alive, dry_run=dry_run)
        if dry_run:
            return LoadResult.model_validate({"dry_run": True, "plan": body})
        return LoadResult.model_validate({"dry_run": False, "model": body})

    async def unload_model(
        self,
        model: ModelName,
        force: Annotated[
            bool, Field(description="unload even with requests in flight (they end with an error)")
        ] = False,
    ) -> ModelStatus:
        """Unload a model and free its memory. Refused while it has requests in flight unless
        force is set."""
        return ModelStatus.model_validate(await self.client.unload_model(model, force=force))

    # --- seed 000's tools, for their existing callers ---

    async def nano_llm_query(
        self,
        query: Annotated[str, Field(min_length=1, max_length=4000, description="the question")],
        userExpertise: Annotated[
            Expertise | None,
            Field(description="accepted for compatibility; every level gets the same grounded answer"),
        ] = None,
        collection: CollectionName = "default",
    ) -> NanoQueryResult:
        """Compatibility alias of `query` for seed 000's callers: the same pipeline, answered in
        the seed's shape (results, qualityScore, executionTimeMs, traceId, message)."""
        result = await self.query(query=query, collection=collection)
        results = [
            NanoResult(
                citation=c.n, document=c.document, section=c.section, source=c.source, chunkId=c.chunk_id,
                text=c.text, score=c.score,
            )
            for c in result.citations
        ]  # fmt: skip
        quality = result.quality.get("overall", 0.0)
        if result.answer_mode == "refused":
            message = "No answer: the documents do not cover this question."
        else:
            found = f"{len(results)} result{'s' if len(results) != 1 else ''} found"
            message = f"Pipeline complete: {found}, quality {quality:.2f} ({result.answer_mode} answer)."
        return NanoQueryResult(
            results=results,
            answer=result.answer,
            qualityScore=quality,
            executionTimeMs=result.timings_ms.get("total", 0.0),
            traceId=result.trace_id,
            message=message,
        )

    async def nano_llm_observability(self) -> NanoObservability:
        """Compatibility alias of `observability` for seed 000's callers: status and query metrics
        over all collections (totalQueries, successfulQueries, averageExecutionTime in ms,
        averageQualityScore)."""
        (ready, _), rows = await asyncio.gather(self.client.ready(), self.client.rag_metrics())
        collections = [PipelineMetrics.model_validate(row) for row in rows]
        total = sum(c.queries for c in collections)
        succeeded = sum(c.queries - c.errors for c in collections)
        return NanoObservability(
            status="operational" if ready else "degraded",
            metrics=NanoMetrics(
                totalQueries=total,
                successfulQueries=succeeded,
                averageExecutionTime=_weighted(collections, lambda c: c.latency_ms.mean),
                averageQualityScore=_weighted(collections, lambda c: c.quality.get("overall", 0.0)),
            ),
            collections=collections,
        )

    async def nano_llm_node_values(
        self,
        collection: CollectionName = "default",
        limit: Annotated[int, Field(ge=1, le=1000, description="rows of each kind")] = 50,
    ) -> NanoNodeValues:
        """Compatibility alias of `document_values` for seed 000's callers: the learned value of
        each document and chunk ("node") that received feedback."""
        values = await self.document_values(collection=collection, limit=limit)
        return NanoNodeValues(
            collection=values.collection,
            nodeValues=[
                NodeValue(
                    nodeId=r.id,
                    kind=r.kind,
                    document=r.document,
                    section=r.section,
                    value=r.value,
                    feedbackCount=r.feedback,
                )
                for r in [*values.documents, *values.chunks]
            ],
        )


def _text_name(text: str, fmt: str | None) -> str:
    """A stable name for unnamed text: the same text gets the same name, so sending it again is a no-op."""
    suffix = {"markdown": ".md", "html": ".html"}.get(fmt or "", ".txt")
    return f"text-{hashlib.sha256(text.encode()).hexdigest()[:12]}{suffix}"


def _files_to_ingest(path: Path) -> list[tuple[Path, str]]:
    """(file, document name) for a file, or for every supported file under a folder (blocking)."""
    if path.is_file():
        return [(path, path.name)]
    if not path.exists():
        raise BadRequest(f"no such file or folder: {path}", param="path")
    suffixes = supported_suffixes()
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise BadRequest(f"no supported files ({' '.join(sorted(suffixes))}) under {path}", param="path")
    if len(files) > MAX_FILES:
        raise BadRequest(f"{len(files)} files under {path}; ingest at most {MAX_FILES} at once", param="path")
    return [(f, f.relative_to(path).as_posix()) for f in files]


def _ingest_result(
    collection: str, bodies: list[dict[str, Any]], failed: list[IngestFailure]
) -> IngestResult:
    documents = [DocumentIngested.model_validate(b) for b in bodies]
    count = {s: sum(1 for d in documents if d.status == s) for s in ("created", "updated", "unchanged")}
    return IngestResult(
        collection=collection,
        documents=documents,
        failed=failed,
        chunks=sum(d.chunks for d in documents if d.status != "unchanged"),
        **count,
    )


def _weighted(collections: list[PipelineMetrics], value: Any) -> float:
    """Mean of a per-collection figure, weighted by the collection's successful queries."""
    weights = [c.queries - c.errors for c in collections]
    if not sum(weights):
        return 0.0
    return round(sum(w * value(c) for w, c in zip(weights, collections, strict=True)) / sum(weights), 4)
