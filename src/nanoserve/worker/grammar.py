"""A small grammar IR: built once per request, rendered as llama.cpp GBNF, reasoned about in Python.

The worker builds every grammar it sends to an engine (JSON schemas, tool calls) with this IR
instead of writing GBNF text, so the same object answers questions GBNF alone cannot:

* ``max_bytes``: the longest text the grammar allows (``None`` when unbounded). Every token a
  grammar-constrained engine samples carries at least one byte, so a grammar whose longest
  sentence fits in ``max_tokens`` always completes in time.
* ``close_bound(cost)``: an upper bound on the cost (bytes, or tokens with a tokenizer's count)
  of the shortest text that completes *any* prefix: what to keep back from ``max_tokens`` so an
  answer cut off anywhere can still be closed within the budget.
* ``Matcher``: feed it the text generated so far (a valid prefix, since the engine sampled under
  the grammar) and ask for the shortest completion that makes it a sentence.
* ``advanced(text)``: the grammar of what may follow ``text``, for an engine request that
  continues an answer; ``forced_prefix()``: the text every sentence starts with, which can go
  into the prompt instead of being sampled.

Elements: ``Lit`` (a literal string), ``Chars`` (one code point from a set), ``Ref`` (a named
rule) and ``Repeat`` (an element ``min`` to ``max`` times). A rule is a tuple of alternatives,
each a sequence of elements. Grammars are expected to be free of left recursion and of nullable
repeated items, which everything built in ``structured.py`` and ``tools.py`` is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

ROOT = "root"
_MAX_CODE_POINT = 0x10FFFF
# Preferred characters when a completion needs "any character from this set".
_FILLERS = "a0 _-.xA"


@dataclass(frozen=True, slots=True)
class Lit:
    text: str


@dataclass(frozen=True, slots=True)
class Chars:
    """One code point within ``ranges`` (inclusive bounds), or outside them when ``negated``."""

    ranges: tuple[tuple[int, int], ...]
    negated: bool = False

    def matches(self, ch: str) -> bool:
        cp = ord(ch)
        inside = any(lo <= cp <= hi for lo, hi in self.ranges)
        return inside != self.negated

    def sample(self) -> str:
        """A representative character, for completions: a plain one when the set has it."""
        for ch in _FILLERS:
            if self.matches(ch):
                return ch
        if not self.negated:
            return chr(self.ranges[0][0])
        cp = 0x20
        while not self.matches(chr(cp)):
            cp += 1
        return chr(cp)

    def max_bytes(self) -> int:
        top = _MAX_CODE_POINT if self.negated else max(hi for _, hi in self.ranges)
        return 1 if top < 0x80 else 2 if top < 0x800 else 3 if top < 0x10000 else 4


@dataclass(frozen=True, slots=True)
class Ref:
    name: str


@dataclass(frozen=True, slots=True)
class Repeat:
    item: Lit | Chars | Ref
    min: int = 0
    max: int | None = None  # None: unbounded


Element = Lit | Chars | Ref | Repeat
Sequence_ = tuple[Element, ...]
Rule = tuple[Sequence_, ...]


def chars(spec: str, *, negated: bool = False) -> Chars:
    """``Chars`` from a compact spec: ``"a-z0-9_"`` (a ``-`` between two characters is a range)."""
    ranges: list[tuple[int, int]] = []
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            ranges.append((ord(spec[i]), ord(spec[i + 2])))
            i += 3
        else:
            ranges.append((ord(spec[i]), ord(spec[i])))
            i += 1
    return Chars(tuple(ranges), negated)


ANY_CHAR = Chars((), negated=True)

Cost = Callable[[str], int]  # measures text the way a budget counts it (bytes, tokens)


def utf8_length(text: str) -> int:
    return len(text.encode())


class Grammar:
    """Rules by name. ``rule`` deduplicates identical bodies, so shared shapes cost one rule."""

    def __init__(self) -> None:
        self.rules: dict[str, Rule] = {}
        self._by_body: dict[Rule, str] = {}
        self._parent: Grammar | None = None  # the grammar this one was advanced from
        self._analyses: dict[Cost, _Analysis] = {}

    def rule(self, name: str, *alternatives: Iterable[Element]) -> Ref:
        body: Rule = tuple(tuple(alt) for alt in alternatives)
        if name != ROOT and (existing := self._by_body.get(body)) is not None:
            return Ref(existing)
        unique, n = name, 1
        while unique in self.rules:
            n += 1
            unique = f"{name}-{n}"
        self.rules[unique] = body
        self._by_body.setdefault(body, unique)
        return Ref(unique)

    def seq(self, name: str, *elements: Element) -> Lit | Chars | Ref:
        """One element for a sequence (one that ``Repeat`` can take): itself if it is a single
        literal, class or reference, else a rule."""
        if len(elements) == 1 and not isinstance(elements[0], Repeat):
            return elements[0]
        return self.rule(name, elements)

    # -- rendering -----------------------------------------------------------------------------

    def gbnf(self) -> str:
        if ROOT not in self.rules:
            raise ValueError("grammar has no root rule")
        order = [ROOT, *sorted(n for n in self.rules if n != ROOT)]
        return "".join(f"{name} ::= {_render_rule(self.rules[name])}\n" for name in order)

    # -- analysis ------------------------------------------------------------------------------

    def _analysis(self, cost: Cost = utf8_length) -> _Analysis:
        """The analysis under ``cost``; an advanced grammar reuses its parent's for every rule
        but the root (they share all other rules)."""
        if cost not in self._analyses:
            parent = self._parent
            while parent is not None and cost not in parent._analyses:
                parent = parent._parent
            base = parent._analyses[cost] if parent is not None else None
            self._analyses[cost] = base.fork(self.rules) if base is not None else _Analysis(self.rules, cost)
        return self._analyses[cost]

    def min_text(self) -> str:
        """The shortest sentence (in bytes)."""
        return self._analysis().min_text(Ref(ROOT))

    def max_bytes(self) -> int | None:
        """The longest sentence in bytes; None when unbounded."""
        return self._analysis().max_bytes(Ref(ROOT))

    def close_bound(self, cost: Cost | None = None) -> int:
        """An upper bound on the cost of completing any prefix (bytes unless ``cost`` is given)."""
        return self._analysis(cost or utf8_length).close_bound(Ref(ROOT))

    def matcher(self) -> Matcher:
        return Matcher(self)

    def advanced(self, text: str) -> Grammar:
        """The grammar of what may follow ``text`` (a prefix of some sentence): its root is the
        set of parse stacks after ``text``, so an engine can continue where ``text`` ends."""
        if not text:
            return self
        matcher = self.matcher()
        if not matcher.feed(text):
            raise ValueError(f"{text!r} is not a prefix of the grammar")
        out = Grammar()
        out.rules = dict(self.rules)
        out._by_body = dict(self._by_body)
        out._parent = self
        out.rules[ROOT] = tuple(sorted((tuple(reversed(stack)) for stack in matcher.stacks), key=_render_seq))
        return out

    def forced_prefix(self, limit: int = 512) -> str:
        """The text every sentence starts with (up to the first choice, or the end)."""
        matcher = self.matcher()
        forced: list[str] = []
        while len(forced) < limit and not matcher.accepted:
            nxt = {_only_char(stack[-1]) for stack in matcher.stacks}
            if len(nxt) != 1 or None in nxt:
                break
            ch = nxt.pop()
            assert ch is not None
            forced.append(ch)
            matcher.feed(ch)
        return "".join(forced)


# -- GBNF text -------------------------------------------------------------------------------------


def _escape_char(cp: int, in_class: bool) -> str:
    ch = chr(cp)
    if ch == "\\":
        return "\\\\"
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    if (in_class and ch in "]^-[") or (not in_class and ch == '"'):
        return "\\" + ch
    if cp < 0x20 or cp == 0x7F:
        return f"\\x{cp:02X}"
    if 0xD800 <= cp <= 0xDFFF or cp > 0xFFFF:
        return f"\\U{cp:08X}"
    return ch


def _render(element: Element) -> str:
    if isinstance(element, Lit):
        return '"' + "".join(_escape_char(ord(c), False) for c in element.text) + '"'
    if isinstance(element, Chars):
        if element.negated and not element.ranges:
            return "."
        body = "".join(
            _escape_char(lo, True) if lo == hi else f"{_escape_char(lo, True)}-{_escape_char(hi, True)}"
            for lo, hi in element.ranges
        )
        return f"[{'^' if element.negated else ''}{body}]"
    if isinstance(element, Ref):
        return element.name
    item = _render(element.item)
    if element.max is None:
        return f"{item}{{{element.min},}}"
    if element.min == element.max:
        return f"{item}{{{element.min}}}"
    return f"{item}{{{element.min},{element.max}}}"


def _render_seq(alt: Sequence_) -> str:
    return " ".join(_render(e) for e in alt) if alt else '""'


def _render_rule(rule: Rule) -> str:
    return " | ".join(_render_seq(alt) for alt in rule)


def _only_char(element: Element) -> str | None:
    """The one character ``element`` (a stack top: a literal or a class) can start with, if one."""
    if isinstance(element, Lit):
        return element.text[0]
    if isinstance(element, Chars) and not element.negated and len(element.ranges) == 1:
        lo, hi = element.ranges[0]
        return chr(lo) if lo == hi else None
    return None


# -- analysis ----------------------------------------------------------------------------------------


class _Analysis:
    """Memoised shortest text, longest length and closing bound of every element.

    ``cost`` measures text the way the budget is counted: bytes by default (a sound bound on
    tokens: every sampled token carries at least one byte), or a tokenizer's count. Costs add up
    over a sequence, which for BPE tokenizers bounds the tokens of the joined text in practice.
    """

    def __init__(self, rules: dict[str, Rule], cost: Cost = utf8_length):
        self.rules = rules
        self.cost = cost
        self._lit_cost: dict[str, int] = {}
        self._min: dict[str, tuple[int, str]] = {}
        self._max: dict[str, int | None] = {}
        self._close: dict[str, int] = {}
        self._visiting: set[str] = set()

    def fork(self, rules: dict[str, Rule]) -> _Analysis:
        """An analysis of ``rules``, which differ from this one's in the root only."""
        out = _Analysis(rules, self.cost)
        out._lit_cost = self._lit_cost
        out._min = {k: v for k, v in self._min.items() if k != ROOT}
        out._max = {k: v for k, v in self._max.items() if k != ROOT}
        out._close = {k: v for k, v in self._close.items() if k != ROOT}
        return out

    def _enter(self, name: str) -> None:
        if name in self._visiting:
            raise ValueError(f"grammar rule {name!r} is recursive")
        self._visiting.add(name)

    def literal_cost(self, text: str) -> int:
        if text not in self._lit_cost:
            self._lit_cost[text] = self.cost(text) if text else 0
        return self._lit_cost[text]

    def shortest(self, element: Element) -> tuple[int, str]:
        """The cheapest text ``element`` allows, and its cost."""
        if isinstance(element, Lit):
            return self.literal_cost(element.text), element.text
        if isinstance(element, Chars):
            return 1, element.sample()
        if isinstance(element, Repeat):
            cost, text = self.shortest(element.item)
            return cost * element.min, text * element.min
        name = element.name
        if name not in self._min:
            self._enter(name)
            options = []
            for alt in self.rules[name]:
                parts = [self.shortest(e) for e in alt]
                options.append((sum(c for c, _ in parts), "".join(t for _, t in parts)))
            self._visiting.discard(name)
            self._min[name] = min(options, key=lambda o: (o[0], len(o[1].encode())))
        return self._min[name]

    def min_text(self, element: Element) -> str:
        return self.shortest(element)[1]

    def min_cost(self, element: Element) -> int:
        return self.shortest(element)[0]

    def max_bytes(self, element: Element) -> int | None:
        if isinstance(element, Lit):
            return len(element.text.encode())
        if isinstance(element, Chars):
            return element.max_bytes()
        if isinstance(element, Repeat):
            item = self.max_bytes(element.item)
            if element.max is None or item is None:
                return None if (item is None or item > 0) else 0
            return item * element.max
        name = element.name
        if name not in self._max:
            if name in self._visiting:  # recursion: unbounded
                return None
            self._visiting.add(name)
            total: int | None = 0
            for alt in self.rules[name]:
                lengths = [self.max_bytes(e) for e in alt]
                length = None if any(n is None for n in lengths) else sum(n or 0 for n in lengths)
                total = None if (total is None or length is None) else max(total, length)
            self._visiting.discard(name)
            self._max[name] = total
        return self._max[name]

    def close_bound(self, element: Element) -> int:
        """Most cost needed to complete a partly generated ``element`` (started, not finished)."""
        if isinstance(element, Lit):
            text = element.text
            return max((self.literal_cost(text[i:]) for i in range(1, len(text))), default=0)
        if isinstance(element, Chars):
            return 0
        if isinstance(element, Repeat):
            if element.max == 0:
                return 0
            inner = max(self.close_bound(element.item), self.min_cost(element.item))
            return inner + self.min_cost(element.item) * max(element.min - 1, 0)
        name = element.name
        if name not in self._close:
            self._enter(name)
            self._close[name] = max((self._close_seq(alt) for alt in self.rules[name]), default=0)
            self._visiting.discard(name)
        return self._close[name]

    def _close_seq(self, alt: Sequence_) -> int:
        worst, tail = 0, 0
        for element in reversed(alt):  # cut inside element i: close it, then the cheapest rest
            worst = max(worst, max(self.close_bound(element), self.min_cost(element)) + tail)
            tail += self.min_cost(element)
        return worst


# -- prefix matching -----------------------------------------------------------------------------

Stack = tuple[Element, ...]  # pending elements, the next one last


class Matcher:
    """Follows text through the grammar, as llama.cpp's grammar sampler does (a set of stacks).

    ``feed`` returns False once the text leaves the grammar; ``accepted`` tells whether the text
    so far is a complete sentence; ``completion`` is the shortest text that makes it one.
    """

    def __init__(self, grammar: Grammar):
        self._grammar = grammar
        self._rules = grammar.rules
        self._stacks: set[Stack] = self._expand((Ref(ROOT),))

    def feed(self, text: str) -> bool:
        for ch in text:
            nxt: set[Stack] = set()
            for stack in self._stacks:
                if not stack:
                    continue
                top = stack[-1]
                if isinstance(top, Lit):
                    if top.text[0] == ch:
                        rest = stack[:-1] + (Lit(top.text[1:]),) if len(top.text) > 1 else stack[:-1]
                        nxt |= self._expand(rest)
                elif isinstance(top, Chars) and top.matches(ch):
                    nxt |= self._expand(stack[:-1])
            self._stacks = nxt
            if not nxt:
                return False
        return True

    @property
    def accepted(self) -> bool:
        return () in self._stacks

    @property
    def stacks(self) -> frozenset[Stack]:
        """The parse stacks: pending elements, the next one last (empty: the text is complete)."""
        return frozenset(self._stacks)

    @property
    def alive(self) -> bool:
        return bool(self._stacks)

    def completion(self) -> str:
        if not self._stacks:
            raise ValueError("the text left the grammar: it cannot be completed")
        analysis = self._grammar._analysis()
        options = ["".join(analysis.min_text(e) for e in reversed(stack)) for stack in self._stacks]
        return min(options, key=lambda text: len(text.encode()))

    def _expand(self, stack: Stack) -> set[Stack]:
        """Every way to reach a terminal (or the end) from ``stack``."""
        out: set[Stack] = set()
        todo = [stack]
        while todo:
            current = todo.pop()
            if not current:
                out.add(current)
                continue
            top, rest = current[-1], current[:-1]
            if isinstance(top, Lit):
                if top.text:
                    out.add(current)
                else:
                    todo.append(rest)
            elif isinstance(top, Chars):
                out.add(current)
            elif isinstance(top, Ref):
                for alt in self._rules[top.name]:
                    todo.append(rest + tuple(reversed(alt)))
            else:  # Repeat: one more item, then the rest of the repetition (if any is left)
                less = None if top.max is None else top.max - 1
                again = rest if less == 0 else rest + (Repeat(top.item, max(top.min - 1, 0), less),)
                if top.min == 0:
                    todo.append(rest)
                if top.max is None or top.max > 0:
                    todo.append((*again, top.item))
        return out
