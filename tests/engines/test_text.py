from __future__ import annotations

import pytest

from nanoserve.engines.text import StopMatcher


def run(stops: list[str], deltas: list[str]) -> tuple[str, bool]:
    matcher = StopMatcher(stops)
    out = []
    for delta in deltas:
        text, stopped = matcher.feed(delta)
        out.append(text)
        if stopped:
            return "".join(out), True
    return "".join(out) + matcher.flush(), False


@pytest.mark.parametrize(
    ("stops", "deltas", "expected", "stopped"),
    [
        ([], ["a", "b"], "ab", False),
        (["\n"], ["hello", " world\n", "more"], "hello world", True),
        (["END"], ["the E", "N", "D of"], "the ", True),
        (["END"], ["the E", "N", "d"], "the ENd", False),  # a near miss is released
        (["END"], ["E"], "E", False),  # held back, flushed at the end
        (["ab", "b"], ["xb"], "x", True),  # earliest match wins
        (["<|im_end|>"], ["Paris", "<|im", "_end|>"], "Paris", True),
        (["."], ["Paris. More"], "Paris", True),
    ],
)
def test_stop_matcher(stops: list[str], deltas: list[str], expected: str, stopped: bool) -> None:
    assert run(stops, deltas) == (expected, stopped)


def test_held_back_text_is_never_lost() -> None:
    matcher = StopMatcher(["STOP"])
    emitted = [matcher.feed(d)[0] for d in ["S", "T", "O", "x"]]
    assert "".join(emitted) + matcher.flush() == "STOx"
