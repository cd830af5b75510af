"""OpenTelemetry: the gateway's spans (in-memory exporter), the worker's (a real OTLP/HTTP receiver),
joined into one trace by the traceparent header; off by default, without importing the SDK."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("opentelemetry.sdk")
from gateway import wait_until
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from nanoserve.api.app import create_app
from nanoserve.config import load_settings
from nanoserve.observability.tracing import OtelTracing, Tracing, create_tracing, traces_url


class OtlpReceiver:
    """A minimal OTLP/HTTP traces endpoint on loopback: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    service = next(
                        a.value.string_value for a in resource.resource.attributes if a.key == "service.name"
                    )
                    for scope in resource.scope_spans:
                        spans.extend((service, span) for span in scope.spans)
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver()
    yield r
    r.close()


async def test_request_spans_from_gateway_to_engine(tmp_path: Path, receiver: OtlpReceiver) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = tmp_path / "config.yaml"
    config.write_text(
        "models:\n"
        "  - {id: m, engine: mock, context_length: 256, options: {ttft_ms: 20, tokens_per_second: 200}}\n"
        "  - {id: e, engine: mock-embedding, kind: embedding}\n"
        f"observability: {{otlp_endpoint: '{receiver.url}'}}\n"  # the workers export here
    )
    settings = load_settings(config, data_dir=tmp_path / "data")
    app = create_app(settings, tracing=OtelTracing(provider))  # the gateway exports to memory
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://localhost", timeout=60
        ) as http:
            resp = await http.post("/v1/chat/completions", json=body, headers={"traceparent": parent})
            assert resp.status_code == 200
            assert (
                await http.post("/v1/embeddings", json={"model": "e", "input": ["a", "b"]})
            ).status_code == 200
    finally:
        await app.state.orchestrator.shutdown()  # workers flush their spans as they stop
    finished = exporter.get_finished_spans()
    chat_trace = 0x0AF7651916CD43DD8448EB211C80319C  # the client's trace, continued
    spans = {s.name: s for s in finished if s.context.trace_id == chat_trace}
    root, queue, worker = spans["POST /v1/chat/completions"], spans["queue"], spans["worker"]
    assert root.parent.span_id == 0xB7AD6B7169203331
    assert queue.parent.span_id == worker.parent.span_id == root.context.span_id
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["nanoserve.model"] == "m"
    assert root.attributes["gen_ai.usage.output_tokens"] == 4
    assert queue.attributes["nanoserve.cold_start"] is True
    assert queue.end_time <= worker.start_time
    assert {s.name for s in finished if s.context.trace_id != chat_trace} == {
        "POST /v1/embeddings",
        "queue",
        "worker",
    }

    assert wait_until(lambda: len(receiver.spans) >= 5, timeout=20), receiver.spans
    remote = {
        span.name: (service, span)
        for service, span in receiver.spans
        if span.trace_id == chat_trace.to_bytes(16, "big") or "embed" in span.name
    }
    service, server = remote["worker /v1/chat/completions"]
    assert service == "nanoserve-worker"
    assert server.parent_span_id == worker.context.span_id.to_bytes(8, "big")
    _, prefill = remote["engine.prefill"]
    _, decode = remote["engine.decode"]
    assert prefill.parent_span_id == decode.parent_span_id == server.span_id
    # ttft_ms=20; the worker's event loop (uvloop) may fire a timer up to a millisecond early
    assert prefill.end_time_unix_nano - prefill.start_time_unix_nano >= 15_000_000
    assert prefill.end_time_unix_nano == decode.start_time_unix_nano <= decode.end_time_unix_nano
    tokens = {a.key: a.value.int_value for a in decode.attributes}
    assert tokens["gen_ai.usage.output_tokens"] == 4
    assert "engine.embed" in remote and "worker /v1/embeddings" in remote


def test_tracing_is_off_by_default_and_never_imports_the_sdk() -> None:
    code = (
        "import sys\n"
        "from nanoserve.api.app import create_app\n"
        "app = create_app()\n"
        "assert not app.state.telemetry.tracing.enabled\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    off = Tracing()
    span = off.start("x")
    off.end(span, attributes={"a": 1})
    assert off.inject(span) is None and off.extract({"traceparent": "00-01-02-01"}) is None


def test_otlp_endpoint_gets_the_traces_path() -> None:
    assert traces_url("http://127.0.0.1:4318") == "http://127.0.0.1:4318/v1/traces"
    assert traces_url("http://127.0.0.1:4318/") == "http://127.0.0.1:4318/v1/traces"
    assert traces_url("http://127.0.0.1:4318/custom/traces") == "http://127.0.0.1:4318/custom/traces"
    assert create_tracing(None, "x").enabled is False
    assert create_tracing("", "x").enabled is False
