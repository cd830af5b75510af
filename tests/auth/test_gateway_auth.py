"""Keys, scopes, limits, usage and the browser checks on a real gateway (mock engines), through
the official openai, ollama and mcp clients and raw HTTP."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from gateway import MOCK_CONFIG, Gateway, wait_until

from nanoserve.auth.store import KeyStore, Limits

BOOT = "ns-boot-" + secrets.token_urlsafe(24)  # the bootstrap admin key, from the environment
APP_ORIGIN = "https://app.example"
CONFIG: dict[str, Any] = {
    **MOCK_CONFIG,
    "auth": {"required": True},
    "cors": {"allow_origins": [APP_ORIGIN]},
    "rag": {"generation_model": "mock-chat", "embedding_model": "mock-embed"},
}
CHAT = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("auth"), CONFIG, env={"NANOSERVE_BOOTSTRAP_KEY": BOOT})
    yield gateway
    gateway.stop()


def new_key(
    gw: Gateway, scopes: list[str], *, models: tuple[str, ...] = (), **limits: int
) -> tuple[str, str]:
    """(name, secret) of a fresh key, written to the running gateway's store."""
    name = "k-" + secrets.token_hex(4)
    store = KeyStore.in_dir(gw.data_dir)
    try:
        secret, _ = store.create(name, scopes, models=models, limits=Limits(**limits))
    finally:
        store.close()
    return name, secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_open_routes_need_no_key(gw: Gateway) -> None:
    with gw.client() as http:
        for path in ("/health", "/ready", "/", "/api/version"):
            assert http.get(path).status_code == 200, path


def test_401_and_403_in_each_dialect(gw: Gateway) -> None:
    _, docs_only = new_key(gw, ["documents"])
    with gw.client() as http:
        missing = http.post("/v1/chat/completions", json=CHAT)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["type"] == "authentication_error"
        wrong = http.post("/v1/chat/completions", json=CHAT, headers=bearer("ns-not-a-key"))
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        ollama_401 = http.post("/api/chat", json={"model": "mock-chat", "messages": []})
        assert ollama_401.status_code == 401 and isinstance(ollama_401.json()["error"], str)
        scope = http.post("/v1/chat/completions", json=CHAT, headers=bearer(docs_only))
        assert scope.status_code == 403 and "'inference' scope" in scope.json()["error"]["message"]
        ollama_403 = http.post(
            "/api/chat", json={"model": "mock-chat", "messages": []}, headers=bearer(docs_only)
        )
        assert ollama_403.status_code == 403 and "'inference' scope" in ollama_403.json()["error"]
        admin = http.post("/models/load", json={"model": "mock-chat"}, headers=bearer(docs_only))
        assert admin.status_code == 403


def test_official_clients_with_and_without_a_key(gw: Gateway) -> None:
    _, key = new_key(gw, ["inference"])
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    answer = client.chat.completions.create(**CHAT)
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gw.url + "/v1", api_key="ns-wrong", max_retries=0).models.list()
    with pytest.raises(openai.PermissionDeniedError):
        openai.OpenAI(
            base_url=gw.url + "/v1", api_key=new_key(gw, ["documents"])[1], max_retries=0
        ).models.list()

    assert ollama.Client(host=gw.url, headers=bearer(key)).chat(model="mock-chat", messages=[]).message
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=gw.url).chat(model="mock-chat", messages=[])
    assert refused.value.status_code == 401

    with gw.client() as http:  # LangChain-style bearer clients, and x-api-key
        assert http.post("/v1/chat/completions", json=CHAT, headers={"x-api-key": key}).status_code == 200
        assert http.get("/v1/models", headers={"authorization": f"bearer {key}"}).status_code == 200


def test_model_allow_list(gw: Gateway) -> None:
    _, key = new_key(gw, ["inference"], models=("mock-embed",))
    with gw.client(headers=bearer(key)) as http:
        assert http.post("/v1/embeddings", json={"model": "mock-embed", "input": "x"}).status_code == 200
        chat = http.post("/v1/chat/completions", json=CHAT)
        assert chat.status_code == 403 and chat.json()["error"]["param"] == "model"
        alias = http.post("/v1/chat/completions", json={**CHAT, "model": "mc"})
        assert alias.status_code == 403
        ollama_chat = http.post("/api/chat", json={"model": "mock-chat", "messages": []})
        assert (
            ollama_chat.status_code == 403
            and "may not use the model 'mock-chat'" in ollama_chat.json()["error"]
        )


def test_rpm_limit_answers_429_naming_it(gw: Gateway) -> None:
    _, key = new_key(gw, ["inference"], rpm=2)
    with gw.client(headers=bearer(key)) as http:
        assert [http.get("/v1/models").status_code for _ in range(2)] == [200, 200]
        refused = http.get("/v1/models")
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["error"]["type"] == "rate_limit_error"
        assert "2 requests per minute (rpm)" in refused.json()["error"]["message"]
        in_ollama = http.get("/api/tags")
        assert in_ollama.status_code == 429 and "(rpm)" in in_ollama.json()["error"]


def test_tpm_limit(gw: Gateway) -> None:
    _, key = new_key(gw, ["inference"], tpm=5)
    with gw.client(headers=bearer(key)) as http:
        assert http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 8}).status_code == 200
        refused = http.post("/v1/chat/completions", json=CHAT)
        assert refused.status_code == 429 and "(tpm)" in refused.json()["error"]["message"]
        assert int(refused.headers["retry-after"]) >= 1


def test_concurrency_limit(gw: Gateway) -> None:
    _, key = new_key(gw, ["inference"], max_concurrent=1)
    started, release = threading.Event(), threading.Event()

    def long_stream() -> None:
        body = {**CHAT, "max_tokens": 400, "stream": True}
        with (
            gw.client(headers=bearer(key)) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as r,
        ):
            for _ in r.iter_bytes():
                started.set()
                release.wait(10)

    thread = threading.Thread(target=long_stream)
    thread.start()
    try:
        assert started.wait(30)
        with gw.client(headers=bearer(key)) as http:
            refused = http.post("/v1/chat/completions", json=CHAT)
            assert refused.status_code == 429 and "(max_concurrent)" in refused.json()["error"]["message"]
    finally:
        release.set()
        thread.join(30)
    with gw.client(headers=bearer(key)) as http:
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_usage_counts_match_the_tokens_served(gw: Gateway) -> None:
    name, key = new_key(gw, ["inference"])
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    prompt = completion = 0
    for n in (3, 5):
        usage = client.chat.completions.create(**{**CHAT, "max_tokens": n}).usage
        assert usage is not None
        prompt, completion = prompt + usage.prompt_tokens, completion + usage.completion_tokens
    stream = client.chat.completions.create(
        **{**CHAT, "max_tokens": 6}, stream=True, stream_options={"include_usage": True}
    )
    last = list(stream)[-1].usage
    assert last is not None
    prompt, completion = prompt + last.prompt_tokens, completion + last.completion_tokens
    embedded = client.embeddings.create(model="mock-embed", input=["a b c", "d"]).usage.prompt_tokens

    with gw.client(headers=bearer(BOOT)) as http:
        usage = http.get("/admin/keys/usage").json()["keys"][name]
        metrics = http.get("/metrics").text
    assert usage["models"]["mock-chat"] == {
        "requests": 3,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
    }
    assert usage["models"]["mock-embed"]["prompt_tokens"] == embedded
    assert (
        f'nanoserve_key_tokens_total{{key="{name}",kind="completion",model="mock-chat"}} {completion}.0'
        in metrics
    )
    assert f'nanoserve_key_requests_total{{key="{name}",model="mock-chat"}} 3.0' in metrics


def test_keys_created_and_revoked_while_running_count_at_once(gw: Gateway) -> None:
    cli = [sys.executable, "-m", "nanoserve", "keys"]
    where = ["--data-dir", str(gw.data_dir)]
    created = subprocess.run(
        [*cli, "create", "late", "--scope", "inference", *where], check=False, capture_output=True, text=True
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert "shown once" in created.stderr and secret.startswith("ns-")
    listed = subprocess.run(check=False, args=[*cli, "list", *where], capture_output=True, text=True).stdout
    assert "late" in listed and secret not in listed
    with gw.client(headers=bearer(secret)) as http:
        assert http.get("/v1/models").status_code == 200
        revoked = subprocess.run(
            check=False, args=[*cli, "revoke", "late", *where], capture_output=True, text=True
        )
        assert revoked.returncode == 0, revoked.stderr
        assert http.get("/v1/models").status_code == 401


def test_admin_keys_api_and_audit_log(gw: Gateway) -> None:
    with gw.client(headers=bearer(BOOT)) as http:
        made = http.post("/admin/keys", json={"name": "via-api", "scopes": ["inference"], "rpm": 9})
        assert made.status_code == 201 and made.json()["key"].startswith("ns-")
        listed = http.get("/admin/keys").json()["data"]
        assert any(k["name"] == "via-api" and k["rpm"] == 9 and "key" not in k for k in listed)
        assert http.post("/admin/keys", json={"name": "via-api", "scopes": ["inference"]}).status_code == 409
        assert http.post("/admin/keys", json={"name": "x", "scopes": ["root"]}).status_code == 400
        assert http.delete("/admin/keys/via-api").json()["revoked"] is True
        assert http.get("/v1/models", headers=bearer(made.json()["key"])).status_code == 401
    assert wait_until(lambda: "admin action: key=bootstrap DELETE /admin/keys/via-api" in gw.log())


def test_rag_work_is_charged_to_the_asking_key(gw: Gateway) -> None:
    name, key = new_key(gw, ["inference", "documents"])
    with gw.client(headers=bearer(key)) as http:
        doc = {"name": "note.md", "text": "# Vinegar\n\nVinegar removes limescale from kettles."}
        assert http.post("/v1/rag/collections/kitchen/documents", json=doc).status_code == 201
        answer = http.post(
            "/v1/rag/query", json={"collection": "kitchen", "query": "What removes limescale?"}
        )
        assert answer.status_code == 200, answer.text
    with gw.client(headers=bearer(BOOT)) as http:
        usage = http.get("/admin/keys/usage").json()["keys"]
    assert usage[name]["models"]["mock-embed"]["prompt_tokens"] > 0  # the pipeline's own /v1 calls
    assert "internal" not in usage


def test_cors(gw: Gateway) -> None:
    preflight = {"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST"}
    with gw.client() as http:
        ok = http.options("/v1/chat/completions", headers=preflight)
        assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "authorization" in ok.headers["access-control-allow-headers"]
        other = http.options("/v1/chat/completions", headers={**preflight, "Origin": "https://evil.example"})
        assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
        _, key = new_key(gw, ["inference"])
        real = http.post("/v1/chat/completions", json=CHAT, headers={"Origin": APP_ORIGIN, **bearer(key)})
        assert real.status_code == 200 and real.headers["access-control-allow-origin"] == APP_ORIGIN


async def test_mcp_client_with_a_key(gw: Gateway) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async def models_status(headers: dict[str, str]) -> Any:
        async with (
            create_mcp_http_client(headers=headers) as http,
            Client(streamable_http_client(gw.url + "/mcp", http_client=http)) as client,
        ):
            return await client.call_tool("models_status", {})

    admin = await models_status(bearer(BOOT))
    assert not admin.is_error and "mock-chat" in json.dumps(admin.structured_content)
    _, inference = new_key(gw, ["inference"])
    refused = await models_status(bearer(inference))
    assert refused.is_error and "'admin' scope" in refused.content[0].text  # type: ignore[union-attr]
    with pytest.raises(Exception):  # noqa: B017 - the SDK wraps the 401 in its own error types
        await models_status({})


def test_serve_refuses_to_expose_without_keys(tmp_path: Path) -> None:
    serve = [sys.executable, "-m", "nanoserve", "serve", "--data-dir", str(tmp_path), "--port", "1"]
    refused = subprocess.run(
        check=False, args=[*serve, "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1 and "--insecure-no-auth" in refused.stderr


def test_short_bootstrap_key_is_refused(tmp_path: Path) -> None:
    env_cmd = [sys.executable, "-m", "nanoserve", "serve", "--data-dir", str(tmp_path), "--port", "1"]
    result = subprocess.run(
        args=env_cmd,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NANOSERVE_BOOTSTRAP_KEY": "short"},
    )
    assert result.returncode == 1 and "too short" in result.stderr


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(full path, route) of every route, through included routers (FastAPI keeps them nested)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from _walk(route.original_router.routes, prefix + route.include_context.prefix)
        else:
            yield prefix + getattr(route, "path", ""), route


def _route_calls() -> list[tuple[str, str]]:
    """(method, path) of every route of the app, path parameters filled in."""
    import re

    from nanoserve.api.app import create_app
    from nanoserve.config import Settings

    app = create_app(Settings(data_dir=Path("/nonexistent"), **MOCK_CONFIG))
    calls = []
    for path, route in _walk(app.routes):
        for method in sorted(getattr(route, "methods", None) or {"GET", "POST"}):
            calls.append((method, re.sub(r"\{[^}]+\}", "x", path)))
    return calls


ROUTES = _route_calls()


def test_every_route_refuses_rebinding_and_foreign_pages(gw: Gateway) -> None:
    assert len(ROUTES) > 30
    with gw.client(headers=bearer(BOOT)) as http:
        for method, path in ROUTES:
            rebound = http.request(method, path, headers={"Host": f"evil.example:{gw.port}"})
            assert rebound.status_code == 421, (method, path)
            foreign = http.request(
                method,
                path,
                headers={"Origin": "http://evil.example", "Content-Type": "text/plain"},
                content=b"{}",
            )
            assert foreign.status_code == 403, (method, path, foreign.text)
            cross_site = http.request(method, path, headers={"Sec-Fetch-Site": "cross-site"})
            assert cross_site.status_code == 403, (method, path)
            dashboard_page = (method == "GET" and (path == "/ui" or path.startswith("/ui/"))) or (
                method == "POST" and path in ("/ui/login", "/ui/logout")
            )  # the dashboard's static page and its login: open, no data (docs/dashboard.md)
            if path not in ("/health", "/ready", "/", "/api/version") and not dashboard_page:
                anonymous = httpx.request(method, gw.url + path, timeout=30)
                assert anonymous.status_code == 401, (method, path, anonymous.text)
        # the attack of the issue: a page's text/plain POST creates no document
        attack = http.post(
            "/v1/rag/collections/pwned/documents",
            content=json.dumps({"name": "x.md", "text": "owned"}),
            headers={"Origin": "http://evil.example", "Content-Type": "text/plain"},
        )
        assert attack.status_code == 403
        assert http.get("/v1/rag/collections/pwned").status_code == 404


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_readme_curl_examples_work_without_keys(mock_gateway: Gateway) -> None:
    """Keys not required: curl from a terminal (no Origin; `-d` sends a form content type)."""
    base = f"localhost:{mock_gateway.port}"

    def curl(*args: str) -> dict[str, Any]:
        out = subprocess.run(
            args=["curl", "-s", "--fail-with-body", *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout)

    assert curl(f"{base}/v1/embeddings", "-d", '{"model": "mock-embed", "input": "hello"}')["usage"]
    chat = curl(
        f"http://{base}/v1/chat/completions",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}',
    )
    assert chat["choices"]
    assert "data" in curl(f"{base}/v1/rag/metrics")
    assert curl(f"{base}/models/status")["models"]
