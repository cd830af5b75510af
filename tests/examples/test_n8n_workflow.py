"""examples/n8n/model-management.json (seed 002's nodes) replayed against real gateways: the
memory policy on simulated GPUs with mock engines, the chat through the real default model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway import Gateway
from n8n_replay import Unsupported, evaluate, render, replay

WORKFLOW = json.loads((Path(__file__).parents[2] / "examples/n8n/model-management.json").read_text())
ALL_NODES = ["When clicking 'Execute workflow'", "Settings", "GPU Status", "Memory short?"]
AFTER = ["Load model", "Chat completion", "Process response", "Unload model"]


@pytest.fixture(scope="module")
def gpu_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = {
        "devices": [{"name": "gpu0", "total_mib": 1200}, {"name": "gpu1", "total_mib": 1200}],
        "memory": {"gpu_margin_mib": 0},
        "models": [
            {"id": "heavy", "engine": "mock", "options": {"vram_mib": 1000}},
            {"id": "chat", "engine": "mock", "options": {"vram_mib": 800, "tokens_per_second": 500}},
        ],
    }
    gw = Gateway(tmp_path_factory.mktemp("n8n"), config)
    yield gw
    gw.stop()


def model(gw: Gateway, name: str) -> dict[str, Any]:
    with gw.client() as http:
        return next(m for m in http.get("/models/status").json()["models"] if m["id"] == name)


def run_workflow(gw: Gateway, **settings: Any) -> Any:
    with gw.client() as http:
        assert http.post("/models/load", json={"model": "heavy"}).status_code == 200
        return replay(WORKFLOW, http, {"base_url": gw.url, **settings})


def test_memory_short_unloads_the_other_model_first(gpu_gateway: Gateway) -> None:
    run = run_workflow(gpu_gateway, model="chat", unload_model="heavy", required_mb=1500, service="mock")
    assert run.outputs["GPU Status"]["free_mb"] == 1400  # 2400 MiB of GPUs, heavy holds 1000
    assert run.decisions == {"Memory short?": True}
    assert run.order == [*ALL_NODES, "Unload other model", *AFTER]
    assert run.requests[1] == ("POST", f"{gpu_gateway.url}/models/unload", {"model": "heavy"})
    assert run.requests[2][2] == {"model": "chat", "service": "mock", "priority": 10}
    heavy = model(gpu_gateway, "heavy")
    assert heavy["state"] == "stopped" and heavy["unloads"] == {"manual": 1}  # the workflow's, not evicted
    loaded = run.outputs["Load model"]
    assert loaded["state"] == "ready" and loaded["service"] == "mock" and "note" not in loaded
    assert (
        run.outputs["Process response"]["answer"] and run.outputs["Process response"]["completion_tokens"] > 0
    )
    assert run.outputs["Unload model"]["state"] == "stopped"


def test_enough_memory_goes_straight_to_the_load(gpu_gateway: Gateway) -> None:
    run = run_workflow(gpu_gateway, model="chat", unload_model="heavy", required_mb=1000)
    assert run.outputs["GPU Status"]["free_mb"] == 1400
    assert run.decisions == {"Memory short?": False}
    assert run.order == [*ALL_NODES, *AFTER]
    assert model(gpu_gateway, "heavy")["state"] == "ready"  # chat went to the other GPU
    # the workflow's service is llama-cpp; this model's engine is mock: loaded, with a note
    assert "ignored" in run.outputs["Load model"]["note"]
    assert run.outputs["Load model"]["service"] == "mock"


def test_the_workflow_chats_with_the_real_default_model(real_gateway: Gateway) -> None:
    with real_gateway.client() as http:
        run = replay(WORKFLOW, http, {"base_url": real_gateway.url, "required_mb": 1})
    assert run.outputs["GPU Status"]["memory_device"] == "ram"  # no GPU here: RAM's figures
    assert run.decisions == {"Memory short?": False}
    assert run.order == [*ALL_NODES, *AFTER]
    loaded = run.outputs["Load model"]
    assert loaded["id"] == "smollm2:135m" and loaded["service"] == "llamacpp" and "note" not in loaded
    answer = run.outputs["Process response"]
    assert isinstance(answer["answer"], str) and answer["answer"].strip()
    assert 0 < answer["completion_tokens"] <= 32


def test_the_check_fails_loudly_when_free_mb_is_missing() -> None:
    """Seed 002's bug the other way round: an undefined free_mb is a type error, never 'not short'."""
    from n8n_replay import Run, condition

    params = next(n for n in WORKFLOW["nodes"] if n["name"] == "Memory short?")["parameters"]
    run = Run(outputs={"Settings": {"required_mb": 100}})
    assert condition(params, {"free_mb": 50}, run) is True
    with pytest.raises(TypeError, match="not a number"):
        condition(params, {"devices": [{"free_mib": 50}]}, run)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("={{ $json.a.b }}", 3),
        ("={{ $json.list[1]['k'] }}", "v"),
        ("={{ $('Settings').item.json.base_url }}/x", "http://h/x"),
        ('={"n": {{ $json.a.b }}, "s": "{{ $json.s }}"}', '{"n": 3, "s": "t"}'),
        ("plain", "plain"),
    ],
)
def test_expressions(template: str, expected: Any) -> None:
    from n8n_replay import Run

    run = Run(outputs={"Settings": {"base_url": "http://h"}})
    assert render(template, {"a": {"b": 3}, "list": [{}, {"k": "v"}], "s": "t"}, run) == expected


def test_expressions_outside_the_subset_are_refused() -> None:
    from n8n_replay import Run

    with pytest.raises(Unsupported):
        evaluate("$json.a + 1", {"a": 1}, Run())
