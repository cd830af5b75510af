"""Send a request to a model's worker and relay the answer.

The gateway validates a request once, then forwards the client's own bytes; streamed answers
are relayed as bytes (no per-chunk JSON parsing). A worker found dead when connecting is
restarted and the request retried once (nothing was sent, so this is safe); a worker that dies
mid-stream ends the stream with an error event.

Observability hooks (``observability/requests.py``): the time spent in ``acquire`` (queue wait,
cold start), the first relayed chunk, and the answer's last bytes, where the worker puts usage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from nanoserve.api.lifecycle import Controls, unload_if_idle
from nanoserve.errors import NanoserveError, WorkerUnavailable
from nanoserve.observability import requests
from nanoserve.orchestrator.instance import Lease
from nanoserve.orchestrator.orchestrator import Orchestrator
from nanoserve.wire.client import WorkerResponse

log = logging.getLogger("nanoserve.api")

EXIT_GRACE_SECONDS = 2.0


@dataclass(eq=False)
class Upstream:
    """One request at a worker: its lease, the worker's response (body unread), its controls.

    ``acquire_seconds`` is the time spent getting a ready worker (loading the model, waiting).
    ``close()`` ends the lease exactly once; with ``keep_alive`` 0 it also unloads the model.
    """

    orchestrator: Orchestrator
    lease: Lease
    response: WorkerResponse
    controls: Controls
    acquire_seconds: float
    closed: bool = field(default=False)

    @property
    def status_code(self) -> int:
        return self.response.status_code

    async def close(self) -> None:
        """Idempotent; a close cut short by cancellation is completed by the next call."""
        if self.closed:
            return
        self.lease.release()  # first, and synchronous: the await below may be cancelled (client gone)
        self.response.close()
        if self.controls.unload_after:
            await unload_if_idle(self.orchestrator, self.lease.instance)
        self.closed = True

    def gone(self, exc: WorkerUnavailable) -> WorkerUnavailable:
        """The error for a worker that broke off mid-answer (the owner's reason when it knows one)."""
        reason = self.lease.instance.error or exc.message
        error = WorkerUnavailable(
            f"the worker for model '{self.lease.instance.id}' is not reachable: {reason}", retry_after=1
        )
        if (record := requests.current()) is not None:
            record.stream_failed(error.message)
        return error


async def send(
    orchestrator: Orchestrator, model: str, path: str, body: bytes, controls: Controls | None = None
) -> Upstream:
    """A lease on the model's worker and the worker's response (body unread)."""
    controls = controls or Controls()
    record = requests.current()
    for attempt in (1, 2):
        started = time.perf_counter()
        with requests.waiting(record, orchestrator, model):
            lease = await orchestrator.acquire(
                model, keep_alive=controls.keep_alive, priority=controls.priority
            )
        acquired = time.perf_counter() - started
        try:
            headers = record.worker_headers() if record is not None else None
            response = await lease.worker.client.post(path, body, headers=headers)
            return Upstream(orchestrator, lease, response, controls, acquired)
        except WorkerUnavailable:
            lease.release()
            # A refused connection (or a pooled one reset) from a killed worker can come before
            # the child is reaped: give its exit a moment to be seen, then retry on a fresh worker.
            if attempt == 2 or not await lease.worker.exited_within(EXIT_GRACE_SECONDS):
                raise
            log.warning("worker for %s was gone; restarting it and retrying", lease.instance.id)
        except BaseException:
            lease.release()
            raise
    raise AssertionError("unreachable")


async def read_all(upstream: Upstream) -> bytes:
    try:
        body = await upstream.response.read()
    finally:
        await upstream.close()
    if (record := requests.current()) is not None:
        record.answered(upstream.status_code, body)
    return body


async def relay(upstream: Upstream, error_event: Callable[[NanoserveError], bytes]) -> AsyncIterator[bytes]:
    """The worker's stream as bytes; a broken stream ends with ``error_event``."""
    record = requests.current()
    previous = last = b""
    try:
        async for chunk in upstream.response.chunks():
            if not last and record is not None:
                record.first_chunk()
            previous, last = last, chunk
            yield chunk
        if record is not None:
            record.answered(upstream.status_code, previous + last)
    except WorkerUnavailable as exc:
        yield error_event(upstream.gone(exc))
    finally:
        await upstream.close()


class UpstreamStreamingResponse(StreamingResponse):
    """A streamed answer that closes its upstream when the response ends, even if the body was
    never iterated (the client left before the first byte) or was cut short."""

    def __init__(self, content: AsyncIterator[bytes], upstream: Upstream, **kwargs: Any):
        super().__init__(content, **kwargs)
        self.upstream = upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.upstream.close()
