"""The Ollama API end to end with the official ``ollama`` client: real gateway, mock-engine workers.

The mock engine's tokenizer counts words and its text is a deterministic function of the prompt
and seed, so counts, templates, stops and seeds can be checked exactly without a real model.
"""

from __future__ import annotations

import json
import math
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import ollama
import openai
import pytest
from gateway import Gateway, pid_alive, wait_until

CONFIG = {
    "models": [
        {
            "id": "mock-chat",
            "aliases": ["mc"],
            "engine": "mock",
            "kind": "chat",
            "context_length": 512,
            "options": {"tokens_per_second": 500},
        },
        {"id": "mock-embed", "engine": "mock-embedding", "kind": "embedding"},
        {"id": "slow:1b", "engine": "mock", "options": {"tokens_per_second": 20}},
        {"id": "forever", "engine": "mock", "keep_alive": -1},
    ]
}
WORDS = "one two three four five"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("ollama"), CONFIG)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> ollama.Client:
    return ollama.Client(host=gateway.url, timeout=60)


def running(client: ollama.Client) -> set[str]:
    return {m.model for m in client.ps().models if m.model}


# -- models ---------------------------------------------------------------------------------
def test_list_names_every_model_with_a_tag(client: ollama.Client) -> None:
    models = {m.model: m for m in client.list().models}
    assert set(models) == {"mock-chat:latest", "mock-embed:latest", "slow:1b", "forever:latest"}
    chat = models["mock-chat:latest"]
    assert chat.details is not None and chat.details.family == "mock"
    assert chat.digest and len(chat.digest) == 64
    assert chat.modified_at is not None
    assert models["mock-embed:latest"].digest != chat.digest


def test_show_by_alias_and_latest_tag(client: ollama.Client) -> None:
    shown = client.show("mc:latest")
    assert shown.capabilities == ["completion"]
    assert shown.parameters is not None and shown.parameters.split() == ["num_ctx", "512"]
    assert shown.details is not None and shown.details.family == "mock"
    assert shown.modelinfo == {}
    assert client.show("mock-embed").capabilities == ["embedding"]


def test_unknown_model_is_ollama_404(client: ollama.Client) -> None:
    for call in (
        lambda: client.show("nope"),
        lambda: client.generate("nope", "hi"),
        lambda: client.chat("nope", [{"role": "user", "content": "hi"}]),
        lambda: client.embed("nope", "hi"),
    ):
        with pytest.raises(ollama.ResponseError) as info:
            call()
        assert info.value.status_code == 404
        assert info.value.error == "model 'nope' not found"


# -- generate -------------------------------------------------------------------------------
def test_generate_streaming_equals_not_streaming(client: ollama.Client) -> None:
    options = {"num_predict": 6, "seed": 7}
    whole = client.generate("mock-chat", WORDS, options=options, stream=False)
    parts = list(client.generate("mock-chat", WORDS, options=options, stream=True))
    *tokens, last = parts
    assert all(not p.done for p in tokens) and last.done
    assert "".join(p.response or "" for p in tokens) == whole.response
    assert len(tokens) == whole.eval_count == last.eval_count == 6  # one line per token
    for final in (whole, last):
        assert final.done_reason == "length"
        assert final.prompt_eval_count == len(WORDS.split()) + 1  # "<|user|>one ... five\n<|assistant|>"
        assert final.total_duration and final.eval_duration and final.prompt_eval_duration is not None
        assert final.total_duration >= final.load_duration >= 0
        assert final.context and final.context[-6:] == list(range(6))  # the mock's token ids


def test_raw_skips_the_template_and_returns_no_context(client: ollama.Client) -> None:
    raw = client.generate("mock-chat", WORDS, raw=True, options={"num_predict": 2}, stream=False)
    assert raw.prompt_eval_count == len(WORDS.split())
    assert raw.context is None
    with pytest.raises(ollama.ResponseError) as info:
        client.generate("mock-chat", WORDS, raw=True, system="be brief")
    assert info.value.status_code == 400 and "raw mode" in info.value.error


def test_system_goes_through_the_template(client: ollama.Client) -> None:
    plain = client.generate("mock-chat", WORDS, options={"num_predict": 1}, stream=False)
    system = client.generate("mock-chat", WORDS, system="be brief", options={"num_predict": 1}, stream=False)
    assert system.prompt_eval_count == plain.prompt_eval_count + 2  # "<|system|>be brief\n"


def test_context_carries_the_conversation(client: ollama.Client) -> None:
    first = client.generate("mock-chat", WORDS, options={"num_predict": 3}, stream=False)
    assert first.context
    second = client.generate(
        "mock-chat", "six", context=first.context, options={"num_predict": 3}, stream=False
    )
    assert second.context is not None and second.context[: len(first.context)] == list(first.context)
    alone = client.generate("mock-chat", "six", options={"num_predict": 3}, stream=False)
    assert second.prompt_eval_count == len(first.context) + alone.prompt_eval_count


def test_seed_repeats_and_stop_stops(client: ollama.Client) -> None:
    options = {"num_predict": 12, "seed": 3, "temperature": 1.0}
    text = client.generate("mock-chat", WORDS, options=options, stream=False).response
    assert text == client.generate("mock-chat", WORDS, options=options, stream=False).response
    stop = text.split()[4]
    stopped = client.generate("mock-chat", WORDS, options={**options, "stop": [stop]}, stream=False)
    assert stopped.done_reason == "stop"
    assert stop not in stopped.response and text.startswith(stopped.response)


def test_error_before_the_first_token_keeps_its_status(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        list(client.generate("mock-chat", WORDS, options={"num_predict": 5000}, stream=True))
    assert info.value.status_code == 400 and "context length" in info.value.error


# -- chat -----------------------------------------------------------------------------------
def test_chat_streaming_and_not(client: ollama.Client) -> None:
    messages = [{"role": "system", "content": "short"}, {"role": "user", "content": WORDS}]
    whole = client.chat("mc", messages, options={"num_predict": 5, "seed": 1}, stream=False)
    assert whole.message.role == "assistant" and whole.done and whole.done_reason == "length"
    parts = list(client.chat("mc", messages, options={"num_predict": 5, "seed": 1}, stream=True))
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    assert parts[-1].done and parts[-1].eval_count == 5 == len(parts) - 1
    assert whole.prompt_eval_count == 1 + 5 + 1  # "<|system|>short\n<|user|>one ... five\n<|assistant|>"


def test_chat_history_reaches_the_model(client: ollama.Client) -> None:
    one = client.chat("mc", [{"role": "user", "content": "hi"}], options={"num_predict": 1}, stream=False)
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello there"},
        {"role": "user", "content": "again"},
    ]
    three = client.chat("mc", history, options={"num_predict": 1}, stream=False)
    assert three.prompt_eval_count == one.prompt_eval_count + 3  # "<|assistant|>hello there\n<|user|>again"


def test_error_mid_stream_is_an_error_line(gateway: Gateway) -> None:
    body = {
        "model": "slow:1b",
        "messages": [{"role": "user", "content": "x"}],
        "options": {"num_predict": 200},
    }
    lines = []
    with (
        httpx.Client(base_url=gateway.url, timeout=60) as http,
        http.stream("POST", "/api/chat", json=body) as resp,
    ):
        assert resp.headers["content-type"] == "application/x-ndjson"
        for line in resp.iter_lines():
            lines.append(json.loads(line))
            if len(lines) == 3:
                for pid in gateway.worker_pids():
                    os.kill(pid, signal.SIGKILL)
    assert all(not line.get("done") for line in lines[:-1])
    assert set(lines[-1]) == {"error"} and "not reachable" in lines[-1]["error"]


# -- embeddings -----------------------------------------------------------------------------
def test_embed_batch_and_dimensions(client: ollama.Client) -> None:
    full = client.embed("mock-embed", ["a b", "c"])
    assert len(full.embeddings) == 2 and {len(v) for v in full.embeddings} == {384}
    assert full.prompt_eval_count == 3
    cut = client.embed("mock-embed", ["a b", "c"], dimensions=8)
    for short, long in zip(cut.embeddings, full.embeddings):
        assert len(short) == 8 and math.isclose(math.hypot(*short), 1.0, rel_tol=1e-6)
        scale = short[0] / long[0]
        assert all(math.isclose(s, v * scale, rel_tol=1e-6) for s, v in zip(short, long[:8]))


def test_old_embeddings_endpoint(client: ollama.Client) -> None:
    old = client.embeddings("mock-embed", "a b")
    assert list(old.embedding) == pytest.approx(client.embed("mock-embed", "a b").embeddings[0])


# -- lifecycle ------------------------------------------------------------------------------
def test_empty_generate_loads_and_keep_alive_0_unloads(client: ollama.Client) -> None:
    unloaded = client.generate("mock-chat", "", keep_alive=0)
    assert unloaded.done and unloaded.done_reason == "unload"
    assert "mock-chat:latest" not in running(client)
    loaded = client.generate("mock-chat", "")
    assert loaded.done and loaded.done_reason == "load"
    assert "mock-chat:latest" in running(client)


@pytest.mark.parametrize("stream", [False, True])
def test_keep_alive_0_unloads_after_the_request(client: ollama.Client, stream: bool) -> None:
    client.chat("mc", [{"role": "user", "content": "hi"}], options={"num_predict": 2})
    assert "mock-chat:latest" in running(client)
    reply = client.chat(
        "mc", [{"role": "user", "content": "hi"}], options={"num_predict": 2}, keep_alive=0, stream=stream
    )
    if stream:
        assert list(reply)[-1].done
    assert "mock-chat:latest" not in running(client)


def test_ps_shows_size_context_and_expiry(client: ollama.Client) -> None:
    client.chat("mc", [{"role": "user", "content": "hi"}], options={"num_predict": 1})
    client.generate("forever", "")
    models = {m.model: m for m in client.ps().models}
    now = datetime.now(UTC)
    chat = models["mock-chat:latest"]
    assert chat.context_length == 512 and chat.size_vram == 0 and chat.size is not None
    assert chat.expires_at is not None and now < chat.expires_at <= now + timedelta(minutes=5, seconds=5)
    forever = models["forever:latest"].expires_at
    assert forever is not None and forever > now + timedelta(days=365 * 100)


def test_keep_alive_duration_sets_expiry(client: ollama.Client) -> None:
    client.chat("mc", [{"role": "user", "content": "hi"}], options={"num_predict": 1}, keep_alive="1h")
    expires = {m.model: m.expires_at for m in client.ps().models}["mock-chat:latest"]
    assert expires is not None and expires > datetime.now(UTC) + timedelta(minutes=55)


def test_openai_routes_take_keep_alive_as_header_and_body(gateway: Gateway, client: ollama.Client) -> None:
    oai = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    chat = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    oai.chat.completions.create(**chat)
    assert "mock-chat:latest" in running(client)
    oai.chat.completions.create(**chat, extra_headers={"X-Keep-Alive": "0"})
    assert "mock-chat:latest" not in running(client)
    oai.embeddings.create(model="mock-embed", input="x", extra_body={"keep_alive": 0, "priority": 2})
    assert "mock-embed:latest" not in running(client)
    stream = oai.chat.completions.create(**chat, stream=True, extra_body={"keep_alive": "0s"})
    assert [c for c in stream]
    assert "mock-chat:latest" not in running(client)


@pytest.mark.parametrize(
    ("headers", "body", "param"),
    [
        ({"X-Keep-Alive": "soon"}, {}, "X-Keep-Alive"),
        ({"X-Priority": "high"}, {}, "X-Priority"),
        ({}, {"keep_alive": "soon"}, "keep_alive"),
        ({"X-Keep-Alive": "soon"}, {"keep_alive": 0}, None),
    ],
)
def test_openai_bad_lifecycle_controls_are_400(
    gateway: Gateway, headers: dict[str, str], body: dict[str, object], param: str | None
) -> None:
    chat = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, **body}
    with gateway.client() as http:
        resp = http.post("/v1/chat/completions", json=chat, headers=headers)
    if param is None:  # the body field wins over its header
        assert resp.status_code == 200, resp.text
        return
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param


def test_keep_alive_0_stops_the_worker_process(client: ollama.Client, gateway: Gateway) -> None:
    client.generate("slow:1b", "x", options={"num_predict": 1})
    before = set(gateway.worker_pids())
    client.generate("slow:1b", "x", options={"num_predict": 1}, keep_alive=0)
    gone = before - set(gateway.worker_pids())
    assert len(gone) == 1 and not any(pid_alive(p) for p in gone)
    assert client.generate("slow:1b", "x", options={"num_predict": 1}).done  # and it loads again


def test_root_and_version_answer_like_ollama(gateway: Gateway) -> None:
    with gateway.client() as http:
        assert http.get("/").text == "Ollama is running"
        assert http.head("/").status_code == 200
        version = http.get("/api/version").json()["version"]
        assert all(part.isdigit() for part in version.split("."))
        assert http.head("/api/tags").status_code == 200


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
def test_client_leaving_mid_stream_releases_the_model(gateway: Gateway, path: str) -> None:
    """Regression: a stream cut by the client must end its lease, or keep_alive 0 could never unload."""
    body = {
        "model": "slow:1b",
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
        "options": {"num_predict": 400},
        "max_tokens": 400,
    }
    with httpx.Client(base_url=gateway.url, timeout=60) as http:
        with http.stream("POST", path, json=body) as resp:
            for n, _ in enumerate(resp.iter_lines()):
                if n == 3:
                    break  # leaving the block closes the connection mid-stream

        def unloaded() -> bool:
            resp = http.post("/api/generate", json={"model": "slow:1b", "keep_alive": 0})
            return resp.status_code == 200 and resp.json()["done_reason"] == "unload"

        assert wait_until(unloaded, timeout=10, interval=0.2)
