"""``/v1/rag``: collections, ingestion, queries, traces, feedback, values and metrics.

``create_rag_router(get_service)`` returns an ``APIRouter`` that ``create_app`` mounts at
``/v1/rag``; ``get_service(request)`` returns the app's ``RagService``. Routes only parse, call the
service and shape JSON. The router's route class renders errors in OpenAI's body (through
``wire.errors``), so the surface behaves the same whatever app mounts it.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import asdict
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response, StreamingResponse

from nanoserve.config import Settings
from nanoserve.errors import BadRequest, PayloadTooLarge
from nanoserve.profiles import profile_for
from nanoserve.rag.client import EMBED_BATCH, InferenceClient
from nanoserve.rag.documents import FORMATS, Format, detect_format
from nanoserve.rag.ingest import IngestResult, Upload
from nanoserve.rag.protocol import DocumentIn, FeedbackIn, QueryIn, SearchIn, parse
from nanoserve.rag.service import RagService
from nanoserve.rag.store.base import CollectionInfo, DocumentInfo, check_collection_name
from nanoserve.wire.body import DEFAULT_LIMIT, loads, read_body
from nanoserve.wire.errors import as_nanoserve_error, openai_error_body, openai_error_response

GetService = Callable[[Request], RagService]


def error_response(exc: BaseException) -> JSONResponse:
    if isinstance(exc, RequestValidationError):  # a query parameter of the wrong type
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = str(err["loc"][-1]) if err.get("loc") else None
        exc = BadRequest(f"Invalid value for '{param}': {err.get('msg', 'invalid')}", param=param)
    return openai_error_response(exc)


class _RagRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every error is rendered once, here
                return error_response(exc)

        return handle


async def _json(request: Request) -> Any:
    """The body as JSON, bounded like every other route's (size, depth, Unicode)."""
    settings: Settings | None = getattr(request.app.state, "settings", None)
    raw = await read_body(request, settings.max_body_bytes if settings is not None else DEFAULT_LIMIT)
    if not raw.strip():
        raise BadRequest("the request body is empty; expected a JSON object")
    return loads(raw)


def collection_json(info: CollectionInfo) -> dict[str, Any]:
    return {"object": "collection", **asdict(info)}


def document_json(doc: DocumentInfo) -> dict[str, Any]:
    out = asdict(doc)
    out.pop("collection")
    return {"object": "document", **out}


def ingest_json(result: IngestResult) -> dict[str, Any]:
    out = asdict(result)
    out["total_ms"] = round(result.total_ms, 1)
    out["chunks_per_second"] = round(result.chunks / (result.total_ms / 1e3), 1) if result.total_ms else None
    return out


def gateway_url(settings: Settings) -> str:
    """The gateway's own URL on loopback: the pipeline calls the models through it."""
    host = settings.host
    if host in ("0.0.0.0", "", "*"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    scheme = "https" if settings.tls.enabled else "http"
    return f"{scheme}://{host}:{settings.port}"


def embed_batch(settings: Settings) -> Callable[[str], int]:
    """Texts per embedding request for each model: its engine's cap on one request's tokens
    (``options.max_batch_tokens``, the one batch setting) over the most tokens one text can have
    (its ``context_length``: longer texts are truncated), so a request is as full as the engine
    takes and never over its cap; ``EMBED_BATCH`` for a model whose engine states no cap."""

    def texts_per_request(model: str) -> int:
        config = next((m for m in settings.models if model in m.names), None)
        if config is None:
            return EMBED_BATCH
        options = profile_for(config.engine).options
        if "max_batch_tokens" not in options.model_fields:
            return EMBED_BATCH
        tokens = int(config.options.get("max_batch_tokens", options.model_fields["max_batch_tokens"].default))
        return max(1, tokens // config.context_length)

    return texts_per_request


def create_rag_service(
    settings: Settings, auth_headers: Callable[[], Mapping[str, str]] | None = None
) -> RagService:
    """``auth_headers``: the gateway's internal credential, charging the asking key (nanoserve.auth)."""
    client = InferenceClient(
        gateway_url(settings),
        auth_headers=auth_headers,
        verify=not settings.tls.enabled,
        embed_batch=embed_batch(settings),
    )
    return RagService(settings.data_dir, client, settings.rag)


def create_rag_router(get_service: GetService) -> APIRouter:
    router = APIRouter(route_class=_RagRoute, tags=["rag"])

    @router.get("/collections")
    async def list_collections(request: Request) -> dict[str, Any]:
        collections = await get_service(request).list_collections()
        return {"object": "list", "data": [collection_json(c) for c in collections]}

    @router.get("/collections/{name}")
    async def get_collection(request: Request, name: str) -> dict[str, Any]:
        info, documents = await get_service(request).get_collection(name)
        return {**collection_json(info), "documents_list": [document_json(d) for d in documents]}

    @router.delete("/collections/{name}")
    async def delete_collection(request: Request, name: str) -> dict[str, Any]:
        await get_service(request).delete_collection(name)
        return {"object": "collection", "name": name, "deleted": True}

    @router.post("/collections/{name}/documents")
    async def add_document(request: Request, name: str) -> JSONResponse:
        service = get_service(request)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            try:
                form = await request.form()
            except HTTPException as exc:  # a malformed multipart body (no boundary, bad parts)
                raise BadRequest(f"the multipart body cannot be read: {exc.detail}") from exc
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise BadRequest("a multipart upload needs a 'file' field", param="file")
            doc_name = str(form.get("name") or upload.filename or "")
            fmt_field = form.get("format")
            if fmt_field and fmt_field not in FORMATS:
                raise BadRequest(f"format must be one of {', '.join(FORMATS)}", param="format")
            fmt = cast(Format, fmt_field) if fmt_field else detect_format(doc_name, upload.content_type)
            data: bytes | str = await upload.read()
            source = str(form.get("source") or upload.filename or doc_name)
            title = str(form["title"]) if form.get("title") else None
        else:
            body = parse(DocumentIn, await _json(request))
            doc_name, data, source, title = body.name, body.text, body.source, body.title
            fmt = body.format or detect_format(body.name)
            if fmt == "pdf":
                raise BadRequest(
                    "a PDF must be uploaded as a file (multipart), not sent as text", param="format"
                )
        if not doc_name:
            raise BadRequest("the document needs a name (the 'name' field or the file name)", param="name")
        result = await service.ingest(name, doc_name, data, fmt, source=source, title=title)
        return JSONResponse(ingest_json(result), status_code=201 if result.status == "created" else 200)

    @router.post("/collections/{name}/ingest")
    async def ingest_many(request: Request, name: str) -> Response:
        service = get_service(request)
        check_collection_name(name)
        await service.ingestor()  # the store opens (or its error is this request's)
        settings: Settings | None = getattr(request.app.state, "settings", None)
        limit = max(
            settings.max_body_bytes if settings is not None else DEFAULT_LIMIT,
            service.config.max_document_bytes,
        )
        uploads = await _uploads(request, limit)
        events = _ingest_events(service, name, uploads)
        if "application/x-ndjson" in request.headers.get("accept", ""):
            return StreamingResponse(
                (json.dumps(event) + "\n" async for event in events), media_type="application/x-ndjson"
            )
        documents = [event async for event in events]
        summary = documents.pop()
        return JSONResponse({**summary, "object": "ingest", "data": documents})

    @router.delete("/collections/{name}/documents/{document:path}")
    async def delete_document(request: Request, name: str, document: str) -> dict[str, Any]:
        await get_service(request).delete_document(name, document)
        return {"object": "document", "name": document, "deleted": True}

    @router.post("/query")
    async def query(request: Request) -> dict[str, Any]:
        body = parse(QueryIn, await _json(request))
        outcome = await get_service(request).query(
            body.collection, body.query, top_k=body.top_k, strategy=body.strategy
        )
        trace = outcome.trace
        return {
            "answer": trace.answer,
            "answer_mode": trace.answer_mode or "refused",
            "citations": outcome.citations,
            "intent": (trace.intent or {}).get("name"),
            "intent_confidence": (trace.intent or {}).get("confidence"),
            "strategy": trace.strategy,
            "quality": trace.quality,
            "trace_id": trace.id,
            "timings_ms": {**outcome.timings_ms, "total": trace.total_ms},
        }

    @router.post("/search")
    async def search(request: Request) -> dict[str, Any]:
        body = parse(SearchIn, await _json(request))
        retrieval, intent = await get_service(request).search(
            body.collection, body.query, top_k=body.top_k or 10, strategy=body.strategy
        )
        return {
            "strategy": retrieval.strategy,
            "intent": intent or None,
            "best_similarity": round(retrieval.best_similarity, 4),
            "results": [
                {
                    "rank": r.rank, "chunk_id": r.chunk.id, "document": r.chunk.document,
                    "source": r.chunk.source, "section": r.chunk.section, "text": r.chunk.text,
                    "score": r.score, "base_score": r.base_score,
                }
                for r in retrieval.chunks
            ],
        }  # fmt: skip

    @router.get("/traces/{trace_id}")
    async def get_trace(request: Request, trace_id: str) -> dict[str, Any]:
        trace = await get_service(request).trace(trace_id)
        return {"object": "trace", **trace.as_dict()}

    @router.post("/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        body = parse(FeedbackIn, await _json(request))
        return await get_service(request).feedback(body.trace_id, body.rating)

    @router.get("/values")
    async def values(request: Request, collection: str = "default", limit: int = 50) -> dict[str, Any]:
        if not 1 <= limit <= 1000:
            raise BadRequest("limit must be between 1 and 1000", param="limit")
        rows = await get_service(request).values(collection, limit)
        return {
            "collection": collection,
            "documents": [asdict(r) for r in rows if r.kind == "document"],
            "chunks": [asdict(r) for r in rows if r.kind == "chunk"],
        }

    @router.get("/metrics")
    async def metrics(request: Request, collection: str | None = None) -> dict[str, Any]:
        return {"object": "list", "data": await get_service(request).metrics(collection)}

    return router


MAX_UPLOAD_FILES = 1000  # files in one POST .../ingest


async def _uploads(request: Request, max_bytes: int) -> list[Upload]:
    """The files of a multipart ``.../ingest`` body: ``file`` parts, each named by its file name
    (a relative path is kept) unless ``name`` fields, one per file in the same order, say otherwise;
    ``source``, ``title`` and ``format`` likewise. Their sizes together: at most ``max_bytes``
    (413), since they are held in memory while ingested."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadRequest("expected a multipart/form-data body with one or more 'file' parts", param="file")
    try:
        form = await request.form(max_files=MAX_UPLOAD_FILES, max_fields=4 * MAX_UPLOAD_FILES)
    except HTTPException as exc:  # a malformed multipart body, or too many parts
        raise BadRequest(f"the multipart body cannot be read: {exc.detail}") from exc
    files = form.getlist("file")
    if not files or not all(isinstance(f, UploadFile) for f in files):
        raise BadRequest("a multipart upload needs one or more 'file' parts", param="file")
    total = sum(cast(UploadFile, f).size or 0 for f in files)
    if total > max_bytes:
        raise PayloadTooLarge(
            f"the files of this request are {total} bytes together; one request may carry {max_bytes} "
            "(the larger of max_body_bytes and rag.max_document_bytes): send them in several",
            param="file",
        )
    fields: dict[str, list[str]] = {}
    for key in ("name", "source", "title", "format"):
        values = [str(v) for v in form.getlist(key)]
        if values and len(values) != len(files):
            raise BadRequest(
                f"{len(values)} '{key}' fields for {len(files)} files: give one per file, in order, or none",
                param=key,
            )
        if key == "format" and (bad := next((v for v in values if v and v not in FORMATS), None)):
            raise BadRequest(f"format {bad!r} is not one of {', '.join(FORMATS)}", param="format")
        fields[key] = values
    uploads = []
    for i, upload in enumerate(cast(list[UploadFile], files)):
        given = {key: (values[i] or None) if values else None for key, values in fields.items()}
        doc_name = given["name"] or upload.filename or ""
        fmt = (
            cast(Format, given["format"]) if given["format"] else detect_format(doc_name, upload.content_type)
        )
        uploads.append(
            Upload(doc_name, await upload.read(), fmt, given["source"] or doc_name, given["title"])
        )
    return uploads


async def _ingest_events(
    service: RagService, collection: str, uploads: list[Upload]
) -> AsyncIterator[dict[str, Any]]:
    """One event per document as it is stored or fails, then a summary."""
    started = time.perf_counter()
    counts = {"created": 0, "updated": 0, "unchanged": 0, "failed": 0}
    chunks = 0
    async for upload, outcome in service.ingest_many(collection, uploads):
        if isinstance(outcome, IngestResult):
            counts[outcome.status] += 1
            chunks += outcome.chunks if outcome.status != "unchanged" else 0
            yield {"object": "ingest.document", **ingest_json(outcome)}
        else:
            counts["failed"] += 1
            error = as_nanoserve_error(outcome)
            yield {
                "object": "ingest.document", "collection": collection, "document": upload.name,
                "status": "failed", "status_code": error.status, **openai_error_body(error),
            }  # fmt: skip
    seconds = time.perf_counter() - started
    yield {
        "object": "ingest.summary", "collection": collection, "documents": len(uploads), **counts,
        "chunks": chunks, "seconds": round(seconds, 3),
    }  # fmt: skip
