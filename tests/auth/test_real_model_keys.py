"""The default real model behind required keys, through the official openai and ollama clients."""

from __future__ import annotations

import secrets
from pathlib import Path

import ollama
import openai
import pytest
from gateway import Gateway

from nanoserve.auth.store import KeyStore


def test_real_default_model_with_a_key(tmp_path: Path) -> None:
    store = KeyStore.in_dir(tmp_path)
    name = "real-" + secrets.token_hex(3)
    key = store.create(name, ["inference"], models=["smollm2"])[0]
    store.close()
    gw = Gateway(tmp_path, {"auth": {"required": True}}, start_timeout=120)
    try:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=120)
        answer = client.chat.completions.create(
            model="smollm2:135m",
            messages=[{"role": "user", "content": "What is the capital of France? Answer briefly."}],
            temperature=0,
            max_tokens=16,
        )
        assert "Paris" in (answer.choices[0].message.content or "")
        with pytest.raises(openai.PermissionDeniedError):  # not in the key's allow-list
            client.embeddings.create(model="all-minilm", input="x")
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0).models.list()
        reply = ollama.Client(host=gw.url, headers={"Authorization": f"Bearer {key}"}).chat(
            model="smollm2", messages=[{"role": "user", "content": "Say hi."}], options={"num_predict": 4}
        )
        assert reply.message.content
    finally:
        gw.stop()
