"""Validity over many varied prompts against the real default model (issue 10's acceptance test).

50 requests, 8 at a time through the batching engine, a quarter of them streamed: forced tool
calls (named and ``required``) and ``json_schema`` answers must all parse and validate, and
``auto`` must give text or a valid call. Cut-off answers are closed by the server; how many
needed it is reported (``closed``), and a ``length`` finish counts as a failure. A larger sweep
(200 requests, more sampling variety) is marked ``slow``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import jsonschema
import openai
import pytest
from cases import PARAMETERS, SCHEMAS, Case, cases
from gateway import Gateway

MODEL = "smollm2:135m"
CONCURRENCY = 8
FORMATS = jsonschema.FormatChecker(["date"])


@dataclass
class Outcome:
    case: Case
    ok: bool
    closed: bool
    detail: str


def _validate(case: Case, content: str | None, calls: list[tuple[str, str]], finish: str | None) -> str:
    """An empty string if the answer is valid for its case, else what is wrong."""
    try:
        if case.kind == "json":
            if finish != "stop":
                return f"finish_reason {finish}"
            jsonschema.validate(json.loads(content or ""), SCHEMAS[case.target], format_checker=FORMATS)
            return ""
        if case.kind == "call" or calls:
            if finish != "tool_calls" or not calls:
                return f"finish_reason {finish}, calls {calls}"
            for name, arguments in calls:
                jsonschema.validate(json.loads(arguments), PARAMETERS[name], format_checker=FORMATS)
            if case.kind == "call" and case.body["tool_choice"] != "required" and calls[0][0] != case.target:
                return f"called {calls[0][0]}, not {case.target}"
            return ""
        return "" if content and finish in ("stop", "length") else f"empty text ({finish})"
    except (ValueError, jsonschema.ValidationError) as exc:
        return f"{type(exc).__name__}: {exc}"[:300]


async def _run(client: openai.AsyncOpenAI, case: Case, stream: bool) -> Outcome:
    messages: Any = [{"role": "user", "content": case.prompt}]
    if not stream:
        resp = await client.chat.completions.create(model=MODEL, messages=messages, **case.body)
        choice = resp.choices[0]
        calls = [(c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]  # type: ignore[union-attr]
        closed = bool((choice.model_extra or {}).get("closed_by_server"))
        problem = _validate(case, choice.message.content, calls, choice.finish_reason)
        return Outcome(case, not problem, closed, problem)
    chunks = await client.chat.completions.create(model=MODEL, messages=messages, stream=True, **case.body)
    text: list[str] = []
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    finish, closed = None, False
    async for chunk in chunks:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        text.append(choice.delta.content or "")
        for tc in choice.delta.tool_calls or []:
            if tc.function and tc.function.name:
                names[tc.index] = tc.function.name
            arguments[tc.index] = arguments.get(tc.index, "") + (
                (tc.function and tc.function.arguments) or ""
            )
        if choice.finish_reason:
            finish = choice.finish_reason
            closed = bool((choice.model_extra or {}).get("closed_by_server"))
    calls = [(names[i], arguments.get(i, "")) for i in sorted(names)]
    problem = _validate(case, "".join(text) if not calls else None, calls, finish)
    return Outcome(case, not problem, closed, problem)


async def _sweep(url: str, n: int, seed: int) -> list[Outcome]:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=600)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int, case: Case) -> Outcome:
        async with gate:
            return await _run(client, case, stream=i % 4 == 3)

    try:
        return await asyncio.gather(*(one(i, c) for i, c in enumerate(cases(n, seed=seed))))
    finally:
        await client.close()


def _report(outcomes: list[Outcome]) -> str:
    kinds = Counter(o.case.kind for o in outcomes)
    valid = Counter(o.case.kind for o in outcomes if o.ok)
    closed = Counter(o.case.kind for o in outcomes if o.closed)
    return ", ".join(
        f"{kind}: {valid[kind]}/{kinds[kind]} valid ({closed[kind]} closed by the server)"
        for kind in sorted(kinds)
    )


def _check(outcomes: list[Outcome], capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\n[tools sweep] {len(outcomes)} requests: {_report(outcomes)}")
    failures = [
        f"{o.case.kind} {o.case.target!r} {o.case.prompt!r}: {o.detail}" for o in outcomes if not o.ok
    ]
    assert not failures, "\n".join(failures)


@pytest.mark.timeout(900)
def test_fifty_varied_prompts_all_valid(real_gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = asyncio.run(_sweep(real_gateway.url, 50, seed=0))
    assert Counter(o.case.kind for o in outcomes) == {"call": 25, "json": 20, "auto": 5}
    _check(outcomes, capsys)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_two_hundred_prompts_all_valid(real_gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    _check(asyncio.run(_sweep(real_gateway.url, 200, seed=1000)), capsys)
