"""Pipeline metrics for Prometheus: in-memory counters since start, read without I/O.

``GET /v1/rag/metrics`` aggregates the trace table (history across restarts); this collector is
what ``/metrics`` exposes (counters since this process started, the Prometheus way). Register it
on the gateway's registry: ``registry.register(service.prometheus_collector())``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(slots=True)
class _Collection:
    queries: dict[str, int] = field(default_factory=dict)  # by status
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_sum: float = 0.0
    latency_count: int = 0
    quality_sum: dict[str, float] = field(default_factory=dict)
    quality_count: int = 0
    feedback: int = 0
    documents: int = 0
    chunks: int = 0


class RagStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: dict[str, _Collection] = {}

    def _get(self, collection: str) -> _Collection:
        return self._by.setdefault(collection, _Collection())

    def observe_query(
        self, collection: str, status: str, seconds: float, quality: Mapping[str, float] | None
    ) -> None:
        with self._lock:
            c = self._get(collection)
            c.queries[status] = c.queries.get(status, 0) + 1
            c.latency_sum += seconds
            c.latency_count += 1
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    c.buckets[i] += 1
            if quality:
                c.quality_count += 1
                for k, v in quality.items():
                    c.quality_sum[k] = c.quality_sum.get(k, 0.0) + v

    def observe_ingest(self, collection: str, chunks: int) -> None:
        with self._lock:
            c = self._get(collection)
            c.documents += 1
            c.chunks += chunks

    def observe_feedback(self, collection: str) -> None:
        with self._lock:
            self._get(collection).feedback += 1

    def collector(self) -> Collector:
        return _StatsCollector(self)

    def snapshot(self) -> dict[str, _Collection]:
        with self._lock:
            return {
                name: _Collection(dict(c.queries), list(c.buckets), c.latency_sum, c.latency_count,
                                  dict(c.quality_sum), c.quality_count, c.feedback, c.documents, c.chunks)
                for name, c in self._by.items()
            }  # fmt: skip


class _StatsCollector(Collector):
    def __init__(self, stats: RagStats):
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        snap = self.stats.snapshot()
        queries = CounterMetricFamily(
            "nanoserve_rag_queries", "RAG queries by outcome", labels=["collection", "status"]
        )
        latency = HistogramMetricFamily(
            "nanoserve_rag_query_latency_seconds", "RAG query latency", labels=["collection"]
        )
        quality = GaugeMetricFamily(
            "nanoserve_rag_quality", "Mean answer quality by dimension", labels=["collection", "dimension"]
        )
        feedback = CounterMetricFamily(
            "nanoserve_rag_feedback", "Feedback ratings received", labels=["collection"]
        )
        docs = CounterMetricFamily(
            "nanoserve_rag_documents_ingested", "Documents ingested", labels=["collection"]
        )
        chunks = CounterMetricFamily(
            "nanoserve_rag_chunks_ingested", "Chunks ingested", labels=["collection"]
        )
        for name, c in snap.items():
            for status, n in c.queries.items():
                queries.add_metric([name, status], n)
            if c.latency_count:
                buckets = [(str(b), n) for b, n in zip(LATENCY_BUCKETS, c.buckets)] + [
                    ("+Inf", c.latency_count)
                ]
                latency.add_metric([name], buckets, c.latency_sum)
            for dim, total in c.quality_sum.items():
                quality.add_metric([name, dim], total / c.quality_count)
            feedback.add_metric([name], c.feedback)
            docs.add_metric([name], c.documents)
            chunks.add_metric([name], c.chunks)
        yield from (queries, latency, quality, feedback, docs, chunks)
