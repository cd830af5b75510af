"""Is the question about these documents at all? (pure)

A question can share many words with a collection and still be about something else: "How do I
create a replica set in MongoDB?" asked of PostgreSQL's manual finds chunks about replica identity
and replication, close enough for the similarity gate. What gives it away is a *name* the question
is about that the documents never use. ``unknown_names`` lists the query's name-like words (a
capital letter inside the word or all capitals, as in ``MongoDB``, ``macOS``, ``AWS``; or
capitalised anywhere but at the start) that occur in none of the retrieved candidate chunks; the
keyword half of hybrid retrieval ranks a rare word's chunks high, so a name missing from the
candidates is, in practice, missing from the collection. The pipeline declines such a question
("not in the documents"): answering it from other chunks can only be about something else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9+#]*(?:[.\-][A-Za-z0-9+#]+)*")
# capitalised words that start questions or are English, not names
_COMMON = frozenset({"i", "how", "what", "which", "who", "why", "when", "where", "can", "is", "does", "do"})


def name_like(query: str) -> list[str]:
    """The query's words that look like names (module doc), in order, without repeats."""
    out: list[str] = []
    for m in _TOKEN.finditer(query):
        word = m.group(0)
        if word.lower() in _COMMON or len(word) < 2:
            continue
        inner_capital = any(ch.isupper() for ch in word[1:])
        capitalised = word[0].isupper() and m.start() > 0 and query[: m.start()].rstrip()[-1:] not in ".?!:"
        if (inner_capital or capitalised) and word not in out:
            out.append(word)
    return out


def unknown_names(query: str, texts: Iterable[str]) -> list[str]:
    """Name-like words of ``query`` that occur (as words, any case) in none of ``texts``."""
    names = name_like(query)
    if not names:
        return []
    vocabulary = {w.lower() for text in texts for w in _TOKEN.findall(text)}
    vocabulary |= {part for w in list(vocabulary) for part in re.split(r"[.\-]", w)}
    return [n for n in names if n.lower() not in vocabulary]
