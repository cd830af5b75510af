"""Send a request to a model's worker and relay the answer.

The gateway validates a request once, then forwards the client's own bytes; streamed answers
are relayed as bytes (no per-chunk JSON parsing). A worker found dead when connecting is
restarted and the request retried once by the orchestrator's supervisor; a worker that dies
mid-stream ends the stream with an error event.

Observability hooks (``observability/requests.py``): the time spent in ``acquire`` (queue wait,
cold start), the first relayed chunk, and the answer's last bytes, where the worker puts usage.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from nanoserve.api.lifecycle import Controls
from nanoserve.auth.context import check_model
from nanoserve.errors import NanoserveError, WorkerUnavailable
from nanoserve.observability import requests
from nanoserve.orchestrator.orchestrator import Orchestrator
from nanoserve.orchestrator.router import NO_AFFINITY, Affinity
from nanoserve.orchestrator.supervisor import Sent
from nanoserve.wire.client import WorkerResponse
from nanoserve.wire.headers import SSE_DONE

log = logging.getLogger("nanoserve.api")


@dataclass(eq=False)
class Upstream:
    """One request at a model's backend, as the routes relay it (``Sent`` is the orchestrator's
    side: the lease and the response). ``close()`` hands it back exactly once."""

    orchestrator: Orchestrator
    sent: Sent

    @property
    def status_code(self) -> int:
        return self.sent.response.status_code

    @property
    def response(self) -> WorkerResponse:
        return self.sent.response

    @property
    def acquire_seconds(self) -> float:
        return self.sent.acquire_seconds

    async def chunks(self) -> AsyncIterator[bytes]:
        """The response body as it arrives; each chunk is progress for the stall watch."""
        activity = self.sent.activity
        async for chunk in self.sent.response.chunks():
            if activity is not None:
                activity.progress()
            yield chunk

    async def close(self) -> None:
        """Idempotent; with ``keep_alive`` 0 the model is unloaded before this returns."""
        await self.orchestrator.supervisor.finish(self.sent)

    def gone(self, exc: WorkerUnavailable, *, stream: bool = True) -> NanoserveError:
        """The error for a backend that broke off mid-answer (the owner's reason when it knows one,
        or the request's deadline when the gateway cut it off)."""
        instance = self.sent.lease.instance
        error: NanoserveError
        if self.sent.ticket.cut_off:  # closed by the gateway at the request's deadline
            error = self.sent.ticket.cut_off_error(instance.id)
        else:
            self.orchestrator.supervisor.worker_broke(instance)
            reason = instance.error or exc.message
            error = WorkerUnavailable(
                f"the worker for model '{instance.id}' is not reachable: {reason}", retry_after=1
            )
        if stream and (record := requests.current()) is not None:
            record.stream_failed(error.message)
        return error


async def send(
    orchestrator: Orchestrator,
    model: str,
    path: str,
    body: bytes,
    controls: Controls | None = None,
    affinity: Affinity = NO_AFFINITY,
) -> Upstream:
    """A lease on the model's backend (the replica ``affinity`` suggests, if the model has several)
    and its response (body unread)."""
    controls = controls or Controls()
    if (config := orchestrator.registry.find(model)) is not None:
        check_model(config.names)  # the key's model allow-list (403)
    record = requests.current()
    sent = await orchestrator.supervisor.send(
        model,
        path,
        body,
        keep_alive=controls.keep_alive,
        priority=controls.priority,
        headers=record.worker_headers if record is not None else None,
        waiting=lambda: requests.waiting(record, orchestrator, model),
        affinity=affinity,
    )
    return Upstream(orchestrator, sent)


async def read_all(upstream: Upstream) -> bytes:
    try:
        body = await upstream.response.read()
    except WorkerUnavailable as exc:
        raise upstream.gone(exc, stream=False) from exc
    finally:
        await upstream.close()
    if (record := requests.current()) is not None:
        record.answered(upstream.status_code, body)
    return body


async def relay(upstream: Upstream, error_event: Callable[[NanoserveError], bytes]) -> AsyncIterator[bytes]:
    """The worker's stream as bytes; a broken stream ends with ``error_event``."""
    record = requests.current()
    previous = last = b""
    unload_after = upstream.sent.unload_after
    try:
        async for chunk in upstream.chunks():
            if not last and record is not None:
                record.first_chunk()
            previous, last = last, chunk
            if unload_after and chunk.endswith(SSE_DONE):
                # keep_alive 0: unloaded before the client reads the end (clients stop at [DONE],
                # not at the end of the body, and may ask again at once)
                await upstream.close()
                yield chunk
                break
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
