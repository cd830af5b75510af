"""``LlamaCppEngine``: GGUF chat models through llama.cpp, many sequences decoded together.

The engine glues the parts together: ``convert`` picks (and if needed makes) the served weights,
``native`` loads them, ``chat`` renders prompts, ``sampling`` builds each request's sampler and
``scheduler`` runs the decode thread. ``generate`` is the event loop's side of a request: it
validates, submits, then yields the events the decode thread hands back once per step. Closing
the generator early (the client went away) cancels the request and frees its slot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from nanoserve.config import default_data_dir
from nanoserve.engines.base import EngineSpec, Finished, GenerationEngine, GenerationEvent, GenerationRequest
from nanoserve.engines.llamacpp.chat import CHATML_TEMPLATE, ChatTemplate
from nanoserve.engines.llamacpp.convert import ensure_served_weights
from nanoserve.engines.llamacpp.native import ContextConfig, LlamaModel
from nanoserve.engines.llamacpp.sampling import Sampler
from nanoserve.engines.llamacpp.scheduler import Job, Outcome, Scheduler, SchedulerConfig
from nanoserve.engines.llamacpp.stats import EngineStats
from nanoserve.errors import BadRequest, ConfigError, ContextLengthExceeded, NanoserveError, Unavailable
from nanoserve.profiles.llamacpp import PROFILE, LlamaCppOptions, file_type_name

log = logging.getLogger(__name__)

# Prompts longer than this (characters) are tokenized off the event loop.
_INLINE_TOKENIZE_CHARS = 16_384


class _Inbox:
    """What the decode thread handed over for one request, on the event loop's side: a list and
    at most one waiter (an ``asyncio.Queue`` does more per token than this needs)."""

    __slots__ = ("_items", "_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._items: list[Outcome] = []
        self._waiter: asyncio.Future[None] | None = None

    def put(self, outcomes: list[Outcome]) -> None:
        self._items += outcomes
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> list[Outcome]:
        while not self._items:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items, self._items = self._items, []
        return items


class LlamaCppEngine(GenerationEngine):
    name = PROFILE.name
    kinds = PROFILE.kinds
    supports_grammar = PROFILE.capabilities.grammar
    supports_vision = PROFILE.capabilities.vision
    Options = LlamaCppOptions
    options: LlamaCppOptions

    def __init__(self, spec: EngineSpec):
        super().__init__(spec)
        self._model: LlamaModel | None = None
        self._scheduler: Scheduler | None = None
        self._template: ChatTemplate | None = None
        self._weights: Path | None = None
        self._stats = EngineStats()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.spec.path is None:
            raise ConfigError(f"model {self.spec.name!r}: the llamacpp engine needs a GGUF file (source)")
        await asyncio.to_thread(self._load, self.spec.path)

    def _load(self, source: Path) -> None:
        spec, options = self.spec, self.options
        data_dir = spec.data_dir or default_data_dir()
        self._weights = ensure_served_weights(
            source, options.quantize, data_dir, threads=spec.threads, converting=self.converting
        )
        n_batch = max(options.n_batch, spec.parallel)
        model = LlamaModel(
            self._weights,
            ContextConfig(
                n_ctx=spec.parallel * spec.context_length,
                n_seq=spec.parallel,
                n_batch=n_batch,
                threads=spec.threads,
                kv_unified=options.kv_unified,
                flash_attn=options.flash_attn,
                use_mmap=options.use_mmap,
                kv_type=options.kv_cache_type,
                n_gpu_layers=options.n_gpu_layers,
                main_gpu=options.main_gpu,
                tensor_split=tuple(options.tensor_split or ()),
            ),
        )
        try:
            if model.n_ctx_seq < spec.context_length:
                raise ConfigError(
                    f"model {spec.name!r}: llama.cpp gave {model.n_ctx_seq} tokens per sequence, "
                    f"{spec.context_length} configured"
                )
            self._template = ChatTemplate(
                spec.chat_template or model.chat_template() or CHATML_TEMPLATE,
                bos_token=model.bos_text,
                eos_token=model.eos_text,
            )
            config = SchedulerConfig(
                n_batch=n_batch,
                prefill_chunk=options.prefill_chunk,
                prefill_budget=options.prefill_budget,
                prefix_cache=options.prefix_cache,
                prefix_copy_min=options.prefix_copy_min,
            )
            scheduler = Scheduler(model, spec.parallel, config, self._stats)
            scheduler.start()
        except BaseException:
            model.close()
            raise
        self._model, self._scheduler = model, scheduler
        log.info(
            "%s ready: %s (%s), %d slots x %d tokens, %d threads",
            spec.name,
            self._weights.name,
            file_type_name(model.ftype()),
            spec.parallel,
            spec.context_length,
            spec.threads,
        )

    async def close(self) -> None:
        scheduler, model = self._scheduler, self._model
        self._scheduler = self._model = None
        if scheduler is not None:
            await asyncio.to_thread(scheduler.stop)
        if model is not None:
            model.close()

    def _ready(self) -> tuple[LlamaModel, Scheduler, ChatTemplate]:
        if self._model is None or self._scheduler is None or self._template is None:
            raise Unavailable(f"model {self.spec.name!r} is not loaded")
        return self._model, self._scheduler, self._template

    # -- prompts ---------------------------------------------------------------------------

    def render_chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        _, _, template = self._ready()
        return template.render(messages, tools=tools, add_generation_prompt=add_generation_prompt)

    def tokenize(self, text: str) -> list[int]:
        model, _, _ = self._ready()
        return model.tokenize(text)

    async def _prompt_tokens(self, model: LlamaModel, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, str):
            if len(prompt) <= _INLINE_TOKENIZE_CHARS:
                return model.tokenize(prompt)
            return await asyncio.to_thread(model.tokenize, prompt)
        tokens = list(prompt)
        if any(not 0 <= t < model.n_vocab for t in tokens):
            raise BadRequest(f"prompt token ids must be in [0, {model.n_vocab})", param="prompt")
        return tokens

    # -- generation ------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        model, scheduler, _ = self._ready()
        params = request.params
        prompt = await self._prompt_tokens(model, request.prompt)
        if not prompt:
            raise BadRequest("the prompt is empty", param="prompt")
        if params.max_tokens < 1:
            raise BadRequest("max_tokens must be at least 1", param="max_tokens")
        if len(prompt) + params.max_tokens > self.context_length:
            raise ContextLengthExceeded(len(prompt), params.max_tokens, self.context_length)

        loop = asyncio.get_running_loop()
        inbox = _Inbox(loop)
        sampler = Sampler(model, params, penalty_last_n=self.options.penalty_last_n)
        job = Job(prompt, params, sampler, loop, inbox.put)
        try:
            scheduler.submit(job)
        except NanoserveError:
            sampler.close()
            raise
        done = False
        try:
            while True:
                for outcome in await inbox.get():
                    if isinstance(outcome, NanoserveError):
                        done = True
                        raise outcome
                    if isinstance(outcome, Finished):
                        done = True
                    yield outcome
                    if done:
                        return
        finally:
            if not done:  # the consumer left early: free the slot now
                scheduler.cancel(job)

    # -- facts -----------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        spec, options = self.spec, self.options
        info: dict[str, Any] = {
            "engine": self.name,
            "slots": {"total": spec.parallel, "busy": 0, "queued": 0},
            "context_length": spec.context_length,
            "options": options.model_dump(),
            "stats": self._stats.snapshot(),
        }
        model, scheduler = self._model, self._scheduler
        if model is None or scheduler is None:
            return info
        busy, queued = scheduler.busy_slots, scheduler.queued
        info["slots"] = {"total": spec.parallel, "busy": busy, "queued": queued}
        info["stats"].update(slots_total=spec.parallel, slots_busy=busy, requests_queued=queued)
        info["weights"] = {
            "path": str(model.path),
            "source": str(spec.path),
            "quantization": file_type_name(model.ftype()),
            "size_bytes": model.size_bytes(),
            "description": model.description(),
        }
        info["n_ctx"] = model.n_ctx
        info["n_ctx_seq"] = model.n_ctx_seq
        info["prefix_cache"] = {
            "enabled": options.prefix_cache,
            "hits": self._stats.prefix_hits,
            "hit_tokens": self._stats.cached_tokens,
        }
        return info
