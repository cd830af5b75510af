from __future__ import annotations

import pytest

from nanoserve.rag.citations import attach_citations, specifics_factor, support
from nanoserve.rag.text import (
    cited_numbers,
    content_terms,
    keyword_query_terms,
    numbers,
    sentences,
    strip_citations,
)

CONTEXTS = [
    "Use water between 70 and 80 degrees Celsius for green tea.",
    "Steep green tea for one to two minutes.",
    "Road bike tyres need 80 to 100 psi.",
]


@pytest.mark.parametrize(
    ("answer", "expected_text", "expected_contexts"),
    [
        # no markers: each sentence cites its best-supporting chunk (lexical support, no vectors)
        (
            "Use water between 70 and 80 degrees Celsius. Steep green tea for one to two minutes.",
            "Use water between 70 and 80 degrees Celsius [1]. Steep green tea for one to two minutes [2].",
            [0, 1],
        ),
        # a valid marker is kept and renumbered by first use
        ("Steep green tea for one to two minutes [2].", "Steep green tea for one to two minutes [1].", [1]),
        # a marker naming a missing chunk is dropped, the supporting chunk is cited instead
        ("Road bike tyres need 80 to 100 psi [7].", "Road bike tyres need 80 to 100 psi [1].", [2]),
        # a marker on a chunk that does not support the sentence is replaced
        ("Road bike tyres need 80 to 100 psi [1].", "Road bike tyres need 80 to 100 psi [1].", [2]),
        # an unsupported sentence gets no citation
        ("The moon is made of cheese.", "The moon is made of cheese.", []),
        # the same chunk cited twice keeps one number
        (
            "Steep green tea for one to two minutes. Steep green tea for two minutes at most",
            "Steep green tea for one to two minutes [1]. Steep green tea for two minutes at most [1]",
            [1],
        ),
    ],
)
def test_attach_citations(answer: str, expected_text: str, expected_contexts: list[int]) -> None:
    cited = attach_citations(answer, CONTEXTS)
    assert cited.text == expected_text
    assert [c.context_index for c in cited.citations] == expected_contexts
    assert [c.n for c in cited.citations] == list(range(1, len(expected_contexts) + 1))


@pytest.mark.parametrize(
    ("sentence", "chunk", "factor"),
    [
        ("No figures here.", "anything", 1.0),
        ("Use 70 to 80 degrees.", "between 70 and 80 degrees", 1.0),
        ("Use 100 degrees.", "between 70 and 80 degrees", 0.25),
        ("Use 70 or 100 degrees.", "between 70 and 80 degrees", 0.625),
        ("It costs 1,000 dollars [2].", "costs 1000 dollars", 1.0),  # marker is not a figure
    ],
)
def test_specifics_factor(sentence: str, chunk: str, factor: float) -> None:
    assert specifics_factor(sentence, chunk) == pytest.approx(factor)


def test_support_with_vectors_blends_semantic_and_lexical() -> None:
    same = [1.0, 0.0]
    assert support("green tea water", same, "green tea water", same) == pytest.approx(1.0)
    assert support("green tea water", [1.0, 0.0], "unrelated words", [0.0, 1.0]) == pytest.approx(0.0)
    assert support("green tea water", same, "unrelated words", same) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("fn", "text", "expected"),
    [
        (sentences, "One. Two! Three?\nFour", ["One.", "Two!", "Three?", "Four"]),
        (strip_citations, "Use it [1]. Then [2][3].", "Use it. Then."),
        (cited_numbers, "a [1] b [12] c [x]", [1, 12]),
        (numbers, "version 2.5 costs 1,000 [3]", {"2.5", "1000"}),
        (content_terms, "How do I sort the lists?", ["sort", "list"]),
        (keyword_query_terms, "How do I use os.path.join()?", ["os.path.join"]),
        (keyword_query_terms, "what is it", ["what", "is", "it"]),  # only stopwords: keep them
    ],
)
def test_text_helpers(fn, text, expected) -> None:  # type: ignore[no-untyped-def]
    assert fn(text) == expected


def test_restating_the_question_is_not_support() -> None:
    query = "How often should I oil my bike chain?"
    chunk = "Oil the bike chain every 300 kilometres."
    assert support("How often should I oil my bike chain?", None, chunk, None, query) == 0.0
    assert support("Oil it every 300 kilometres.", None, chunk, None, query) == pytest.approx(1.0)
    cited = attach_citations("You ask how often to oil the bike chain.", [chunk], query=query)
    assert cited.citations == [] and cited.sentence_support == [0.0]


def test_extractive_pick_spreads_over_chunks() -> None:
    from nanoserve.rag.extractive import candidates, compose, pick

    contexts = ["Use water at 70 to 80 degrees. Tea is old.", "Steep for two minutes. Nothing else here."]
    cands = candidates(contexts, min_chars=5)
    vecs = {"Use water at 70 to 80 degrees.": [1.0, 0.0], "Tea is old.": [0.0, 1.0],
            "Steep for two minutes.": [0.9, 0.1], "Nothing else here.": [0.0, 1.0]}  # fmt: skip
    picked = pick("water temperature and steeping time", [1.0, 0.0], cands, [vecs[c.text] for c in cands])
    assert [c.text for c in picked] == ["Use water at 70 to 80 degrees.", "Steep for two minutes."]
    assert compose(picked) == "Use water at 70 to 80 degrees [1]. Steep for two minutes [2]."
    assert pick("x", [1.0, 0.0], cands, [[0.0, 1.0]] * len(cands)) == []  # nothing relevant enough


def test_support_check_removes_unsupported_and_repeated_sentences() -> None:
    answer = (
        "Steep green tea for one to two minutes [3]. The moon is made of cheese [1]. "
        "Steep green tea for one to two minutes. Road bike tyres need 80 to 100 psi."
    )
    cited = attach_citations(answer, CONTEXTS, drop_unsupported=True)
    # the wrong marker [3] is replaced by the chunk that supports the sentence; the invented
    # sentence and the repeat are gone, so chunk 1 (cited by the invented sentence) is not cited
    assert cited.text == "Steep green tea for one to two minutes [1]. Road bike tyres need 80 to 100 psi [2]."
    assert [c.context_index for c in cited.citations] == [1, 2]
    assert cited.dropped == 2 and len(cited.sentence_support) == 4
    assert attach_citations("The moon is made of cheese.", CONTEXTS, drop_unsupported=True).citations == []
