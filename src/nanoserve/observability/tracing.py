"""Optional OpenTelemetry tracing: off by default, and free when off.

``Tracing()`` is tracing switched off: every method is a no-op and OpenTelemetry is never
imported. ``create_tracing(endpoint, ...)`` returns ``OtelTracing`` when an OTLP endpoint is
configured (``observability.otlp_endpoint``; the gateway hands it to its workers in the
``NANOSERVE_OTLP_ENDPOINT`` variable), exporting spans over OTLP/HTTP from a background thread.

Spans of one request::

    POST /v1/chat/completions        gateway, from arrival to the last byte sent (server span)
    ├── queue                        waiting for a ready worker (cold start included)
    └── worker                       the call to the worker (client span; W3C traceparent sent)
        └── worker /v1/chat/completions    in the worker process (server span)
            ├── engine.prefill       request handed to the engine → first token
            └── engine.decode        first token → finished

Callers treat spans as opaque values: ``start`` returns one, ``end`` ends it. Spans are
created once per request phase, never per token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from nanoserve.errors import ConfigError
from nanoserve.wire.headers import TRACEPARENT_HEADER

WORKER_ENDPOINT_ENV = "NANOSERVE_OTLP_ENDPOINT"
NO_SPAN: Any = None


class Tracing:
    """Tracing switched off."""

    enabled: ClassVar[bool] = False

    def start(
        self,
        name: str,
        *,
        parent: Any = None,
        kind: str = "internal",
        attributes: Mapping[str, Any] | None = None,
        start_ns: int | None = None,
    ) -> Any:
        """A started span; ``parent`` is a span, or a context from ``extract``."""
        return NO_SPAN

    def end(
        self,
        span: Any,
        *,
        name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        error: str | None = None,
        end_ns: int | None = None,
    ) -> None:
        """End ``span``: rename it, add attributes (None values skipped), an error status."""

    def inject(self, span: Any) -> dict[str, str] | None:
        """Headers that make ``span`` the parent of the receiver's spans (W3C trace context)."""
        return None

    def extract(self, headers: Mapping[str, str]) -> Any:
        """The remote parent in ``headers``, or None."""
        return None

    def shutdown(self) -> None:
        """Flush and stop exporting."""


class OtelTracing(Tracing):
    """Tracing through an OpenTelemetry SDK ``TracerProvider`` (tests pass one with an in-memory exporter)."""

    enabled: ClassVar[bool] = True

    def __init__(self, provider: Any):
        from opentelemetry import trace
        from opentelemetry.context import Context
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = provider
        self._tracer = provider.get_tracer("nanoserve")
        self._set_span_in_context = trace.set_span_in_context
        self._context_type = Context
        self._kinds = {"internal": SpanKind.INTERNAL, "server": SpanKind.SERVER, "client": SpanKind.CLIENT}
        self._error_status = lambda message: Status(StatusCode.ERROR, message)
        self._propagator = TraceContextTextMapPropagator()

    def start(
        self,
        name: str,
        *,
        parent: Any = None,
        kind: str = "internal",
        attributes: Mapping[str, Any] | None = None,
        start_ns: int | None = None,
    ) -> Any:
        if parent is None:
            context = self._context_type()  # a new trace, whatever is current
        elif isinstance(parent, self._context_type):
            context = parent
        else:
            context = self._set_span_in_context(parent)
        return self._tracer.start_span(
            name, context=context, kind=self._kinds[kind], attributes=_clean(attributes), start_time=start_ns
        )

    def end(
        self,
        span: Any,
        *,
        name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        error: str | None = None,
        end_ns: int | None = None,
    ) -> None:
        if name:
            span.update_name(name)
        if attributes:
            span.set_attributes(_clean(attributes))
        if error:
            span.set_status(self._error_status(error))
        span.end(end_time=end_ns)

    def inject(self, span: Any) -> dict[str, str] | None:
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._set_span_in_context(span))
        return carrier

    def extract(self, headers: Mapping[str, str]) -> Any:
        if TRACEPARENT_HEADER not in headers:
            return None
        return self._propagator.extract(headers)

    def shutdown(self) -> None:
        self._provider.shutdown()


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (attributes or {}).items() if v is not None}


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a collector's base address (``/v1/traces`` added if no path)."""
    if urlsplit(endpoint).path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def create_tracing(endpoint: str | None, service_name: str, **resource: str) -> Tracing:
    """Tracing exporting to ``endpoint`` over OTLP/HTTP, or tracing off when it is None or empty."""
    if not endpoint:
        return Tracing()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            "observability.otlp_endpoint is set but OpenTelemetry is not installed: "
            "pip install 'nanoserve[otel]'"
        ) from exc
    provider = TracerProvider(resource=Resource.create({"service.name": service_name, **resource}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
    return OtelTracing(provider)
