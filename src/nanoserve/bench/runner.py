"""Drive a benchmark: check the target once, then one run per concurrency of the sweep.

A run sends ``num_prompts`` requests whose arrival times follow ``request_rate`` (all at once for
``inf``, a Poisson process otherwise); at most ``max_concurrency`` of them are in flight, the
rest wait in the client, as in ``vllm bench serve``. Each run draws its own prompts from the seed
and its concurrency, so a sweep never replays a prompt (a server's prefix cache would flatter the
later runs) and ``--max-concurrency 4`` alone replays exactly the ``4`` of a sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from nanoserve.bench.client import PATHS, Endpoint, RequestOptions, normalize_base_url, send
from nanoserve.bench.metrics import (
    DEFAULT_PERCENTILES,
    EmbeddingMetrics,
    GenerationMetrics,
    RequestResult,
    embedding_metrics,
    generation_metrics,
)
from nanoserve.bench.workload import Prompt, arrival_offsets, derive_seed, make_prompts, random_text
from nanoserve.errors import BadRequest, ModelNotFound, NanoserveError, Unavailable


@dataclass(frozen=True, slots=True)
class BenchConfig:
    base_url: str
    model: str
    endpoint: Endpoint = "chat"
    num_prompts: int = 100
    concurrencies: tuple[int | None, ...] = (None,)  # None = no client-side limit
    request_rate: float = math.inf
    input_len: int = 128
    output_len: int = 128
    batch_size: int = 1  # embeddings: texts per request
    ignore_eos: bool = False
    temperature: float | None = None
    slos: Mapping[str, float] = field(default_factory=dict)  # goodput SLOs in ms
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    seed: int = 0
    api_key: str | None = None
    request_timeout: float = 600.0  # seconds without a byte before a request fails

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", normalize_base_url(self.base_url))
        if self.num_prompts < 1:
            raise ValueError("num_prompts must be >= 1")
        if any(c is not None and c < 1 for c in self.concurrencies) or not self.concurrencies:
            raise ValueError("concurrencies must be positive")

    @property
    def generation(self) -> bool:
        return self.endpoint != "embeddings"

    @property
    def url(self) -> str:
        return self.base_url + PATHS[self.endpoint]

    def request_options(self) -> RequestOptions:
        return RequestOptions(
            endpoint=self.endpoint,
            model=self.model,
            ignore_eos=self.ignore_eos,
            temperature=self.temperature,
            api_key=self.api_key,
        )

    def prompts(self, concurrency: int | None) -> list[Prompt]:
        return make_prompts(
            self.num_prompts,
            input_len=self.input_len,
            output_len=0 if not self.generation else self.output_len,
            seed=derive_seed(self.seed, "prompts", concurrency),
            batch_size=self.batch_size if not self.generation else 1,
        )

    def check_prompt(self) -> Prompt:
        """A short request of the run's shape, from its own seed (it warms no run's prompts)."""
        text = random_text(random.Random(derive_seed(self.seed, "check")), 8)
        if self.generation:
            return Prompt(texts=(text,), approx_tokens=8, max_tokens=4)
        return Prompt(texts=(text,) * self.batch_size, approx_tokens=8 * self.batch_size, max_tokens=0)


@dataclass(frozen=True, slots=True)
class RunResult:
    """One concurrency of a sweep."""

    max_concurrency: int | None
    metrics: GenerationMetrics | EmbeddingMetrics
    requests: list[RequestResult]

    @property
    def errors(self) -> Counter[str]:
        return Counter(r.error for r in self.requests if r.error)

    @property
    def usage_reported(self) -> bool:
        return all(r.usage_reported for r in self.requests if r.success)


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


ProgressFactory = Callable[[str, int], Progress]  # (description, total) -> bar


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _no_progress(description: str, total: int) -> Progress:
    return _NoProgress()


def probe_error(config: BenchConfig, result: RequestResult) -> NanoserveError:
    """The user-facing error for a failed check request (pure, so it is tested by table)."""
    where = config.url
    if result.status is None:
        return Unavailable(f"cannot reach {where}: {result.error}")
    if result.status == 404 and ("model" in result.error.lower() or config.model in result.error):
        return ModelNotFound(config.model)
    if result.status in (401, 403):
        return BadRequest(f"{where} refused the request ({result.error}); is --api-key right?")
    if result.status == 404:
        return BadRequest(f"{where} does not exist ({result.error}); is --base-url right?")
    if 400 <= result.status < 500:
        return BadRequest(f"{where} rejected the request: {result.error}")
    if result.status != 200:
        return Unavailable(f"{where} failed: {result.error}")
    return BadRequest(f"{where} answered but {result.error or 'the request failed'}")


class BenchRunner:
    def __init__(
        self,
        config: BenchConfig,
        *,
        progress: ProgressFactory = _no_progress,
        on_run: Callable[[RunResult], None] | None = None,
    ):
        self.config = config
        self._progress = progress
        self._on_run = on_run
        self._options = config.request_options()

    def _client(self) -> httpx.AsyncClient:
        limits = [c for c in self.config.concurrencies if c is not None]
        connections = (
            max(limits) if len(limits) == len(self.config.concurrencies) else self.config.num_prompts
        )
        return httpx.AsyncClient(
            base_url=self.config.base_url,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            timeout=httpx.Timeout(self.config.request_timeout, connect=10.0, pool=None),
        )

    async def run(self) -> list[RunResult]:
        """Check the target, then run every concurrency of the sweep in order."""
        async with self._client() as client:
            await self.check(client)
            runs = []
            for concurrency in self.config.concurrencies:
                run = await self.run_one(client, concurrency)
                if self._on_run is not None:
                    self._on_run(run)
                runs.append(run)
            return runs

    async def check(self, client: httpx.AsyncClient) -> RequestResult:
        """One small request before timing anything: fails fast on a wrong URL, model or key, and
        leaves the model loaded (a gateway that loads on first request would otherwise charge the
        cold start to the first run)."""
        prompt = self.config.check_prompt()
        result = await send(client, self._options, prompt)
        if not result.success:
            raise probe_error(self.config, result)
        return result

    async def run_one(self, client: httpx.AsyncClient, concurrency: int | None) -> RunResult:
        config = self.config
        prompts = config.prompts(concurrency)
        offsets = arrival_offsets(
            len(prompts), config.request_rate, derive_seed(config.seed, "arrivals", concurrency)
        )
        limit: AbstractAsyncContextManager[object] = (
            asyncio.Semaphore(concurrency) if concurrency else contextlib.nullcontext()
        )
        bar = self._progress(f"concurrency {concurrency or 'unlimited'}", len(prompts))
        start = time.perf_counter()

        async def one(prompt: Prompt, offset: float) -> RequestResult:
            delay = start + offset - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            async with limit:
                result = await send(client, self._options, prompt)
            bar.update(1)
            return result

        try:
            results = list(await asyncio.gather(*(one(p, o) for p, o in zip(prompts, offsets))))
        finally:
            bar.close()
        duration = time.perf_counter() - start
        metrics: GenerationMetrics | EmbeddingMetrics
        if config.generation:
            metrics = generation_metrics(
                results, duration, slos=config.slos or None, percentiles=config.percentiles
            )
        else:
            metrics = embedding_metrics(results, duration, percentiles=config.percentiles)
        return RunResult(max_concurrency=concurrency, metrics=metrics, requests=results)
