"""Everything the gateway observes with, built once by ``create_app`` and passed explicitly:
metrics, the lifecycle log and tracing. It only listens: supervising the workers is the
orchestrator's (``orchestrator/supervisor.py``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from nanoserve.observability.exposition import gather_metrics
from nanoserve.observability.logging import LifecycleLog, log_request
from nanoserve.observability.metrics import GatewayMetrics
from nanoserve.observability.tracing import Tracing, create_tracing

if TYPE_CHECKING:
    from nanoserve.config import Settings
    from nanoserve.observability.requests import RequestRecord, Timings
    from nanoserve.orchestrator.orchestrator import Orchestrator

log = logging.getLogger("nanoserve.observability")


class Telemetry:
    def __init__(self, settings: Settings, orchestrator: Orchestrator, *, tracing: Tracing | None = None):
        config = settings.observability
        self.orchestrator = orchestrator
        self.scrape_timeout = config.worker_metrics_timeout
        self.metrics = GatewayMetrics(model.id for model in orchestrator.registry)
        self.metrics.watch(orchestrator)
        self.lifecycle = LifecycleLog()
        # told of every finished request (the dashboard's recorder); must not block or raise
        self.request_listeners: list[Callable[[RequestRecord, Timings], None]] = []
        orchestrator.add_listener(self.lifecycle.on_event)
        self.tracing = (
            tracing if tracing is not None else create_tracing(config.otlp_endpoint, config.service_name)
        )

    def close(self) -> None:
        """Flush the last spans (after the workers have stopped)."""
        self.tracing.shutdown()

    def request_done(self, record: RequestRecord) -> None:
        """A response has ended: its metrics, its log line, its spans. Never raises."""
        try:
            timings = record.timings()
            self.metrics.request_done(record, timings)
            log_request(record, timings)
            for listener in self.request_listeners:
                listener(record, timings)
            if self.tracing.enabled:
                self._end_spans(record)
        except Exception:
            log.exception("recording request %s failed", record.request_id)

    def _end_spans(self, record: RequestRecord) -> None:
        error = record.error if (record.status >= 500 or record.stream_error) else None
        if record.worker_span is not None:
            self.tracing.end(record.worker_span, error=error)
        self.tracing.end(
            record.span,
            name=f"{record.method} {record.route}",
            attributes={
                "http.route": record.route,
                "http.response.status_code": record.status,
                "nanoserve.model": record.model or None,
                "nanoserve.cold_start": record.cold_start,
                "gen_ai.usage.input_tokens": record.prompt_tokens,
                "gen_ai.usage.output_tokens": record.completion_tokens,
                "nanoserve.rejection": record.rejection,
            },
            error=error,
        )

    async def exposition(self) -> str:
        return await gather_metrics(self.metrics, self.orchestrator, self.scrape_timeout)


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: the gateway's and every running worker's metrics, Prometheus text format."""
    telemetry: Telemetry = request.app.state.telemetry
    return Response(await telemetry.exposition(), media_type=CONTENT_TYPE_LATEST)
