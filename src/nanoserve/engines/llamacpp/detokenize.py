"""Incremental detokenization: token bytes in, text safe to emit out.

A token may end in the middle of a UTF-8 character (byte-level BPE splits emoji and CJK across
tokens); the incremental decoder holds those bytes until the character is complete. The text then
passes the stop matcher, which holds back anything that could begin a stop sequence.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence

from nanoserve.engines.text import StopMatcher


class TextStream:
    __slots__ = ("_stops", "_utf8")

    def __init__(self, stops: Sequence[str] = ()):
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._stops = StopMatcher(stops)

    def feed(self, data: bytes) -> tuple[str, bool]:
        """Text to emit for one token's bytes, and whether a stop sequence completed."""
        return self._stops.feed(self._utf8.decode(data))

    def finish(self) -> str:
        """Everything still held back, at the end of a generation that did not hit a stop."""
        text, stopped = self._stops.feed(self._utf8.decode(b"", final=True))
        return text if stopped else text + self._stops.flush()
