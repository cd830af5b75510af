"""What the bench tests need to know about the server they load (the fixture-swap contract)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchTarget:
    """An OpenAI-compatible server whose chat model streams at a known TTFT and token rate.

    Today the fake server of ``fake_openai.py``; the gateway with an ``engine: mock`` chat model
    (options ``ttft_ms`` and ``tokens_per_second``) and a ``mock-embedding`` model is a drop-in
    replacement.
    """

    base_url: str
    chat_model: str
    embedding_model: str
    ttft_ms: float
    tokens_per_second: float
