"""The OpenAPI document: every operation typed, every status it answers, each dialect's errors.

Routes read their own bodies (the gateway validates once and relays the client's bytes), so
FastAPI cannot see their request models: ``OPERATIONS`` names them, with the responses, and
``install(app)`` rewrites the generated document: request bodies, 200 answers (JSON, SSE or
NDJSON where the route streams), the error statuses in the route's dialect (OpenAI's
``{"error": {...}}``, Ollama's ``{"error": "..."}`` under ``/api/``) in place of FastAPI's 422,
and the two routes FastAPI does not own: ``/metrics`` and ``/mcp``.

The response models are the documented shape: the fields a client relies on are required, more
are allowed (workers and backends add their own, as OpenAI's API does).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.json_schema import models_json_schema

from nanoserve.api.admin import LoadRequest, ScaleRequest, UnloadRequest
from nanoserve.api.ollama import protocol as ollama
from nanoserve.rag.protocol import DocumentIn, FeedbackIn, QueryIn, SearchIn
from nanoserve.wire.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from nanoserve.wire.rerank import RerankRequest


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- errors -------------------------------------------------------------------------------------
class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    """The error body of every route outside ``/api/``."""

    error: OpenAIErrorDetail


class OllamaError(BaseModel):
    """The error body of Ollama's routes (``/api/...``)."""

    error: str


# -- OpenAI -------------------------------------------------------------------------------------
class ModelCard(_Open):
    id: str
    object: str
    created: int
    owned_by: str


class ModelList(_Open):
    object: str
    data: list[ModelCard]


class ChatCompletion(_Open):
    id: str
    object: str
    created: int
    model: str
    choices: list[dict[str, Any]]
    usage: dict[str, Any]


class Completion(ChatCompletion):
    pass


class EmbeddingList(_Open):
    object: str
    data: list[dict[str, Any]]
    model: str
    usage: dict[str, Any]


class RerankList(_Open):
    """The Jina/Cohere answer: ``results`` best first, each ``{index, relevance_score, document}``."""

    id: str
    object: str
    model: str
    results: list[dict[str, Any]]
    usage: dict[str, Any]


class TeiRanks(RootModel[list[dict[str, Any]]]):
    """The answer to a TEI-style request (``texts``): ``[{index, score, text}]``, best first."""


# -- Ollama -------------------------------------------------------------------------------------
class OllamaReply(_Open):
    """A non-streamed ``/api/generate`` or ``/api/chat`` answer (streamed: NDJSON lines of it)."""

    model: str
    created_at: str
    done: bool


class OllamaVersion(_Open):
    version: str


class OllamaStatus(_Open):
    status: str


# -- health, admin, RAG -------------------------------------------------------------------------
class Health(_Open):
    status: str


class Liveness(Health):
    """``GET /health``: ``{"status": "ok", "timestamp": ...}`` (seed 000's shape)."""

    timestamp: str = Field(description="the server's time, ISO 8601 UTC")


class ReplicaStatus(_Open):
    """One replica of a model."""

    id: str
    replica: int
    state: str
    device: str
    address: str | None
    in_flight: int
    queued: int
    requests_total: int
    measured_mib: int | None
    pid: int | None
    node: str | None = None  # the cluster node it runs on (None: the gateway's machine)


class ModelStatus(_Open):
    """One model in ``/models/status`` (its replicas aggregated), and the answer to a load, an
    unload or a scale."""

    id: str
    state: str
    kind: str
    engine: str
    in_flight: int
    queued: int
    pid: int | None
    error: str | None
    replicas: list[ReplicaStatus]
    service: str | None = Field(default=None, description="a load's answer to its `service`: the engine")
    note: str | None = Field(default=None, description="why the `service` asked for was ignored")


class GpuMemory(_Open):
    """One GPU in seed 002's summary (MiB)."""

    name: str
    total_mb: int
    used_mb: int
    free_mb: int
    utilization_percent: float


class LoadedModel(_Open):
    """A model holding a worker, in seed 002's shape."""

    model: str
    service: str = Field(description="the engine serving it")
    loaded_at: str | None
    status: Literal["loaded", "loading", "unloading"]


class NodeStatus(_Open):
    """A node of the cluster (``cluster:`` in the config, docs/cluster.md) and its devices."""

    id: str
    address: str
    devices: list[dict[str, Any]]


class AdminStatus(_Open):
    """``GET /models/status``: memory per device (MiB) and every configured model; seed 002's
    summary: the GPUs' memory summed (each one under ``gpus``), or RAM's when there is no GPU; with
    a cluster, its nodes."""

    models: list[ModelStatus]
    memory_device: Literal["gpu", "ram"]
    total_mb: int
    used_mb: int
    free_mb: int
    utilization_percent: float
    gpus: list[GpuMemory]
    loaded_models: dict[str, LoadedModel]
    nodes: list[NodeStatus] | None = None


class LoadPlan(_Open):
    """``POST /models/load`` with ``dry_run``: what loading would evict and leave."""

    model: str
    fits: bool
    would_evict: list[str]
    service: str | None = None
    note: str | None = None


class ReloadResult(_Open):
    """``POST /admin/reload``: what the new config changed (model ids, setting names)."""

    added: list[str]
    removed: list[str]
    replaced: list[str]
    updated: list[str]
    unchanged: list[str]
    restart_required: list[str]


class RagObject(_Open):
    """A RAG answer: a collection, a document, a trace, an ingest result, a query's answer..."""


JSON = "application/json"
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"
ANY_OBJECT: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True)
class Operation:
    request: type[BaseModel] | None = None
    ok: type[BaseModel] | tuple[type[BaseModel], ...] | None = None
    streams: str | None = None  # the media type of a streamed 200
    status: int = 200
    errors: tuple[int, ...] = (400, 404, 413, 429, 503)
    extra: dict[int, str] = field(default_factory=dict)  # more statuses: description
    form: dict[str, Any] | None = None  # the properties of a multipart/form-data body it takes


_FORMAT = {"type": "string", "enum": ["text", "markdown", "html", "pdf"]}
_DOCUMENT_FORM = {
    "file": {"type": "string", "format": "binary"},
    "name": {"type": "string"},
    "format": _FORMAT,
    "source": {"type": "string"},
    "title": {"type": "string"},
}
# many files; name, source, title and format: none, or one per file in the same order
_INGEST_FORM = {key: {"type": "array", "items": schema} for key, schema in _DOCUMENT_FORM.items()}


MODEL_ERRORS = (400, 404, 408, 413, 429, 503, 507)
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("get", "/health"): Operation(ok=Liveness, errors=()),
    ("get", "/ready"): Operation(ok=Health, errors=(503,)),
    # OpenAI
    ("get", "/v1/models"): Operation(ok=ModelList, errors=()),
    ("get", "/v1/models/{name}"): Operation(ok=ModelCard, errors=(404,)),
    ("post", "/v1/chat/completions"): Operation(ChatCompletionRequest, ChatCompletion, SSE, errors=MODEL_ERRORS),
    ("post", "/v1/completions"): Operation(CompletionRequest, Completion, SSE, errors=MODEL_ERRORS),
    ("post", "/v1/embeddings"): Operation(EmbeddingRequest, EmbeddingList, errors=MODEL_ERRORS),
    ("post", "/v1/rerank"): Operation(RerankRequest, (RerankList, TeiRanks), errors=MODEL_ERRORS),
    ("post", "/rerank"): Operation(RerankRequest, (RerankList, TeiRanks), errors=MODEL_ERRORS),
    # admin
    ("get", "/models/status"): Operation(ok=AdminStatus, errors=()),
    ("post", "/models/load"): Operation(LoadRequest, (ModelStatus, LoadPlan), errors=(400, 404, 413, 429, 503, 507)),
    ("post", "/models/unload"): Operation(UnloadRequest, ModelStatus, errors=(400, 404, 409, 413, 503)),
    ("post", "/models/scale"): Operation(ScaleRequest, ModelStatus, errors=(400, 404, 413, 429, 503, 507)),
    ("post", "/admin/reload"): Operation(ok=ReloadResult, errors=(400, 409)),
    # Ollama
    ("get", "/api/version"): Operation(ok=OllamaVersion, errors=()),
    ("head", "/api/version"): Operation(errors=()),
    ("post", "/api/generate"): Operation(ollama.GenerateRequest, OllamaReply, NDJSON, errors=MODEL_ERRORS),
    ("post", "/api/chat"): Operation(ollama.ChatRequest, OllamaReply, NDJSON, errors=MODEL_ERRORS),
    ("post", "/api/embed"): Operation(ollama.EmbedRequest, ollama.EmbedResponse, errors=MODEL_ERRORS),
    ("post", "/api/embeddings"): Operation(ollama.EmbeddingsRequest, ollama.EmbeddingResponse, errors=MODEL_ERRORS),
    ("get", "/api/tags"): Operation(ok=ollama.ListResponse, errors=()),
    ("head", "/api/tags"): Operation(errors=()),
    ("get", "/api/ps"): Operation(ok=ollama.ProcessResponse, errors=()),
    ("post", "/api/show"): Operation(ollama.ShowRequest, ollama.ShowResponse, errors=(400, 404, 413)),
    ("post", "/api/pull"): Operation(ollama.NamedRequest, OllamaStatus, NDJSON, errors=(400, 404, 413, 502)),
    ("delete", "/api/delete"): Operation(ollama.NamedRequest, errors=(400, 404, 413)),
    ("post", "/api/push"): Operation(ollama.NamedRequest, errors=(400,)),
    ("post", "/api/create"): Operation(ollama.NamedRequest, errors=(400,)),
    ("post", "/api/copy"): Operation(ollama.NamedRequest, errors=(400,)),
    ("head", "/api/blobs/{digest}"): Operation(errors=(404,)),
    ("post", "/api/blobs/{digest}"): Operation(errors=(400,)),
    # RAG
    ("get", "/v1/rag/collections"): Operation(ok=RagObject, errors=(503,)),
    ("get", "/v1/rag/collections/{name}"): Operation(ok=RagObject, errors=(400, 404, 503)),
    ("delete", "/v1/rag/collections/{name}"): Operation(ok=RagObject, errors=(400, 404, 503)),
    ("post", "/v1/rag/collections/{name}/documents"): Operation(
        DocumentIn, RagObject, errors=(400, 404, 409, 413, 415, 429, 503, 507), extra={201: "created"},
        form=_DOCUMENT_FORM,
    ),
    ("post", "/v1/rag/collections/{name}/ingest"): Operation(ok=RagObject, streams=NDJSON, errors=(400, 413, 503), form=_INGEST_FORM),
    ("delete", "/v1/rag/collections/{name}/documents/{document}"): Operation(ok=RagObject, errors=(400, 404, 503)),
    ("post", "/v1/rag/query"): Operation(QueryIn, RagObject, errors=MODEL_ERRORS),
    ("post", "/v1/rag/search"): Operation(SearchIn, RagObject, errors=MODEL_ERRORS),
    ("get", "/v1/rag/traces/{trace_id}"): Operation(ok=RagObject, errors=(400, 404, 503)),
    ("post", "/v1/rag/feedback"): Operation(FeedbackIn, RagObject, errors=(400, 404, 413, 503)),
    ("get", "/v1/rag/values"): Operation(ok=RagObject, errors=(400, 404, 503)),
    ("get", "/v1/rag/metrics"): Operation(ok=RagObject, errors=(400, 404, 503)),
}  # fmt: skip

_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad request: the message names the parameter",
    404: "Unknown model, collection, document or trace",
    408: "The request waited past limits.request_timeout",
    409: "Conflict (requests in flight; a collection of other dimensions)",
    413: "Body or field over its limit",
    415: "Unsupported document format",
    429: "Queue full, the server's concurrency limit or a quota reached (the message names it); "
    "Retry-After when it will pass",
    502: "The model hub failed, or a download did not match its checksum",
    503: "No room right now, or the backend is unavailable; Retry-After",
    507: "The model can never fit the memory budget",
}


def _models() -> list[type[BaseModel]]:
    out: list[type[BaseModel]] = [OpenAIError, OllamaError]
    for op in OPERATIONS.values():
        if op.request is not None:
            out.append(op.request)
        oks = op.ok if isinstance(op.ok, tuple) else (op.ok,) if op.ok is not None else ()
        out.extend(oks)
    return list(dict.fromkeys(out))


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _components() -> dict[str, Any]:
    models = _models()
    keys, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    # each model under its own class name (what _ref points at)
    for model in models:
        ref = keys[(model, "validation")]
        if "$ref" in ref:
            name = ref["$ref"].rsplit("/", 1)[-1]
            if name != model.__name__:
                schemas[model.__name__] = {"$ref": ref["$ref"]}
        else:
            schemas[model.__name__] = ref
    return schemas


def _ok_content(op: Operation) -> dict[str, Any]:
    oks = op.ok if isinstance(op.ok, tuple) else (op.ok,) if op.ok is not None else ()
    schema: dict[str, Any] = (
        ANY_OBJECT if not oks else _ref(oks[0]) if len(oks) == 1 else {"anyOf": [_ref(m) for m in oks]}
    )
    content: dict[str, Any] = {JSON: {"schema": schema}}
    if op.streams is not None:
        content[op.streams] = {"schema": {"type": "string"}}
    return content


def _operation(path: str, item: dict[str, Any], op: Operation, method: str) -> None:
    item["operationId"] = method + "_" + "".join(c if c.isalnum() else "_" for c in path).strip("_")
    error = OllamaError if path.startswith("/api/") else OpenAIError
    responses: dict[str, Any] = {}
    if method == "head":
        responses["200"] = {"description": "OK (headers only)"}
    elif op.ok is not None or op.request is None or op.streams:
        responses[str(op.status)] = {"description": _REASONS[op.status], "content": _ok_content(op)}
    for status, description in op.extra.items():
        responses[str(status)] = {"description": description, "content": _ok_content(op)}
    for status in op.errors:
        responses[str(status)] = {
            "description": _REASONS[status],
            "content": {JSON: {"schema": _ref(error)}},
        }
    if not responses:
        responses["200"] = {"description": "OK", "content": _ok_content(op)}
    item["responses"] = responses
    declared = {p["name"] for p in item.get("parameters", []) if p.get("in") == "path"}
    for name in re.findall(r"{(\w+)}", path):
        if name not in declared:  # a route that ignores its path parameter still has it
            item.setdefault("parameters", []).append(
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            )
    content: dict[str, Any] = {}
    if op.request is not None:
        content[JSON] = {"schema": _ref(op.request)}
    if op.form is not None:
        content["multipart/form-data"] = {
            "schema": {"type": "object", "required": ["file"], "properties": op.form}
        }
    if content:
        item["requestBody"] = {"required": True, "content": content}


_EXTRA_PATHS: dict[str, Any] = {
    "/metrics": {
        "get": {
            "tags": ["observability"],
            "summary": "Prometheus metrics (text exposition format)",
            "operationId": "metrics",
            "responses": {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }
    },
    "/mcp": {
        method: {
            "tags": ["mcp"],
            "summary": f"MCP streamable HTTP ({method.upper()}): JSON-RPC messages of the Model Context Protocol",
            "operationId": f"mcp_{method}",
            "description": "The official MCP SDK's transport; see docs/mcp.md for the tools.",
            "responses": {
                "200": {
                    "description": "JSON-RPC answer, or an SSE stream of them",
                    "content": {JSON: {"schema": ANY_OBJECT}, SSE: {"schema": {"type": "string"}}},
                },
                "202": {"description": "Accepted (a notification or a response)"},
                "400": {"description": "Not a valid MCP request", "content": {JSON: {"schema": ANY_OBJECT}}},
                "404": {"description": "Unknown session", "content": {JSON: {"schema": ANY_OBJECT}}},
                "405": {"description": "Method not allowed here", "content": {JSON: {"schema": ANY_OBJECT}}},
                "406": {"description": "Not acceptable (Accept header)", "content": {JSON: {"schema": ANY_OBJECT}}},
                "415": {"description": "Unsupported content type", "content": {JSON: {"schema": ANY_OBJECT}}},
            },
        }
        for method in ("get", "post", "delete")
    },
}  # fmt: skip


def build(app: FastAPI) -> dict[str, Any]:
    with warnings.catch_warnings():  # GET+HEAD routes share an id until _operation renames them
        warnings.simplefilter("ignore", UserWarning)
        doc = get_openapi(title=app.title, version=app.version, routes=app.routes, description=__doc__)
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    components.update(_components())
    for path, methods in doc.get("paths", {}).items():
        for method, item in methods.items():
            op = OPERATIONS.get((method, path))
            if op is None:  # a route added since: still no 422, errors in its dialect
                op = Operation(errors=(400, 404))
            _operation(path, item, op, method)
    doc["paths"].update(_EXTRA_PATHS)
    return doc


def install(app: FastAPI) -> None:
    """Serve ``build(app)`` as ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
