"""Answers run in steps against a scripted engine: one token per character, a fixed answer text.

The engine writes a given answer, continuing wherever the prompt leaves off (so prefills and
earlier steps are honoured as the real engine's prefix does), and stops at ``max_tokens``. That
makes the budget arithmetic exact: prefills count, re-planned steps continue the text, and the
closing always fits ``max_tokens``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import jsonschema
import pytest

from nanoserve.engines.base import (
    EngineSpec,
    Finished,
    GenerationEngine,
    GenerationEvent,
    GenerationRequest,
    SamplingParams,
    Token,
)
from nanoserve.errors import BadRequest
from nanoserve.wire.protocol import ChatCompletionRequest, ResponseFormat
from nanoserve.worker.output import OutputPlan, plan_output
from nanoserve.worker.serving import GenerationService
from nanoserve.worker.steps import Update, run_answer
from nanoserve.worker.structured import Bounds
from nanoserve.worker.tools import TOOL_FORMATS, parse_tools

PROMPT = "Q?"


class ScriptedEngine(GenerationEngine):
    name = "scripted"
    supports_grammar = True

    def __init__(self, answer: str):
        super().__init__(EngineSpec(name="scripted", path=None))
        self.answer = answer
        self.requests: list[GenerationRequest] = []

    async def start(self) -> None:
        pass

    def render_chat(self, messages: Sequence[dict[str, Any]], **_: Any) -> str:
        raise NotImplementedError

    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        self.requests.append(request)
        assert isinstance(request.prompt, list)
        written = "".join(map(chr, request.prompt))[len(PROMPT) :]
        assert self.answer.startswith(written), (written, self.answer)
        rest = self.answer[len(written) :][: request.params.max_tokens]
        for ch in rest:
            yield Token(ord(ch), ch)
        reason = "length" if len(rest) == request.params.max_tokens else "stop"
        yield Finished(reason, len(request.prompt), len(rest))  # type: ignore[arg-type]


TOOLS = parse_tools(
    [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {
                    "type": "object",
                    "properties": {"q": {"type": "string", "maxLength": 400}},
                    "required": ["q"],
                },
            },
        }
    ]
)
STORY = {
    "type": "object",
    "properties": {"story": {"type": "string", "maxLength": 400}},
    "required": ["story"],
}


def plan(fmt: ResponseFormat | None, choice: str = "none") -> OutputPlan:
    tools = TOOLS if choice != "none" else []
    return plan_output(
        fmt,
        tools,
        choice,
        fmt=TOOL_FORMATS["hermes"],
        can_constrain=True,
        parallel_calls=None,
        bounds=Bounds(),
    )


async def run(engine: ScriptedEngine, p: OutputPlan, budget: int) -> list[Update]:
    gen = GenerationRequest(prompt=engine.tokenize(PROMPT), params=SamplingParams(max_tokens=budget))
    p.check(budget, lambda t: len(engine.tokenize(t)))
    return [u async for u in run_answer(engine, gen, p)]


def _text(updates: list[Update]) -> str:
    return "".join(e for u in updates for e in u.events if isinstance(e, str))


async def test_a_short_answer_takes_one_step_after_the_prefill() -> None:
    answer = '{"story": "Once."}'
    engine = ScriptedEngine(answer)
    updates = await run(engine, plan(ResponseFormat(type="json_schema", json_schema={"schema": STORY})), 100)
    assert len(engine.requests) == 1
    assert engine.requests[0].prompt[-len('{"story": "') :] == engine.tokenize('{"story": "')  # prefilled
    done = updates[-1].done
    assert done is not None and done.finish_reason == "stop" and done.completion_tokens == len(answer)
    assert _text(updates) == answer and updates[-1].answer is not None and updates[-1].answer.closing == ""


@pytest.mark.parametrize("budget", [30, 45, 80])
async def test_a_looping_answer_is_closed_within_the_budget(budget: int) -> None:
    engine = ScriptedEngine('{"story": "' + "la " * 200)  # never ends on its own
    updates = await run(
        engine, plan(ResponseFormat(type="json_schema", json_schema={"schema": STORY})), budget
    )
    done, answer = updates[-1].done, updates[-1].answer
    assert done is not None and answer is not None
    assert done.finish_reason == "stop" and answer.closing == '"}'
    jsonschema.validate(json.loads(_text(updates)), STORY)
    # re-planned steps shrink the reserve to what can still follow: nearly every token is used
    assert budget - 3 <= done.completion_tokens <= budget


async def test_auto_text_decides_then_runs_free() -> None:
    engine = ScriptedEngine("Hello there, how can I help you today?")
    updates = await run(engine, plan(None, "auto"), 80)
    assert [r.params.max_tokens for r in engine.requests] == [1, 79]
    assert engine.requests[0].params.grammar is not None and engine.requests[1].params.grammar is None
    assert _text(updates) == engine.answer
    done = updates[-1].done
    assert done is not None and done.finish_reason == "stop"


async def test_auto_text_cut_by_the_budget_is_length() -> None:
    engine = ScriptedEngine("word " * 100)
    updates = await run(engine, plan(None, "auto"), 120)
    done = updates[-1].done
    assert done is not None and done.finish_reason == "length" and len(_text(updates)) == 120


async def test_auto_call_prefills_the_head_and_name() -> None:
    call = '<tool_call>\n{"name": "lookup", "arguments": {"q": "cats"}}\n</tool_call>'
    engine = ScriptedEngine(call)
    updates = await run(engine, plan(None, "auto"), 120)
    assert len(engine.requests) == 2
    second = "".join(map(chr, engine.requests[1].prompt))
    assert second.endswith('<tool_call>\n{"name": "lookup", "arguments": {"q": "')
    answer = updates[-1].answer
    assert answer is not None and answer.finish_reason == "tool_calls"
    assert [(c.name, json.loads(c.arguments)) for c in answer.tool_calls] == [("lookup", {"q": "cats"})]
    done = updates[-1].done
    assert done is not None and done.completion_tokens == len(call)


async def test_forced_call_that_loops_is_closed_within_the_budget() -> None:
    engine = ScriptedEngine('<tool_call>\n{"name": "lookup", "arguments": {"q": "' + "x" * 300)
    updates = await run(engine, plan(None, "lookup"), 100)
    answer, done = updates[-1].answer, updates[-1].done
    assert answer is not None and done is not None
    assert answer.finish_reason == "tool_calls" and answer.closing == '"}}\n</tool_call>'
    assert json.loads(answer.tool_calls[0].arguments)["q"].startswith("xxx")
    assert 97 <= done.completion_tokens <= 100


async def test_replanning_frees_the_reserve_of_paths_not_taken() -> None:
    expensive = {
        "type": "function",
        "function": {
            "name": "a_function_with_a_long_name_and_many_arguments",
            "parameters": {
                "type": "object",
                "properties": {f"argument_number_{i}": {"type": "string"} for i in range(6)},
                "required": [f"argument_number_{i}" for i in range(6)],
            },
        },
    }
    tools = parse_tools([TOOLS[0].model_dump(), expensive])
    p = plan_output(
        None,
        tools,
        "required",
        fmt=TOOL_FORMATS["hermes"],
        can_constrain=True,
        parallel_calls=None,
        bounds=Bounds(),
    )
    engine = ScriptedEngine('<tool_call>\n{"name": "lookup", "arguments": {"q": "' + "x" * 400)
    updates = await run(engine, p, 300)
    first = engine.requests[0].params.max_tokens
    assert len(engine.requests) >= 2 and first < 300 - 150  # the first step kept room for the long call
    done = updates[-1].done
    assert done is not None and 297 <= done.completion_tokens <= 300  # later steps gave it back


def test_ignore_eos_is_refused_with_a_grammar() -> None:
    req = ChatCompletionRequest(
        model="m",
        messages=[{"role": "user", "content": "x"}],
        response_format={"type": "json_object"},
        ignore_eos=True,
    )
    with pytest.raises(BadRequest) as info:
        GenerationService(ScriptedEngine("")).prepare_chat(req)
    assert info.value.param == "ignore_eos"
