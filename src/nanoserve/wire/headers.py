"""The headers of the gateway↔worker protocol (docs/worker-protocol.md).

A request from the gateway carries a JSON body; when tracing is on, the W3C trace context
(``traceparent``, written by the tracing propagator, read by the worker to join the trace); the
warm-up requests after a load carry ``WARM_UP_HEADER``; every request carries the gateway's
request id (``REQUEST_ID_HEADER``, the one its client sees), so a backend's logs can be matched
to the gateway's, and the time it has left (``TIME_LIMIT_HEADER``). Streamed answers are server-sent events.
"""

from __future__ import annotations

JSON_HEADERS = {"Content-Type": "application/json"}
TRACEPARENT_HEADER = "traceparent"
REQUEST_ID_HEADER = "x-request-id"
WARM_UP_HEADER = "x-nanoserve-warm-up"  # requests with it are served but not counted
# Milliseconds the request may still take: the engine then ends it as at max_tokens ("length").
TIME_LIMIT_HEADER = "x-nanoserve-time-limit-ms"
# A streamed (SSE) response, the worker's and the gateway's relay of it: not cached, not buffered.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SSE_DONE = b"data: [DONE]\n\n"  # the last event of an OpenAI stream

# A worker bound beyond loopback (on a cluster node, docs/cluster.md) is started with a
# per-instance secret in WORKER_SECRET_ENV (read and removed from its environment) and answers
# only requests carrying it in WORKER_SECRET_HEADER.
WORKER_SECRET_HEADER = "x-nanoserve-worker-secret"
WORKER_SECRET_ENV = "NANOSERVE_WORKER_SECRET"
