"""Send a request to a model's worker and relay the answer.

The gateway validates a request once, then forwards the client's own bytes; streamed answers
are relayed as bytes (no per-chunk JSON parsing). A worker found dead when connecting is
restarted and the request retried once (nothing was sent, so this is safe); a worker that dies
mid-stream ends the stream with an error event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from nanoserve.errors import NanoserveError, WorkerUnavailable
from nanoserve.orchestrator.instance import Lease
from nanoserve.orchestrator.orchestrator import Orchestrator
from nanoserve.worker.client import WorkerConnectFailed, WorkerResponse

log = logging.getLogger("nanoserve.api")


async def send(
    orchestrator: Orchestrator,
    model: str,
    path: str,
    body: bytes,
    *,
    keep_alive: float | None = None,
    priority: int | None = None,
) -> tuple[Lease, WorkerResponse]:
    """A lease on the model's worker and the worker's response (body unread)."""
    for attempt in (1, 2):
        lease = await orchestrator.acquire(model, keep_alive=keep_alive, priority=priority)
        try:
            return lease, await lease.worker.client.post(path, body)
        except WorkerConnectFailed:
            lease.release()
            if attempt == 2 or lease.worker.alive:
                raise
            log.warning("worker for %s was gone; restarting it and retrying", lease.instance.id)
            await lease.worker.proc.wait()  # let the owner see the exit before the retry
        except BaseException:
            lease.release()
            raise
    raise AssertionError("unreachable")


async def read_all(lease: Lease, response: WorkerResponse) -> bytes:
    try:
        return await response.read()
    finally:
        lease.release()


async def relay(
    lease: Lease,
    response: WorkerResponse,
    error_event: Callable[[NanoserveError], bytes],
) -> AsyncIterator[bytes]:
    """The worker's stream as bytes; a broken stream ends with ``error_event``."""
    try:
        async for chunk in response.chunks():
            yield chunk
    except WorkerUnavailable as exc:
        yield error_event(
            WorkerUnavailable(f"the worker for model '{lease.instance.id}' is not reachable: {exc.message}")
        )
    finally:
        response.close()
        lease.release()
