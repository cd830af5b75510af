"""Per-sequence token choice: a greedy fast path, or a llama.cpp sampler chain.

Greedy requests without penalties or a grammar take the fast path: the decode thread reads the
logits row through a numpy view and takes its argmax (EOG tokens masked when ``ignore_eos``).
Everything else gets its own chain, in llama.cpp's usual order::

    logit_bias(EOG = -inf, if ignore_eos) -> penalties -> grammar -> top_k -> top_p -> min_p
    -> temperature -> dist(seed)            (or -> greedy, for temperature 0)

The chain is built on the event loop's side of ``generate`` so a bad grammar is refused before
the request starts; ``llama_sampler_sample`` then applies it and accepts the chosen token (which
advances the grammar and the penalty window).
"""

from __future__ import annotations

import math

import llama_cpp

from nanoserve.engines.base import SamplingParams
from nanoserve.engines.llamacpp.native import LlamaModel
from nanoserve.errors import BadRequest


def _needs_chain(params: SamplingParams) -> bool:
    return not params.greedy or bool(params.grammar) or _has_penalties(params)


def _has_penalties(params: SamplingParams) -> bool:
    return params.repeat_penalty != 1.0 or params.presence_penalty != 0.0 or params.frequency_penalty != 0.0


class Sampler:
    """How one sequence picks its tokens. ``chain`` is None on the greedy fast path."""

    __slots__ = ("chain", "ignore_eos")

    def __init__(self, model: LlamaModel, params: SamplingParams, *, penalty_last_n: int = 64):
        self.ignore_eos = params.ignore_eos
        self.chain: llama_cpp.llama_sampler_p | None = None
        if not _needs_chain(params):
            return
        chain_params = llama_cpp.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self.chain = llama_cpp.llama_sampler_chain_init(chain_params)
        try:
            self._build(model, params, penalty_last_n)
        except BaseException:
            self.close()
            raise

    def _add(self, sampler: llama_cpp.llama_sampler_p | None) -> None:
        if not sampler:
            raise BadRequest("could not create a sampler for these parameters")
        llama_cpp.llama_sampler_chain_add(self.chain, sampler)

    def _build(self, model: LlamaModel, params: SamplingParams, penalty_last_n: int) -> None:
        if params.ignore_eos and len(model.eog):
            biases = (llama_cpp.llama_logit_bias * len(model.eog))(
                *(llama_cpp.llama_logit_bias(int(t), -math.inf) for t in model.eog)
            )
            self._add(llama_cpp.llama_sampler_init_logit_bias(model.n_vocab, len(biases), biases))
        if _has_penalties(params):
            self._add(
                llama_cpp.llama_sampler_init_penalties(
                    model.n_vocab,
                    penalty_last_n,
                    params.repeat_penalty,
                    params.frequency_penalty,
                    params.presence_penalty,
                )
            )
        if params.grammar:
            grammar = llama_cpp.llama_sampler_init_grammar(model.vocab, params.grammar.encode(), b"root")
            if not grammar:
                raise BadRequest(
                    "the grammar does not parse (GBNF with a 'root' rule expected)", param="grammar"
                )
            llama_cpp.llama_sampler_chain_add(self.chain, grammar)
        if params.greedy:
            self._add(llama_cpp.llama_sampler_init_greedy())
            return
        if params.top_k > 0:
            self._add(llama_cpp.llama_sampler_init_top_k(params.top_k))
        if params.top_p < 1.0:
            self._add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            self._add(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
        self._add(llama_cpp.llama_sampler_init_temp(params.temperature))
        seed = llama_cpp.LLAMA_DEFAULT_SEED if params.seed is None else params.seed & 0xFFFFFFFF
        self._add(llama_cpp.llama_sampler_init_dist(seed))

    def sample(self, ctx: llama_cpp.llama_context_p, batch_index: int) -> int:
        """Choose and accept a token from the logits of batch position ``batch_index``."""
        return int(llama_cpp.llama_sampler_sample(self.chain, ctx, batch_index))

    def close(self) -> None:
        if self.chain:
            llama_cpp.llama_sampler_free(self.chain)
            self.chain = None

    def __del__(self) -> None:  # a safety net; the scheduler closes samplers explicitly
        self.close()
