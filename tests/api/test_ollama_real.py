"""The Ollama API end to end: real gateway, real workers, real default models, official ``ollama`` client."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import ollama
import pytest
from gateway import Gateway

from nanoserve.config import default_models

CHAT = "smollm2:135m"
EMBED = "all-minilm:l6-v2"
QUESTION = "What is the capital of France? Answer briefly."


@pytest.fixture(scope="module")
def client(real_gateway: Gateway) -> ollama.Client:
    return ollama.Client(host=real_gateway.url, timeout=300)


def test_list_shows_both_defaults_with_gguf_details(client: ollama.Client) -> None:
    models = {m.model: m for m in client.list().models}
    assert {CHAT, "all-minilm:l6-v2"} <= set(models)
    chat = models[CHAT]
    assert chat.details is not None
    assert (chat.details.format, chat.details.family) == ("gguf", "llama")
    assert chat.details.quantization_level and chat.details.quantization_level in str(
        default_models()[0].source
    )
    assert chat.details.parameter_size and chat.details.parameter_size.endswith("M")
    assert chat.size and chat.size > 50_000_000 and chat.digest and len(chat.digest) == 64


def test_show_reads_the_served_weights(client: ollama.Client) -> None:
    shown = client.show("smollm2")  # alias, no tag: ":latest"
    info = shown.modelinfo or {}
    assert info["general.architecture"] == "llama" == (shown.details and shown.details.family)
    assert info["llama.context_length"] >= 2048 and info["llama.vocab_size"] > 0
    assert info["tokenizer.ggml.tokens"] == []  # elided, as Ollama does without verbose
    assert shown.template and "<|im_start|>" in shown.template
    assert shown.parameters is not None and shown.parameters.split() == ["num_ctx", "2048"]
    assert shown.capabilities == ["completion"]
    assert client.show(EMBED).capabilities == ["embedding"]


def test_generate_answers_paris(client: ollama.Client) -> None:
    reply = client.generate(CHAT, QUESTION, options={"temperature": 0, "num_predict": 32}, stream=False)
    assert "Paris" in reply.response
    assert reply.done and reply.done_reason in ("stop", "length")
    assert reply.eval_count and reply.prompt_eval_count and reply.eval_duration and reply.total_duration
    assert reply.context and len(reply.context) > reply.prompt_eval_count


def test_generate_streaming_matches_not_streaming(client: ollama.Client) -> None:
    options = {"temperature": 0, "num_predict": 16, "seed": 1}
    whole = client.generate(CHAT, "Name three colors.", options=options, stream=False)
    parts = list(client.generate(CHAT, "Name three colors.", options=options, stream=True))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.response or "" for p in parts) == whole.response
    assert parts[-1].eval_count == whole.eval_count


def test_chat_streaming_and_not(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": QUESTION}]
    whole = client.chat(CHAT, messages, options={"temperature": 0, "num_predict": 32}, stream=False)
    assert whole.message.role == "assistant" and "Paris" in (whole.message.content or "")
    parts = list(client.chat(CHAT, messages, options={"temperature": 0, "num_predict": 32}, stream=True))
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    assert parts[-1].done and parts[-1].done_reason in ("stop", "length")
    assert len([p for p in parts[:-1] if p.message.content]) >= 3


def test_stop_and_num_predict(client: ollama.Client) -> None:
    reply = client.generate(
        CHAT, "1, 2, 3, 4,", raw=True, options={"temperature": 0, "num_predict": 30, "stop": ["7"]}
    )
    assert "7" not in reply.response and reply.done_reason == "stop"
    short = client.generate(CHAT, "Once upon a time", raw=True, options={"temperature": 0, "num_predict": 3})
    assert short.done_reason == "length" and short.eval_count == 3


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / (math.hypot(*a) * math.hypot(*b))


def test_embed_ranks_related_words(client: ollama.Client) -> None:
    dog, puppy, sheet = client.embed("all-minilm", ["dog", "puppy", "spreadsheet"]).embeddings
    assert len(dog) == 384
    assert _cos(dog, puppy) > _cos(dog, sheet)
    old = client.embeddings("all-minilm", "dog").embedding
    assert list(old) == pytest.approx(list(dog), abs=1e-5)


def test_images_to_a_text_only_model_are_400(client: ollama.Client) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(CHAT, [{"role": "user", "content": "what is this?", "images": [png]}])
    assert info.value.status_code == 400 and "image" in info.value.error


def test_ps_then_keep_alive_0_unloads(client: ollama.Client) -> None:
    client.generate(CHAT, "Hi", options={"num_predict": 1})
    loaded = {m.model: m for m in client.ps().models}
    assert CHAT in loaded
    model = loaded[CHAT]
    assert model.size and model.size > 0 and model.size_vram == 0 and model.context_length == 2048
    assert model.expires_at is not None and model.expires_at > datetime.now(UTC)
    client.generate(CHAT, "Hi", options={"num_predict": 1}, keep_alive=0)
    assert CHAT not in {m.model for m in client.ps().models}
