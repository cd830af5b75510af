"""Text-level helpers shared by engines: stop sequences with hold-back."""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Finds stop sequences in streamed text without ever emitting part of one.

    ``feed(delta)`` returns ``(text_to_emit, stopped)``. Text that could be the start of a stop
    sequence is held back until it is either completed (dropped, ``stopped=True``) or ruled out
    (released). ``flush()`` returns what is held back when generation ends for another reason.
    """

    __slots__ = ("_held", "_max_hold", "_stops")

    def __init__(self, stops: Sequence[str]):
        self._stops = [s for s in stops if s]
        self._held = ""
        self._max_hold = max((len(s) - 1 for s in self._stops), default=0)

    def feed(self, delta: str) -> tuple[str, bool]:
        if not self._stops:
            return delta, False
        text = self._held + delta
        cut = min((i for i in (text.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self._held = ""
            return text[:cut], True
        keep = self._partial_suffix(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that is a proper prefix of a stop sequence."""
        for n in range(min(self._max_hold, len(text)), 0, -1):
            tail = text[-n:]
            if any(s.startswith(tail) for s in self._stops):
                return n
        return 0
