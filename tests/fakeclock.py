"""A clock the test moves by hand: patched in for ``time.monotonic`` where a module reads it."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
