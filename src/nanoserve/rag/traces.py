"""Traces of queries, their feedback, and per-collection pipeline metrics, in SQLite.

Every query, answered, refused or failed, stores one trace: its phases with timings, the chunks it
retrieved with their scores (a snapshot of their text, since documents may be re-ingested later),
the answer and its quality. Metrics are aggregated from the traces, so they survive restarts.
Methods block; ``RagService`` calls them in a thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nanoserve.errors import Conflict, NotFound

_SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    query TEXT NOT NULL,
    status TEXT NOT NULL,          -- ok | refused | error
    intent TEXT,
    strategy TEXT,
    answer TEXT,
    overall REAL,
    total_ms REAL NOT NULL,
    created_at REAL NOT NULL,
    feedback REAL,
    feedback_at REAL,
    body TEXT NOT NULL             -- the full trace as JSON
);
CREATE INDEX IF NOT EXISTS traces_collection ON traces (collection, created_at);
"""


@dataclass(slots=True)
class TraceChunk:
    rank: int
    chunk_id: int
    document_id: int
    document: str
    section: str
    score: float
    base_score: float
    citation: int | None
    text: str


@dataclass(slots=True)
class Trace:
    id: str
    collection: str
    query: str
    status: str = "ok"
    intent: dict[str, Any] | None = None
    strategy: str | None = None
    route: str | None = None
    phases: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "ms"}]
    retrieved: list[TraceChunk] = field(default_factory=list)
    answer: str | None = None
    answer_mode: str | None = None  # generated | extractive | refused
    generated: str | None = None  # the generation model's raw output
    answerable: bool | None = None
    quality: dict[str, float] | None = None
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    total_ms: float = 0.0
    feedback: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        data = dict(data)
        data["retrieved"] = [TraceChunk(**c) for c in data.get("retrieved", [])]
        return cls(**data)


class TraceStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.executescript(_SCHEMA)

    def save(self, trace: Trace) -> None:
        with self._lock:
            self._db.execute(
                """INSERT OR REPLACE INTO traces (id, collection, query, status, intent, strategy, answer,
                       overall, total_ms, created_at, feedback, body)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    trace.id, trace.collection, trace.query, trace.status,
                    (trace.intent or {}).get("name"), trace.strategy, trace.answer,
                    (trace.quality or {}).get("overall"), trace.total_ms, trace.created_at,
                    trace.feedback, json.dumps(trace.as_dict()),
                ),
            )  # fmt: skip

    def get(self, trace_id: str) -> Trace:
        with self._lock:
            row = self._db.execute("SELECT body, feedback FROM traces WHERE id = ?", (trace_id,)).fetchone()
        if row is None:
            raise NotFound(f"trace {trace_id!r} does not exist", param="trace_id")
        trace = Trace.from_dict(json.loads(row[0]))
        trace.feedback = row[1]
        return trace

    def record_feedback(self, trace_id: str, rating: float) -> Trace:
        """Mark the trace rated; a trace takes one rating (``Conflict`` on a second)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT feedback FROM traces WHERE id = ?", (trace_id,)).fetchone()
                if row is None:
                    raise NotFound(f"trace {trace_id!r} does not exist", param="trace_id")
                if row[0] is not None:
                    raise Conflict(f"trace {trace_id!r} already has feedback ({row[0]})", param="trace_id")
                self._db.execute(
                    "UPDATE traces SET feedback = ?, feedback_at = ? WHERE id = ?",
                    (rating, time.time(), trace_id),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return self.get(trace_id)

    def clear_feedback(self, trace_id: str) -> None:
        """Undo ``record_feedback`` (when applying the rating's value updates failed)."""
        with self._lock:
            self._db.execute(
                "UPDATE traces SET feedback = NULL, feedback_at = NULL WHERE id = ?", (trace_id,)
            )

    def metrics(self, collection: str | None = None) -> list[dict[str, Any]]:
        """Per collection: query counts, success rate, latency and quality averages, feedback."""
        where, params = ("WHERE collection = ?", (collection,)) if collection else ("", ())
        with self._lock:
            rows = self._db.execute(
                f"""SELECT collection, status, total_ms, json_extract(body, '$.quality'), feedback FROM traces {where}
                    ORDER BY collection""",
                params,
            ).fetchall()
        groups: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows:
            groups.setdefault(row[0], []).append(row)
        return [_aggregate(name, group) for name, group in groups.items()]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _aggregate(collection: str, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    statuses = [r[1] for r in rows]
    latencies = [r[2] for r in rows if r[1] != "error"]
    quality_sums: dict[str, float] = {}
    quality_n = 0
    for r in rows:
        quality = json.loads(r[3]) if r[3] else {}
        if quality:
            quality_n += 1
            for k, v in quality.items():
                quality_sums[k] = quality_sums.get(k, 0.0) + v
    ratings = [r[4] for r in rows if r[4] is not None]
    total = len(rows)
    return {
        "collection": collection,
        "queries": total,
        "answered": statuses.count("ok"),
        "refused": statuses.count("refused"),
        "errors": statuses.count("error"),
        "success_rate": round((total - statuses.count("error")) / total, 4) if total else 0.0,
        "latency_ms": {
            "mean": round(sum(latencies) / len(latencies), 1) if latencies else 0.0,
            "p50": round(_percentile(latencies, 0.5), 1),
            "p95": round(_percentile(latencies, 0.95), 1),
        },
        "quality": {k: round(v / quality_n, 4) for k, v in quality_sums.items()},
        "feedback": {
            "count": len(ratings),
            "mean": round(sum(ratings) / len(ratings), 4) if ratings else None,
        },
    }
