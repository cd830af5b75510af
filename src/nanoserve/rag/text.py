"""Small text helpers shared by citations, quality and keyword search (pure)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "use",
        "using",
        "used",
        "get",
        "make",
        "way",
        "one",
        "also",
        "may",
        "might",
        "must",
        "shall",
        "need",
        "want",
        "tell",
        "show",
        "explain",
        "give",
        "please",
        "like",
        "answer",
        "question",
        "context",
        "passage",
        "passages",
        "document",
        "documents",
    ]
)

_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_+#.]*[A-Za-z0-9_+#]|[A-Za-z0-9_]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
CITATION_MARK = re.compile(r"\s*\[(\d{1,3})\]")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (keeps identifiers like ``os.path`` and ``c++`` whole)."""
    return [w.lower() for w in _WORD.findall(text)]


def stem(word: str) -> str:
    """A deliberately light suffix stripper: enough to match "sorting"/"sorted"/"sorts"."""
    for suffix in ("ing", "ies", "ied", "es", "ed", "s", "ly"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            base = word[: -len(suffix)]
            return base + "y" if suffix in ("ies", "ied") else base
    return word


def content_terms(text: str) -> list[str]:
    """Stemmed words that carry meaning: no stopwords, no single characters."""
    return [stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1]


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def strip_citations(text: str) -> str:
    return CITATION_MARK.sub("", text).strip()


def cited_numbers(text: str) -> list[int]:
    return [int(n) for n in CITATION_MARK.findall(text)]


def numbers(text: str) -> set[str]:
    """Figures in a text (citation markers excluded), "1,000" and "1000" alike."""
    return {n.replace(",", "") for n in _NUMBER.findall(CITATION_MARK.sub(" ", text))}


def containment(part: str, whole: str) -> float:
    """Share of ``part``'s content terms that occur in ``whole`` (0 when part has none)."""
    terms = content_terms(part)
    if not terms:
        return 0.0
    pool = set(content_terms(whole))
    return sum(1 for t in terms if t in pool) / len(terms)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def keyword_query_terms(query: str, *, limit: int = 32) -> list[str]:
    """Distinct raw (unstemmed) words of a query for a keyword index, stopwords dropped unless
    nothing else is left."""
    all_words = [w for w in words(query) if len(w) > 1 or w.isdigit()]
    terms = [w for w in all_words if w not in STOPWORDS] or all_words
    return list(dict.fromkeys(terms))[:limit]
