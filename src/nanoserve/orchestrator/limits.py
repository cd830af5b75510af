"""Gateway-wide limits on requests, beside each model's own queue (``config.LimitSettings``).

* ``max_concurrent_requests``: requests at the gateway at once over all models, running or
  waiting for their model; one more is a 429 (``ServerBusy``) before it queues anywhere.
* ``request_timeout``: each request's deadline, from its arrival to its last token. A request
  still waiting for its model (queued, or the model loading) at the deadline is a 408
  (``RequestTimeout``). One at its worker is told the time it has left (``TIME_LIMIT_HEADER``,
  with ``max_generation_seconds`` as the cap): the engine then ends it as at ``max_tokens``
  (finish_reason ``length``), so the client still gets a whole answer. A backend that ignores
  the header (a foreign server) is cut off ``CUT_OFF_GRACE_SECONDS`` later: its stream ends with
  an error event naming the limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from nanoserve.config import LimitSettings
from nanoserve.errors import RequestTimeout, ServerBusy

CUT_OFF_GRACE_SECONDS = 5.0
BUSY_RETRY_AFTER = 1


class Ticket:
    """One admitted request: its deadline, and its place under the cap until ``release()``."""

    def __init__(self, admission: Admission, deadline: float):
        self._admission = admission
        self.deadline = deadline  # loop time (time.monotonic)
        self.cut_off = False  # the backend overran the deadline and its response was closed
        self._timer: asyncio.TimerHandle | None = None
        self._released = False

    @property
    def timeout(self) -> float:
        return self._admission.limits.request_timeout

    def remaining(self) -> float:
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    def time_limit_ms(self) -> str:
        """What the worker is told: the time left, capped by ``max_generation_seconds``."""
        return str(int(min(self.remaining(), self._admission.limits.max_generation_seconds) * 1000))

    @asynccontextmanager
    async def waiting_for(self, model: str) -> AsyncIterator[None]:
        """Wait for the model within the deadline, else a 408 naming it."""
        timeout = asyncio.timeout_at(self.deadline)
        try:
            async with timeout:
                yield
        except TimeoutError:
            if not timeout.expired():
                raise  # some other timeout, inside
            raise RequestTimeout(
                f"model '{model}' could not take the request within limits.request_timeout "
                f"({self.timeout:g} s): it stayed queued or loading; retry later or raise the limit"
            ) from None

    def cut_off_after_deadline(self, close: Callable[[], None]) -> None:
        """Close the backend's response if it is still open ``CUT_OFF_GRACE_SECONDS`` after the
        deadline (the worker ends the request itself at the deadline; a foreign backend may not)."""

        def expire() -> None:
            self.cut_off = True
            close()

        self._timer = asyncio.get_running_loop().call_at(self.deadline + CUT_OFF_GRACE_SECONDS, expire)

    def cut_off_error(self, model: str) -> RequestTimeout:
        return RequestTimeout(
            f"the backend of model '{model}' was still answering after limits.request_timeout "
            f"({self.timeout:g} s); the answer was cut off"
        )

    def release(self) -> None:
        """Idempotent: the request has ended (or was refused)."""
        if self._timer is not None:
            self._timer.cancel()
        if not self._released:
            self._released = True
            self._admission.active -= 1


class Admission:
    def __init__(self, limits: LimitSettings):
        self.limits = limits
        self.active = 0  # admitted tickets not yet released

    def admit(self) -> Ticket:
        """A ticket for one more request, or a 429 when ``max_concurrent_requests`` are under way."""
        cap = self.limits.max_concurrent_requests
        if self.active >= cap:
            raise ServerBusy(
                f"the server is at limits.max_concurrent_requests ({cap} requests at once over all "
                "models); retry later",
                retry_after=BUSY_RETRY_AFTER,
            )
        self.active += 1
        return Ticket(self, asyncio.get_running_loop().time() + self.limits.request_timeout)
