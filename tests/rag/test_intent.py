from __future__ import annotations

import pytest

from nanoserve.rag.intent import DEFAULT_INTENTS, IntentClassifier, classify, route

STRATEGIES = {"lookup": "hybrid", "how-to": "semantic", "out-of-scope": "semantic"}


@pytest.mark.parametrize(
    ("query", "intent", "requested", "strategy", "reason"),
    [
        ("how do I configure logging", "how-to", None, "semantic", "intent how-to"),
        ("how do I configure logging", "how-to", "keyword", "keyword", "requested"),
        ("what does os.path.join do", "how-to", None, "hybrid", "exact tokens in the query"),
        ('what does "dry run" mean', "how-to", None, "hybrid", "exact tokens in the query"),
        ("why does sorted() fail", "how-to", None, "hybrid", "exact tokens in the query"),
        ("what is a ValueError", "how-to", None, "semantic", "intent how-to"),
        ("where is MAX_RETRIES set", "how-to", None, "hybrid", "exact tokens in the query"),
        ("anything", "unknown-intent", None, "hybrid", "intent unknown-intent"),
    ],
)
def test_route(query: str, intent: str, requested, strategy: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    chosen = route(query, intent, STRATEGIES, requested)
    assert (chosen.strategy, chosen.reason) == (strategy, reason)


def test_classify_picks_nearest_prototype() -> None:
    prototypes = {"a": [[1.0, 0.0], [0.7, 0.7]], "b": [[0.0, 1.0]]}
    result = classify([0.9, 0.1], prototypes)
    assert result.name == "a" and 0.5 < result.confidence <= 1.0
    assert classify([0.1, 0.9], prototypes).name == "b"
    assert result.scores["a"] > result.scores["b"]


@pytest.mark.parametrize(
    ("query", "intent"),
    [
        ("How can I write log messages to a file?", "how-to"),
        ("What is the difference between a tuple and a list?", "comparison"),
        ("I get a KeyError traceback when I run my script, why?", "troubleshooting"),
        ("What is the default encoding parameter?", "lookup"),
        ("Who won the football world cup?", "out-of-scope"),
        ("Tell me a funny joke", "out-of-scope"),
    ],
)
async def test_classifier_with_the_real_embedding_model(embed_texts, query: str, intent: str) -> None:  # type: ignore[no-untyped-def]
    async def embed(texts):  # type: ignore[no-untyped-def]
        return embed_texts(list(texts))

    classifier = IntentClassifier(DEFAULT_INTENTS)
    (vec,) = await embed([query])
    assert (await classifier.classify("m", vec, embed)).name == intent
