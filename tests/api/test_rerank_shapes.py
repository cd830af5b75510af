"""The rerank wire shapes as pure functions: reading each server's answer, answering each dialect."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from nanoserve.wire.rerank import (
    BadRerankAnswer,
    RerankRequest,
    probability,
    rerank_answer,
    scores_from_answer,
)

# answers as vLLM (always a document, an id) and llama-server (object, no document) build them,
# and as TEI and llama-server answer a request with "texts": a bare list with "score"
VLLM = {
    "id": "rerank-1",
    "model": "m",
    "usage": {"prompt_tokens": 30, "total_tokens": 30},
    "results": [
        {"index": 1, "document": {"text": "b"}, "relevance_score": 0.9},
        {"index": 0, "document": {"text": "a"}, "relevance_score": 0.2},
    ],
}
LLAMA_SERVER = {
    "model": "m",
    "object": "list",
    "usage": {"prompt_tokens": 12, "total_tokens": 12},
    "results": [{"index": 1, "relevance_score": 3.5}, {"index": 0, "relevance_score": -1.0}],
}
TEI = [{"index": 1, "score": 0.9}, {"index": 0, "score": 0.2}]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [(VLLM, ([0.2, 0.9], 30)), (LLAMA_SERVER, ([-1.0, 3.5], 12)), (TEI, ([0.2, 0.9], 0))],
)
def test_scores_are_read_from_every_servers_answer(answer: Any, expected: tuple[list[float], int]) -> None:
    assert scores_from_answer(answer, 2) == expected


@pytest.mark.parametrize(
    "answer",
    [
        {"data": []},  # a /score answer, not a rerank one
        {"results": [{"index": 0, "relevance_score": 0.1}]},  # one document left out
        {"results": [{"index": 0, "relevance_score": 0.1}, {"index": 0, "relevance_score": 0.2}]},
        {"results": [{"index": 0, "relevance_score": 0.1}, {"index": 2, "relevance_score": 0.2}]},
        {"results": [{"index": 0, "relevance_score": "high"}, {"index": 1, "relevance_score": 0.2}]},
        ["not an object", {}],
    ],
)
def test_answers_that_do_not_score_each_document_once_are_refused(answer: Any) -> None:
    with pytest.raises(BadRerankAnswer):
        scores_from_answer(answer, 2)


def test_ranked_best_first_ties_keep_the_earlier_document_top_n_cuts() -> None:
    req = RerankRequest(model="m", query="q", documents=["a", {"text": "b"}, "c"], top_n=2)  # type: ignore[list-item]
    answer = rerank_answer(req, [0.5, 0.9, 0.5], 7, model="m")
    assert isinstance(answer, dict)
    assert answer["results"] == [
        {"index": 1, "relevance_score": 0.9, "document": {"text": "b"}},
        {"index": 0, "relevance_score": 0.5, "document": {"text": "a"}},
    ]
    assert answer["usage"] == {"prompt_tokens": 7, "total_tokens": 7}


def test_a_tei_request_gets_the_bare_list() -> None:
    req = RerankRequest(model="m", query="q", texts=["a", "b"])
    assert rerank_answer(req, [0.1, 0.2], 3, model="m") == [
        {"index": 1, "score": 0.2},
        {"index": 0, "score": 0.1},
    ]
    req = RerankRequest(model="m", query="q", texts=["a", "b"], return_text=True)
    assert rerank_answer(req, [0.1, 0.2], 3, model="m")[0] == {"index": 1, "score": 0.2, "text": "b"}  # type: ignore[index]


def test_requests_name_one_list_of_documents() -> None:
    with pytest.raises(ValidationError, match="not both"):
        RerankRequest(model="m", query="q")
    assert RerankRequest(model="m", query="q", texts=["x"]).upstream_body() == {
        "model": "m",
        "query": "q",
        "documents": ["x"],
        "return_documents": False,
        "raw_scores": False,
    }


def test_probability_is_the_sigmoid_without_overflow() -> None:
    assert probability(0.0) == 0.5
    assert probability(1000.0) == 1.0 and probability(-1000.0) == 0.0
    assert probability(2.0) == pytest.approx(1 - probability(-2.0))
