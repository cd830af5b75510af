"""The engine interface: asynchronous, per request, one event per generated token.

An engine hosts one model inside a worker process. The worker (``nanoserve.worker``) turns OpenAI
HTTP requests into calls on this interface, so a new engine never touches HTTP:

* generation engines render chat messages to a prompt (``render_chat``), count tokens
  (``tokenize``) and stream a request (``generate``): one ``Token`` per generated token, then
  exactly one ``Finished``. Many ``generate`` calls run concurrently; a batching engine decodes
  them together. Closing the iterator early (client gone) must free the request's slot at once.
* embedding engines embed a batch of texts (``embed``); concurrent calls may be micro-batched.
* rerank engines score documents against a query (``score``): one relevance logit each.

Capabilities are class attributes; engine-specific options are a pydantic model with
``extra="forbid"`` (``Options``), validated from the config's ``options:`` mapping. Both are
declared in the engine's profile (``nanoserve.profiles``), which the gateway reads instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ValidationError

from nanoserve.errors import ConfigError
from nanoserve.profiles.base import EngineOptions

FinishReason = Literal["stop", "length", "tool_calls", "cancelled"]

# What ``Engine.start`` is doing, reported by the worker's ``/health`` while it loads: the gateway
# gives each phase its own ``worker_start_timeout`` (docs/worker-protocol.md).
LOADING = "loading"
CONVERTING = "converting"  # a one-time conversion of the weights (cached afterwards)


@dataclass(slots=True)
class EngineSpec:
    """What a worker is asked to host: resolved from a ModelConfig by the gateway."""

    name: str
    path: Path | None
    kind: str = "chat"
    context_length: int = 2048  # tokens per sequence
    parallel: int = 4  # sequences at once
    threads: int = 1
    chat_template: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    data_dir: Path | None = None  # where an engine may cache converted weights


@dataclass(slots=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    min_p: float = 0.0
    repeat_penalty: float = 1.0  # 1.0 = off
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    grammar: str | None = None  # GBNF; only for engines with supports_grammar
    ignore_eos: bool = False
    deadline: float | None = None  # time.perf_counter() at which generation ends with "length"

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0 or self.top_k == 1

    def out_of_time(self, now: float) -> bool:
        """The request's time is up (``now`` from ``time.perf_counter()``): stop as at max_tokens."""
        return self.deadline is not None and now >= self.deadline


@dataclass(slots=True)
class GenerationRequest:
    prompt: str | list[int]  # rendered text (special tokens parsed) or token ids
    params: SamplingParams
    request_id: str = ""


@dataclass(slots=True)
class Token:
    """One generated token. ``text`` is what to emit now: it may be empty while an incomplete
    UTF-8 sequence or a possible stop sequence is held back, and it may carry held-back text."""

    id: int
    text: str


@dataclass(slots=True)
class Finished:
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # prompt tokens reused from the prefix cache
    prompt_ms: float = 0.0
    decode_ms: float = 0.0
    text: str = ""  # held-back text released at the end (never part of a stop sequence)


GenerationEvent = Token | Finished


@dataclass(slots=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


@dataclass(slots=True)
class Scores:
    logits: list[float]  # one per document, in order; higher is more relevant
    prompt_tokens: int


class Engine(ABC):
    """Common part of every engine: lifecycle, capabilities, info."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    supports_grammar: ClassVar[bool] = False
    supports_vision: ClassVar[bool] = False
    Options: ClassVar[type[EngineOptions]] = EngineOptions
    # The load phase (LOADING or CONVERTING): set during ``start`` (by its load thread too: one
    # attribute store), read by the worker's ``/health`` on the event loop.
    phase: str = LOADING

    def __init__(self, spec: EngineSpec):
        self.spec = spec
        try:
            self.options = self.Options.model_validate(spec.options)
        except ValidationError as exc:
            details = "; ".join(
                f"options.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"engine {self.name!r}: {details}") from exc

    @abstractmethod
    async def start(self) -> None:
        """Load the model. Called once, before any request. Work that converts the weights runs
        inside ``converting()``."""

    @contextmanager
    def converting(self) -> Iterator[None]:
        """The phase is CONVERTING inside, LOADING again after."""
        self.phase = CONVERTING
        try:
            yield
        finally:
            self.phase = LOADING

    async def close(self) -> None:
        """Release the model. Called once, after the last request."""

    def info(self) -> dict[str, Any]:
        """Engine facts for the worker's ``/info``: slots, cache, weights served, ..."""
        return {}


class GenerationEngine(Engine):
    kinds: ClassVar[frozenset[str]] = frozenset({"chat"})

    @property
    def context_length(self) -> int:
        return self.spec.context_length

    @abstractmethod
    def render_chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        """The prompt text for a chat, through the model's chat template."""

    @abstractmethod
    def tokenize(self, text: str) -> list[int]:
        """Token ids of a rendered prompt (special tokens parsed)."""

    @abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        """Stream one request: ``Token`` events, then one ``Finished``.

        Raises ``ContextLengthExceeded`` before the first event if the prompt plus
        ``max_tokens`` does not fit one sequence's context.
        """


class EmbeddingEngine(Engine):
    kinds: ClassVar[frozenset[str]] = frozenset({"embedding"})

    @property
    @abstractmethod
    def dimensions(self) -> int: ...

    @abstractmethod
    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """Normalised embeddings of ``texts``, in order."""


class RerankEngine(Engine):
    kinds: ClassVar[frozenset[str]] = frozenset({"rerank"})

    @abstractmethod
    async def score(self, query: str, documents: Sequence[str]) -> Scores:
        """The relevance logit of each (query, document) pair, in order."""
