"""Per-key limits over a sliding minute: requests (rpm), tokens (tpm) and requests at once.

``Window.check(limits, now)`` is the decision (no clock, no I/O): None, or the 429 naming the
limit with the seconds until it frees up. ``Limiter`` keeps one window per key in this process
(one gateway; replicas would each count their own). Tokens are charged when an answer ends, so a
key may overshoot its tpm by one request's tokens; the next request then waits.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from nanoserve.auth.store import Limits
from nanoserve.errors import RateLimited

MINUTE = 60.0


@dataclass(slots=True)
class Window:
    requests: deque[float] = field(default_factory=deque)  # start times
    tokens: deque[tuple[float, int]] = field(default_factory=deque)  # (end time, tokens)
    token_sum: int = 0
    running: int = 0

    def prune(self, now: float) -> None:
        since = now - MINUTE
        while self.requests and self.requests[0] <= since:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= since:
            self.token_sum -= self.tokens.popleft()[1]

    def check(self, limits: Limits, now: float, key: str = "") -> RateLimited | None:
        """Whether one more request may start now (call ``prune`` first)."""
        if limits.max_concurrent is not None and self.running >= limits.max_concurrent:
            return RateLimited(
                f"Rate limit reached for key '{key}': {limits.max_concurrent} concurrent requests "
                "(max_concurrent)",
                limit="max_concurrent",
                retry_after=1,
            )
        if limits.rpm is not None and len(self.requests) >= limits.rpm:
            wait = self.requests[-limits.rpm] + MINUTE - now
            return RateLimited(
                f"Rate limit reached for key '{key}': {limits.rpm} requests per minute (rpm)",
                limit="rpm",
                retry_after=wait,
            )
        if limits.tpm is not None and self.token_sum >= limits.tpm:
            wait, left = MINUTE, self.token_sum
            for at, tokens in self.tokens:  # until enough tokens have left the window
                left -= tokens
                if left < limits.tpm:
                    wait = at + MINUTE - now
                    break
            return RateLimited(
                f"Rate limit reached for key '{key}': {limits.tpm} tokens per minute (tpm)",
                limit="tpm",
                retry_after=wait,
            )
        return None


class Limiter:
    """The windows of every key that has limits."""

    def __init__(self) -> None:
        self._windows: dict[str, Window] = {}

    def enter(self, key: str, limits: Limits, now: float) -> RateLimited | None:
        """Admit a request (counting it) or say which limit refuses it."""
        window = self._windows.setdefault(key, Window())
        window.prune(now)
        refused = window.check(limits, now, key)
        if refused is None:
            window.requests.append(now)
            window.running += 1
        return refused

    def leave(self, key: str) -> None:
        window = self._windows.get(key)
        if window is not None and window.running > 0:
            window.running -= 1

    def charge(self, key: str, tokens: int, now: float) -> None:
        if tokens <= 0:
            return
        window = self._windows.setdefault(key, Window())
        window.tokens.append((now, tokens))
        window.token_sum += tokens
