"""Intent classification with the embedding model, and routing to a search strategy.

Each intent is described by a few prototype questions. A query's intent is the one whose closest
prototype is most similar to the query (cosine of embeddings); confidence is a softmax over the
intents' best similarities. Prototype vectors are computed once per embedding model and cached by
``IntentClassifier``. ``classify`` and ``route`` are pure.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from nanoserve.rag.text import cosine

Strategy = Literal["semantic", "keyword", "hybrid"]
STRATEGIES: tuple[Strategy, ...] = ("semantic", "keyword", "hybrid")
OUT_OF_SCOPE = "out-of-scope"
SOFTMAX_TEMPERATURE = 0.05


@dataclass(frozen=True, slots=True)
class IntentSpec:
    name: str
    strategy: Strategy
    examples: tuple[str, ...]


DEFAULT_INTENTS: tuple[IntentSpec, ...] = (
    IntentSpec(
        "lookup",
        "hybrid",
        (
            "What is a generator?",
            "What does this function return?",
            "Which option sets the timeout?",
            "What is the default value of the parameter?",
            "How much should I use?",
            "How often should I do it?",
            "What temperature should it be?",
            "Define the term.",
        ),
    ),
    IntentSpec(
        "how-to",
        "hybrid",
        (
            "How do I install it?",
            "How can I configure logging to a file?",
            "How to sort a list of objects by an attribute?",
            "What are the steps to set this up?",
            "Show me an example of reading a file.",
        ),
    ),
    IntentSpec(
        "troubleshooting",
        "hybrid",
        (
            "Why do I get this error?",
            "It fails with an exception, how do I fix it?",
            "The program hangs and does not respond.",
            "Why is my output wrong?",
            "Traceback KeyError when running the script.",
        ),
    ),
    IntentSpec(
        "comparison",
        "hybrid",
        (
            "What is the difference between a list and a tuple?",
            "Should I use threads or processes?",
            "Compare the two approaches.",
            "Which is faster, A or B?",
            "Pros and cons of each option.",
        ),
    ),
    IntentSpec(
        OUT_OF_SCOPE,
        "semantic",
        (
            "Will it rain tomorrow?",
            "Tell me a joke.",
            "Who won the football match last night?",
            "What is the capital of France?",
            "Recommend a good restaurant nearby.",
            "Hello, how are you?",
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class IntentResult:
    name: str
    confidence: float
    scores: dict[str, float]  # best prototype similarity per intent


def classify(query_vec: Sequence[float], prototypes: Mapping[str, Sequence[Sequence[float]]]) -> IntentResult:
    """The intent whose nearest prototype is closest to the query."""
    if not prototypes:
        raise ValueError("no intents")
    scores = {name: max(cosine(query_vec, v) for v in vecs) for name, vecs in prototypes.items()}
    best = max(scores, key=scores.__getitem__)
    top = scores[best]
    weights = {name: math.exp((s - top) / SOFTMAX_TEMPERATURE) for name, s in scores.items()}
    confidence = weights[best] / sum(weights.values())
    return IntentResult(best, round(confidence, 4), {k: round(v, 4) for k, v in scores.items()})


_EXACT = re.compile(
    r"\"[^\"]+\"|`[^`]+`|\b\w+\(\)|\b[A-Za-z_]\w*\.[A-Za-z_]\w*\b|\b[A-Z]{2,}\w*Error\b|\b\w+_\w+\b"
)


@dataclass(frozen=True, slots=True)
class Route:
    strategy: Strategy
    reason: str


def route(
    query: str, intent: str, strategies: Mapping[str, Strategy], requested: Strategy | None = None
) -> Route:
    """The search strategy for a query: the caller's choice, else hybrid when the query names an
    exact token (a quoted phrase, an identifier such as ``os.path`` or ``sort()``), else the
    intent's strategy."""
    if requested is not None:
        return Route(requested, "requested")
    if _EXACT.search(query):
        return Route("hybrid", "exact tokens in the query")
    return Route(strategies.get(intent, "hybrid"), f"intent {intent}")


EmbedFn = Callable[[Sequence[str]], Awaitable[list[list[float]]]]


class IntentClassifier:
    """Embeds the prototype questions once per embedding model, then classifies query vectors."""

    def __init__(self, intents: Sequence[IntentSpec] = DEFAULT_INTENTS):
        self.intents = tuple(intents)
        self.strategies: dict[str, Strategy] = {i.name: i.strategy for i in self.intents}
        self._prototypes: dict[str, dict[str, list[list[float]]]] = {}
        self._lock = asyncio.Lock()

    async def prototypes(self, model: str, embed: EmbedFn) -> dict[str, list[list[float]]]:
        if model not in self._prototypes:
            async with self._lock:
                if model not in self._prototypes:
                    texts = [e for spec in self.intents for e in spec.examples]
                    vectors = await embed(texts)
                    out: dict[str, list[list[float]]] = {}
                    it = iter(vectors)
                    for spec in self.intents:
                        out[spec.name] = [next(it) for _ in spec.examples]
                    self._prototypes[model] = out
        return self._prototypes[model]

    async def classify(self, model: str, query_vec: Sequence[float], embed: EmbedFn) -> IntentResult:
        return classify(query_vec, await self.prototypes(model, embed))
