"""The OpenAI API end to end: real gateway, real workers, real default models, official client."""

from __future__ import annotations

import math

import openai
import pytest
from gateway import Gateway


@pytest.fixture(scope="module")
def client(real_gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=real_gateway.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_models_lists_both_defaults(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"smollm2:135m", "all-minilm:l6-v2"} <= ids
    assert client.models.retrieve("smollm2").id == "smollm2"


def test_chat_answers_paris(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="smollm2:135m",
        messages=[{"role": "user", "content": "What is the capital of France? Answer briefly."}],
        temperature=0,
        max_tokens=32,
    )
    assert "Paris" in (resp.choices[0].message.content or "")
    assert resp.model == "smollm2:135m"
    assert resp.usage is not None and resp.usage.completion_tokens > 0


def test_chat_echoes_alias(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0
    )
    assert resp.model == "smollm2"


def test_streaming_chunks_and_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="smollm2:135m",
        messages=[{"role": "user", "content": "Name three colors."}],
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) >= 5
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals and finals[-1].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(content)  # one chunk per token


def test_stop_sequence_and_max_tokens(client: openai.OpenAI) -> None:
    resp = client.completions.create(
        model="smollm2:135m", prompt="1, 2, 3, 4,", max_tokens=30, temperature=0, stop=["7"]
    )
    assert "7" not in resp.choices[0].text
    assert resp.choices[0].finish_reason == "stop"
    resp = client.completions.create(
        model="smollm2:135m", prompt="Once upon a time", max_tokens=3, temperature=0
    )
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None and resp.usage.completion_tokens == 3


def test_seed_makes_sampling_repeatable(client: openai.OpenAI) -> None:
    def sample() -> str:
        resp = client.completions.create(
            model="smollm2:135m",
            prompt="My favourite animal is",
            max_tokens=12,
            temperature=1.0,
            top_p=0.95,
            seed=42,
        )
        return resp.choices[0].text

    assert sample() == sample()


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_embeddings_dimensions_and_ranking(client: openai.OpenAI) -> None:
    resp = client.embeddings.create(model="all-minilm:l6-v2", input=["dog", "puppy", "spreadsheet"])
    dog, puppy, sheet = (d.embedding for d in resp.data)
    assert len(dog) == 384
    assert _cos(dog, puppy) > _cos(dog, sheet)
    assert resp.usage.prompt_tokens > 0


def test_embeddings_base64_matches_float(client: openai.OpenAI) -> None:
    import base64

    import numpy as np

    floats = client.embeddings.create(model="all-minilm", input="hello world").data[0].embedding
    raw = client.with_options().embeddings.with_raw_response.create(
        model="all-minilm", input="hello world", encoding_format="base64"
    )
    b64 = raw.http_response.json()["data"][0]["embedding"]
    decoded = np.frombuffer(base64.b64decode(b64), dtype="<f4")
    assert np.allclose(decoded, floats, atol=1e-6)


def test_prompt_longer_than_context_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="smollm2:135m", messages=[{"role": "user", "content": "word " * 5000}], max_tokens=10
        )
    body = info.value.body
    assert isinstance(body, dict) and body["code"] == "context_length_exceeded"
    assert "2048" in body["message"]
