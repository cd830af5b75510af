"""The MCP tools' structured outputs (pydantic; their JSON schemas are the tools' output schemas).

They mirror the gateway's REST answers field for field (see docs/rag.md and the admin API), typed
where a client benefits from knowing the type. Every model allows extra fields, so a field the
gateway adds later passes through instead of failing a client's output-schema check.
The seed-000 aliases keep their callers' camelCase names.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- the pipeline ---


class Citation(_Out):
    n: int = Field(description="the [n] marker in the answer")
    document: str
    source: str | None = None
    chunk_id: int
    section: str | None = None
    text: str = Field(description="the cited chunk's text")
    score: float | None = None
    support: float | None = Field(default=None, description="how well the chunk backs its sentence (0..1)")


class QueryResult(_Out):
    answer: str
    answer_mode: str = Field(description="generated, extractive or refused")
    citations: list[Citation]
    intent: str | None = None
    intent_confidence: float | None = None
    strategy: str | None = None
    quality: dict[str, float] = Field(description="overall and each quality dimension, 0..1")
    trace_id: str
    timings_ms: dict[str, float] = Field(description="per phase and total")


class DocumentIngested(_Out):
    document: str
    title: str | None = None
    status: str = Field(description="created, updated or unchanged")
    chunks: int
    chars: int | None = None
    total_ms: float | None = None


class IngestFailure(_Out):
    document: str
    error: str


class IngestResult(_Out):
    collection: str
    documents: list[DocumentIngested]
    failed: list[IngestFailure] = Field(default_factory=list, description="files that could not be ingested")
    created: int
    updated: int
    unchanged: int
    chunks: int = Field(description="chunks of the created and updated documents")


class ValueChange(_Out):
    id: int
    credit: float
    old: float
    new: float


class FeedbackResult(_Out):
    trace_id: str
    rating: float
    chunks: list[ValueChange]
    documents: list[ValueChange]
    skipped_chunks: int = 0


class ValueRow(_Out):
    kind: str = Field(description="document or chunk")
    id: int
    document: str
    section: str = ""
    value: float = Field(description="learned value in [-1, 1]; 0 before any feedback")
    feedback: int = Field(description="feedback events that touched it")


class DocumentValues(_Out):
    collection: str
    documents: list[ValueRow]
    chunks: list[ValueRow]


class Collection(_Out):
    name: str
    dimensions: int | None = None
    embedding_model: str | None = None
    documents: int
    chunks: int


class Collections(_Out):
    collections: list[Collection]


# --- observability ---


class LatencyMs(_Out):
    mean: float
    p50: float
    p95: float


class PipelineMetrics(_Out):
    collection: str
    queries: int
    answered: int
    refused: int
    errors: int
    success_rate: float
    latency_ms: LatencyMs
    quality: dict[str, float]
    feedback: dict[str, float | int | None]


class ModelServing(_Out):
    model: str
    requests: int = Field(description="requests answered since the gateway started")
    errors: int = Field(description="answered with a status of 400 or more")
    prompt_tokens: int
    generated_tokens: int
    latency_mean_s: float | None = Field(description="arrival to last byte at the gateway")
    latency_p50_s: float | None = Field(description="estimated from the histogram buckets")
    latency_p95_s: float | None
    ttft_mean_s: float | None = Field(description="engine time to first token, generation only")
    state: str | None = Field(description="stopped, starting, ready, draining, stopping or failed")


class ServingMetrics(_Out):
    requests: int
    errors: int
    prompt_tokens: int
    generated_tokens: int
    models: list[ModelServing]
    memory_used_mib: float | None = None
    memory_budget_mib: float | None = None


class Observability(_Out):
    gateway: str
    ready: bool
    not_ready_reason: str | None = None
    pipeline: list[PipelineMetrics]
    serving: ServingMetrics


# --- models ---


class ModelStatus(_Out):
    id: str
    state: str
    estimated_mib: int | None = None
    measured_mib: int | None = None
    loaded_at: str | None = None
    last_used: str | None = None
    expires_at: str | None = None
    in_flight: int = 0
    queued: int = 0
    priority: int = 0
    pinned: bool = False


class DeviceStatus(_Out):
    name: str
    total_mib: int | None = None
    used_mib: int | None = None
    free_mib: int | None = None


class ModelsStatus(_Out):
    devices: list[DeviceStatus]
    models: list[ModelStatus]


class LoadPlan(_Out):
    model: str
    fits: bool
    would_evict: list[str]
    free_after_mib: int | None = None
    needed_mib: int | None = None


class LoadResult(_Out):
    dry_run: bool
    model: ModelStatus | None = Field(default=None, description="the loaded model (not on a dry run)")
    plan: LoadPlan | None = Field(default=None, description="what loading would do (dry run only)")


# --- seed 000's tools, kept for their callers ---

Expertise = Literal["beginner", "intermediate", "advanced", "expert"]


class NanoResult(_Out):
    citation: int
    document: str
    section: str | None = None
    source: str | None = None
    chunkId: int
    text: str
    score: float | None = None


class NanoQueryResult(_Out):
    results: list[NanoResult]
    answer: str
    qualityScore: float
    executionTimeMs: float
    traceId: str
    message: str


class NanoMetrics(_Out):
    totalQueries: int
    successfulQueries: int
    averageExecutionTime: float
    averageQualityScore: float


class NanoObservability(_Out):
    status: Literal["operational", "degraded"]
    metrics: NanoMetrics
    collections: list[PipelineMetrics]


class NodeValue(_Out):
    nodeId: int
    kind: str
    document: str
    section: str = ""
    value: float
    feedbackCount: int


class NanoNodeValues(_Out):
    collection: str
    nodeValues: list[NodeValue]
