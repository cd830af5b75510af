"""The RAG commands' client: a busy gateway's 429/503 with Retry-After is waited out, not fatal."""

from __future__ import annotations

import click
import httpx
import pytest

from nanoserve.cli import rag


def client(statuses: list[tuple[int, dict[str, str]]]) -> tuple[httpx.Client, list[int]]:
    seen: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        status, headers = statuses[min(len(seen), len(statuses) - 1)]
        seen.append(status)
        body = {"ok": True} if status == 200 else {"error": {"message": f"busy ({status})"}}
        return httpx.Response(status, json=body, headers=headers)

    return httpx.Client(transport=httpx.MockTransport(handle), base_url="http://gateway"), seen


def test_a_503_with_retry_after_is_waited_out() -> None:
    http, seen = client([(503, {"retry-after": "0"}), (429, {"retry-after": "0"}), (200, {})])
    assert rag._call(http, "POST", "/v1/rag/search", json={}) == {"ok": True}
    assert seen == [503, 429, 200]


def test_without_retry_after_or_after_the_retries_the_error_is_reported() -> None:
    http, seen = client([(503, {})])
    with pytest.raises(click.ClickException, match="503: busy"):
        rag._call(http, "POST", "/v1/rag/search", json={})
    assert seen == [503]
    http, seen = client([(503, {"retry-after": "0"})])
    with pytest.raises(click.ClickException, match="503: busy"):
        rag._call(http, "POST", "/v1/rag/search", json={})
    assert len(seen) == rag.RETRIES + 1
    http, seen = client([(400, {"retry-after": "0"})])
    with pytest.raises(click.ClickException, match="400"):
        rag._call(http, "POST", "/v1/rag/search", json={})
    assert seen == [400]
