"""Send a request to a model's worker and relay the answer.

The gateway validates a request once, then forwards the client's own bytes; streamed answers
are relayed as bytes (no per-chunk JSON parsing). A worker that is found dead when connecting
is restarted and the request retried once (nothing was sent, so this is safe); a worker that
dies mid-stream ends the stream with an error event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import httpx

from nanoserve.errors import NanoserveError
from nanoserve.orchestrator.instance import Lease, worker_gone
from nanoserve.orchestrator.orchestrator import Orchestrator

log = logging.getLogger("nanoserve.api")

JSON_HEADERS = {"content-type": "application/json"}


async def send(orchestrator: Orchestrator, model: str, path: str, content: bytes) -> tuple[Lease, httpx.Response]:
    """A lease on the model's worker and the worker's (streamed, unread) response."""
    for attempt in (1, 2):
        lease = await orchestrator.acquire(model)
        try:
            request = lease.worker.client.build_request("POST", path, content=content, headers=JSON_HEADERS)
            return lease, await lease.worker.client.send(request, stream=True)
        except httpx.ConnectError as exc:
            lease.release()
            if attempt == 2 or lease.worker.alive:
                raise worker_gone(lease.instance, exc, lease.worker) from exc
            log.warning("worker for %s was gone; restarting it and retrying", lease.instance.id)
            await lease.worker.proc.wait()  # let the owner see the exit before the retry
        except BaseException:
            lease.release()
            raise
    raise AssertionError("unreachable")


async def read_all(lease: Lease, response: httpx.Response) -> bytes:
    try:
        return await response.aread()
    except httpx.TransportError as exc:
        raise worker_gone(lease.instance, exc, lease.worker) from exc
    finally:
        await response.aclose()
        lease.release()


async def relay(
    lease: Lease,
    response: httpx.Response,
    error_event: Callable[[NanoserveError], bytes],
) -> AsyncIterator[bytes]:
    """The worker's stream as bytes; a broken stream ends with ``error_event``."""
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TransportError as exc:
        yield error_event(worker_gone(lease.instance, exc, lease.worker))
    finally:
        await response.aclose()
        lease.release()
