"""Match answer sentences to the context chunks that support them (pure).

A 135M model does not cite reliably, so citations are settled after generation: every sentence of
the answer is compared with every context chunk. A sentence's *support* by a chunk is

    support = (semantic + lexical) / 2 * specifics

* semantic: the cosine of their embeddings, rescaled so 0.25 -> 0 and 0.75 -> 1;
* lexical: the share of the sentence's content words that occur in the chunk, not counting words
  taken from the question (a sentence that only restates the question has no support at all);
* specifics: 1 when every number in the sentence occurs in the chunk, down to 0.25 when none does
  (invented figures are the commonest hallucination, and embeddings barely see them).

Markers the model wrote itself (``[2]``) are kept when valid (the number names a context chunk
that supports the sentence at least ``KEEP_SUPPORT``); a sentence without a valid marker cites its
best-supporting chunk when that support reaches ``ASSIGN_SUPPORT``. The answer is rewritten with
markers at sentence ends, numbered 1..n in order of first use, and ``Citation.context_index``
says which context chunk each number refers to.

The support check (``drop_unsupported=True``, what the pipeline uses): a sentence that no chunk
supports at least ``ASSIGN_SUPPORT``, or that repeats an earlier sentence, is removed from the
answer, so every sentence left cites a chunk that backs it and no chunk is cited that the answer
did not use. The thresholds were set on labelled sentence/chunk pairs from the tuning corpora
(benchmarks/rag/support-labels.jsonl, measured by benchmarks/rag/support_check.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nanoserve.rag.text import cited_numbers, content_terms, cosine, numbers, sentences, strip_citations

KEEP_SUPPORT = 0.3
ASSIGN_SUPPORT = 0.45
SIM_FLOOR, SIM_CEIL = 0.25, 0.75


def semantic_support(similarity: float) -> float:
    return max(0.0, min(1.0, (similarity - SIM_FLOOR) / (SIM_CEIL - SIM_FLOOR)))


def specifics_factor(sentence: str, chunk: str) -> float:
    wanted = numbers(sentence)
    if not wanted:
        return 1.0
    present = numbers(chunk)
    return 0.25 + 0.75 * sum(1 for n in wanted if n in present) / len(wanted)


def support(
    sentence: str,
    sentence_vec: Sequence[float] | None,
    chunk: str,
    chunk_vec: Sequence[float] | None,
    query: str = "",
) -> float:
    """How well ``chunk`` backs ``sentence`` (0..1). Words the sentence takes from ``query`` are
    not evidence: a sentence that only restates the question is supported by nothing."""
    asked = set(content_terms(query))
    said = [t for t in content_terms(sentence) if t not in asked]
    if query and not said:
        return 0.0
    pool = set(content_terms(chunk))
    lexical = sum(1 for t in said if t in pool) / len(said) if said else 0.0
    if sentence_vec is None or chunk_vec is None:
        base = lexical
    else:
        base = (semantic_support(cosine(sentence_vec, chunk_vec)) + lexical) / 2
    return base * specifics_factor(sentence, chunk)


@dataclass(frozen=True, slots=True)
class Citation:
    n: int  # the number shown in the answer
    context_index: int  # 0-based index into the contexts given to the model
    support: float  # best support of a sentence citing it


@dataclass(frozen=True, slots=True)
class CitedAnswer:
    text: str
    citations: list[Citation]
    sentence_support: list[float]  # per answer sentence: its best support by any context chunk
    dropped: int = 0  # sentences removed by the support check (unsupported or repeated)


def split_answer(answer: str) -> list[str]:
    """The sentences whose support is measured (markers kept, so callers can read them)."""
    return sentences(answer)


def attach_citations(
    answer: str,
    contexts: Sequence[str],
    *,
    sentence_vecs: Sequence[Sequence[float]] | None = None,
    context_vecs: Sequence[Sequence[float]] | None = None,
    query: str = "",
    drop_unsupported: bool = False,
) -> CitedAnswer:
    """Rewrite ``answer`` with valid citation markers. ``sentence_vecs[i]`` embeds
    ``strip_citations(split_answer(answer)[i])``; ``context_vecs[j]`` embeds ``contexts[j]``.
    ``drop_unsupported``: remove the sentences no chunk supports, and repeated ones (module doc);
    ``sentence_support`` then covers every sentence, kept or not."""
    parts = split_answer(answer)
    numbering: dict[int, int] = {}  # context index -> shown number
    best_support: dict[int, float] = {}
    rewritten: list[str] = []
    sentence_support: list[float] = []
    seen: set[tuple[str, ...]] = set()
    dropped = 0
    for i, sentence in enumerate(parts):
        plain = strip_citations(sentence)
        if not plain:
            continue
        svec = sentence_vecs[i] if sentence_vecs is not None else None
        scores = [
            support(plain, svec, ctx, context_vecs[j] if context_vecs is not None else None, query)
            for j, ctx in enumerate(contexts)
        ]
        sentence_support.append(max(scores, default=0.0))
        if drop_unsupported:
            key = tuple(content_terms(plain))
            if sentence_support[-1] < ASSIGN_SUPPORT or key in seen:
                dropped += 1
                continue
            seen.add(key)
        chosen = [
            n - 1
            for n in dict.fromkeys(cited_numbers(sentence))
            if 1 <= n <= len(contexts) and scores[n - 1] >= KEEP_SUPPORT
        ]
        if not chosen and scores:
            best = max(range(len(scores)), key=scores.__getitem__)
            if scores[best] >= ASSIGN_SUPPORT:
                chosen = [best]
        marks = ""
        for j in chosen:
            numbering.setdefault(j, len(numbering) + 1)
            best_support[j] = max(best_support.get(j, 0.0), scores[j])
            marks += f" [{numbering[j]}]"
        rewritten.append(_with_marks(plain, marks))
    citations = [Citation(n, j, round(best_support[j], 4)) for j, n in numbering.items()]
    return CitedAnswer(" ".join(rewritten), citations, sentence_support, dropped)


def _with_marks(sentence: str, marks: str) -> str:
    if not marks:
        return sentence
    if sentence[-1:] in ".!?":
        return sentence[:-1] + marks + sentence[-1]
    return sentence + marks
