"""Grammars of JSON terminals with structure: integer ranges and string formats.

``naturals(lo, hi)`` spells exactly the integers of a range without leading zeros, in a shape
whose closing bound stays small (whole widths share one alternative, so a number that has begun
can end at any width the range allows). ``FORMATS`` are the string formats ``structured.py``
enforces: ``date`` (a real calendar date, years 1000-2999, February stopping at the 28th: no
leap-year arithmetic), ``time`` and ``date-time`` (RFC 3339, with an offset), ``uuid``.
"""

from __future__ import annotations

from collections.abc import Callable

from nanoserve.worker.grammar import Element, Grammar, Lit, Repeat, chars

DIGIT = chars("0-9")
HEX = chars("0-9a-fA-F")


def naturals(g: Grammar, lo: int, hi: int) -> list[list[Element]]:
    """Alternatives spelling exactly the integers lo..hi (0 <= lo <= hi), without leading zeros.

    Whole widths share one alternative (``[1-9] [0-9]{a,b}``), so a number that has begun can end
    at any width the range allows: the grammar's closing bound stays small."""
    alts: list[list[Element]] = []
    if lo == 0:
        alts.append([Lit("0")])
        if hi == 0:
            return alts
        lo = 1
    w_lo, w_hi = len(str(lo)), len(str(hi))
    full_from = w_lo if lo == 10 ** (w_lo - 1) else w_lo + 1  # first width wholly in range
    full_to = w_hi if hi == 10**w_hi - 1 else w_hi - 1  # last one
    if full_from > full_to:  # no whole width: one or two partial ones
        if w_lo == w_hi:
            return alts + same_width(g, str(lo), str(hi))
        return alts + same_width(g, str(lo), "9" * w_lo) + same_width(g, "1" + "0" * (w_hi - 1), str(hi))
    if full_from > w_lo:
        alts += same_width(g, str(lo), "9" * w_lo)
    rest = [Repeat(DIGIT, full_from - 1, full_to - 1)] if full_to > 1 else []
    alts.append([chars("1-9"), *rest])
    if full_to < w_hi:
        alts += same_width(g, "1" + "0" * (w_hi - 1), str(hi))
    return alts


def same_width(g: Grammar, lo: str, hi: str) -> list[list[Element]]:
    """Digit strings s of one width with lo <= s <= hi."""
    if not lo:
        return [[]]
    width = len(lo) - 1
    if lo[0] == hi[0]:
        return [[Lit(lo[0]), *alt] for alt in same_width(g, lo[1:], hi[1:])]
    first, last = int(lo[0]), int(hi[0])
    alts: list[list[Element]] = []
    if lo[1:] != "0" * width:
        alts += [[Lit(lo[0]), *alt] for alt in same_width(g, lo[1:], "9" * width)]
        first += 1
    tail: list[list[Element]] = []
    if hi[1:] != "9" * width:
        tail = [[Lit(hi[0]), *alt] for alt in same_width(g, "0" * width, hi[1:])]
        last -= 1
    if first <= last:
        head = Lit(str(first)) if first == last else chars(f"{first}-{last}")
        alts.append([head, Repeat(DIGIT, width, width)] if width else [head])
    return alts + tail


def _date(g: Grammar) -> Element:
    """A real calendar date, years 1000-2999 (February stops at 28: no leap-year arithmetic)."""
    day = g.rule("day", [Lit("0"), chars("1-9")], [Lit("1"), DIGIT], [Lit("2"), chars("0-8")])
    long_months = g.rule("month-31", [Lit("0"), chars("13578")], [Lit("1"), chars("02")])
    short_months = g.rule("month-30", [Lit("0"), chars("469")], [Lit("11")])
    month_day = g.rule(
        "month-day",
        [long_months, Lit("-"), g.rule("day-31", [day], [Lit("29")], [Lit("3"), chars("01")])],
        [short_months, Lit("-"), g.rule("day-30", [day], [Lit("29")], [Lit("30")])],
        [Lit("02-"), day],
    )
    return g.rule("date", [chars("12"), Repeat(DIGIT, 3, 3), Lit("-"), month_day])


def _time(g: Grammar) -> Element:
    hour = g.rule("hour", [chars("01"), DIGIT], [Lit("2"), chars("0-3")])
    sixty = g.rule("sixty", [chars("0-5"), DIGIT])
    frac = Repeat(g.rule("time-frac", [Lit("."), Repeat(DIGIT, 1, 6)]), 0, 1)
    offset = g.rule("offset", [Lit("Z")], [chars("+-"), hour, Lit(":"), sixty])
    return g.rule("time", [hour, Lit(":"), sixty, Lit(":"), sixty, frac, offset])


def _date_time(g: Grammar) -> Element:
    return g.rule("date-time", [_date(g), Lit("T"), _time(g)])


def _uuid(g: Grammar) -> Element:
    return g.rule(
        "uuid",
        [
            Repeat(HEX, 8, 8), Lit("-"), Repeat(HEX, 4, 4), Lit("-"), Repeat(HEX, 4, 4), Lit("-"),
            Repeat(HEX, 4, 4), Lit("-"), Repeat(HEX, 12, 12),
        ],
    )  # fmt: skip


FORMATS: dict[str, Callable[[Grammar], Element]] = {
    "date": _date,
    "time": _time,
    "date-time": _date_time,
    "uuid": _uuid,
}
