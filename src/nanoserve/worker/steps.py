"""Runs a planned answer (``output.py``) through the engine, step by step.

Each step's prefill is tokenized into the prompt and reported as part of the answer (it counts
as completion tokens: the client receives it), then the engine samples under the step's grammar
with the step's token budget. A step that used up its tokens is followed by the next one, planned
from the text so far, until the answer is complete or the budget is spent. The tokens of one step
are the prompt of the next, so each step reuses the previous one's from the engine's prefix
cache. At the end the reader closes whatever the budget cut off, and one ``Finished`` sums up the
whole answer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from nanoserve.engines.base import Finished, GenerationEngine, GenerationRequest, Token
from nanoserve.worker.output import Answer, OutputEvent, OutputPlan, OutputReader, Step


@dataclass(slots=True)
class Update:
    """What one engine event (or prefill) adds to the answer."""

    events: list[OutputEvent]
    ids: list[int] = field(default_factory=list)  # token ids added after the prompt
    done: Finished | None = None  # the last update: the whole answer's figures
    answer: Answer | None = None


async def run_answer(
    engine: GenerationEngine, gen: GenerationRequest, plan: OutputPlan
) -> AsyncGenerator[Update, None]:
    def count(text: str) -> int:
        return len(engine.tokenize(text))

    reader = OutputReader(plan)
    prompt = list(gen.prompt) if isinstance(gen.prompt, list) else engine.tokenize(gen.prompt)
    budget = gen.params.max_tokens
    used = 0  # completion tokens so far: prefilled and sampled
    cached, prompt_ms, decode_ms = 0, 0.0, 0.0
    step: Step = plan.first_step(budget, count)
    engine_done: Finished | None = None
    deciding = plan.decide_first  # auto's first step: one token, whatever the answer will be
    while True:
        if step.prefill:
            ids = engine.tokenize(step.prefill)
            prompt += ids
            used += len(ids)
            yield Update(reader.feed(step.prefill), ids)
        if step.max_tokens < 1:
            break
        grammar = step.grammar.gbnf() if step.grammar is not None else None
        params = replace(gen.params, max_tokens=step.max_tokens, grammar=grammar)
        request = GenerationRequest(prompt=list(prompt), params=params, request_id=gen.request_id)
        engine_done = None
        async with aclosing(engine.generate(request)) as stream:  # type: ignore[type-var]
            async for event in stream:
                if isinstance(event, Token):
                    prompt.append(event.id)
                    used += 1
                    yield Update(reader.feed(event.text), [event.id])
                else:
                    engine_done = event
                    if event.text:
                        yield Update(reader.feed(event.text))
        assert engine_done is not None
        if not cached and not prompt_ms:
            cached = engine_done.cached_tokens
        prompt_ms += engine_done.prompt_ms
        decode_ms += engine_done.decode_ms
        if engine_done.finish_reason == "length" and budget > used and (deciding or not reader.free_text):
            deciding = False
            step = plan.next_step(reader.text, reader.mode, budget - used, count)
            continue
        break
    if engine_done is None:  # nothing was sampled: the prefill completed the answer, or no budget
        complete = step.complete
        reason = "stop" if complete else "length"
    else:
        # end-of-generation is only allowed once the grammar is complete; a stop sequence is not
        complete = engine_done.finish_reason == "stop" and not gen.params.stop
        reason = engine_done.finish_reason
    last, answer = reader.finish(reason, complete=complete)
    if answer.closing:
        used += count(answer.closing)
    done = Finished(
        finish_reason=answer.finish_reason,  # type: ignore[arg-type]
        prompt_tokens=len(gen.prompt),
        completion_tokens=used,
        cached_tokens=cached,
        prompt_ms=prompt_ms,
        decode_ms=decode_ms,
    )
    yield Update(last, done=done, answer=answer)
