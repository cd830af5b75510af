"""Random sentences of a grammar: a random walk over its rules (a property-test helper)."""

from __future__ import annotations

import random

from nanoserve.worker.grammar import ROOT, Chars, Element, Grammar, Lit, Ref, Repeat

# Characters a random walk picks from for a character class (the first one that matches wins
# often, so plain text dominates; the others exercise escapes and multi-byte text).
_POOL = list("abcxyzAZ09 _-.,:/\\\"'{}[]\n\té€😀<>") + [chr(c) for c in range(0x20, 0x7F)]


def sentence(grammar: Grammar, rng: random.Random, *, extra_repeats: int = 3) -> str:
    out: list[str] = []
    _walk(grammar, Ref(ROOT), rng, out, extra_repeats)
    return "".join(out)


def _walk(grammar: Grammar, element: Element, rng: random.Random, out: list[str], extra: int) -> None:
    if isinstance(element, Lit):
        out.append(element.text)
    elif isinstance(element, Chars):
        options = [c for c in _POOL if element.matches(c)]
        if not options:  # a class outside the pool: its representative character
            options = [element.sample()]
        out.append(rng.choice(options))
    elif isinstance(element, Ref):
        alt = rng.choice(grammar.rules[element.name])
        for part in alt:
            _walk(grammar, part, rng, out, extra)
    else:
        top = element.min + extra if element.max is None else min(element.max, element.min + extra)
        for _ in range(rng.randint(element.min, top)):
            _walk(grammar, element.item, rng, out, extra)

