"""The extractive fallback (pure): quote the context sentences that best answer the question.

A 135M generation model often answers beside the point or invents figures. When too few of its
sentences are supported by the context (grounding below ``MIN_GROUNDING``), the pipeline answers
with the best-matching sentences of the retrieved chunks instead, each cited, and says so in the
trace (``answer_mode: extractive``). A sentence's score is its cosine with the question plus half
the share of the question's content words it contains; at most one sentence per chunk is taken
first, so the answer spreads over the evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nanoserve.rag.text import containment, cosine, sentences

MIN_GROUNDING = 0.5
MAX_SENTENCES = 2
MIN_SCORE = 0.3


@dataclass(frozen=True, slots=True)
class Candidate:
    context_index: int
    order: int  # position of the sentence in its chunk
    text: str


def candidates(contexts: Sequence[str], *, min_chars: int = 20) -> list[Candidate]:
    out = []
    for j, ctx in enumerate(contexts):
        for i, sentence in enumerate(sentences(ctx)):
            if len(sentence) >= min_chars:
                out.append(Candidate(j, i, sentence))
    return out


def pick_scores(
    query: str, query_vec: Sequence[float], cands: Sequence[Candidate], cand_vecs: Sequence[Sequence[float]]
) -> list[tuple[float, int]]:
    """(score, index) per candidate: cosine with the question plus half its share of the
    question's content words."""
    return [
        (cosine(query_vec, v) + 0.5 * containment(query, c.text), i)
        for i, (c, v) in enumerate(zip(cands, cand_vecs))
    ]


def pick(
    query: str,
    query_vec: Sequence[float],
    cands: Sequence[Candidate],
    cand_vecs: Sequence[Sequence[float]],
    *,
    max_sentences: int = MAX_SENTENCES,
) -> list[Candidate]:
    """The best sentences, at most one per chunk while other chunks have good ones, in chunk order."""
    scored = sorted(pick_scores(query, query_vec, cands, cand_vecs), reverse=True)
    chosen: list[int] = []
    used_contexts: set[int] = set()
    for s, i in scored:
        if s < MIN_SCORE or len(chosen) >= max_sentences:
            break
        if cands[i].context_index not in used_contexts:
            chosen.append(i)
            used_contexts.add(cands[i].context_index)
    for s, i in scored:  # fill up from chunks already used
        if s < MIN_SCORE or len(chosen) >= max_sentences:
            break
        if i not in chosen:
            chosen.append(i)
    picked = [cands[i] for i in chosen]
    return sorted(picked, key=lambda c: (c.context_index, c.order))


def compose(picked: Sequence[Candidate]) -> str:
    """The answer text with a citation marker per sentence (1-based context numbers)."""
    parts = []
    for c in picked:
        text = c.text.rstrip()
        end = text[-1] if text[-1:] in ".!?" else "."
        body = text[:-1] if text[-1:] in ".!?" else text
        parts.append(f"{body} [{c.context_index + 1}]{end}")
    return " ".join(parts)
