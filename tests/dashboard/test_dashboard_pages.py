"""The dashboard in real headless Chromium against a real gateway (mock engines): every page
without console errors and offline, the model buttons, the live chart, the login."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from browser import watched_page
from gateway import MOCK_CONFIG, Gateway

PAGES = ("overview", "models", "requests", "playground", "documents", "logs")
CONFIG: dict[str, Any] = {
    **MOCK_CONFIG,
    "rag": {"generation_model": "mock-chat", "embedding_model": "mock-embed"},
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("dashboard"), CONFIG)
    yield gateway
    gateway.stop()


def test_every_page_loads_offline_without_console_errors(gw: Gateway, context: Any) -> None:
    w = watched_page(context)
    w.page.goto(gw.url + "/ui")
    w.page.wait_for_selector("#stats .stat")
    w.page.wait_for_selector("#devices .dev .bar")  # a memory bar per device
    assert "[object" not in w.page.inner_text("#view")
    for name in PAGES:
        w.page.goto(f"{gw.url}/ui#/{name}")
        w.page.wait_for_function(f"document.body.dataset.page === '{name}'")
        w.page.wait_for_load_state("networkidle")
        assert w.page.inner_text("#title").lower() == name, name
        assert "[object" not in w.page.inner_text("#view"), name
    w.page.wait_for_selector("#live-dot.on")  # the live feed is connected
    assert w.failed == [] and w.errors == [] and w.external == []


def test_api_docs_render_from_local_assets(gw: Gateway, context: Any) -> None:
    """/docs and /redoc used to load Swagger UI and ReDoc from a CDN: blank without internet."""
    w = watched_page(context)
    w.page.goto(gw.url + "/docs")
    w.page.wait_for_selector(".swagger-ui .info .title")
    assert "nanoserve" in w.page.inner_text(".swagger-ui .info .title")
    assert w.page.locator(".opblock").count() > 10  # the operations rendered
    w.page.goto(gw.url + "/redoc")
    w.page.wait_for_selector("redoc h1, [role=main] h1, h1", timeout=20_000)
    assert "nanoserve" in w.page.inner_text("body")
    assert w.failed == [] and w.external == [] and w.errors == []


def test_load_with_its_dry_run_then_unload_with_the_buttons(gw: Gateway, context: Any) -> None:
    w = watched_page(context)
    w.page.goto(f"{gw.url}/ui#/models")
    row = w.page.locator("tr[data-model='mock-chat']")
    row.locator("button.load").click()
    plan = w.page.locator("#plan-text")
    plan.wait_for()
    assert "Loading mock-chat needs" in plan.inner_text() and "evicts nothing" in plan.inner_text()
    w.page.click("#plan-confirm")
    row.locator("td.state .pill.ready").wait_for(timeout=30_000)
    assert gw.client().get("/dashboard/overview").json()["models"][0]["state"] == "ready"

    row.locator("button.unload").click()
    row.locator("td.state .pill.stopped").wait_for(timeout=30_000)
    assert "manual" in row.inner_text()  # the last unload reason
    model = next(m for m in gw.client().get("/models/status").json()["models"] if m["id"] == "mock-chat")
    assert model["state"] == "stopped"
    assert w.errors == []


def test_load_refused_is_shown_as_the_api_says(gw: Gateway, context: Any) -> None:
    w = watched_page(context)
    w.page.goto(f"{gw.url}/ui#/models")
    w.page.wait_for_selector("tr[data-model='mock-embed']")
    # the API's own error, through the page's API helper
    message = w.page.evaluate(
        """async () => { const { api } = await import('/ui/static/util.js');
           try { await api('/models/load', {method: 'POST', body: {model: 'nope'}}); return 'ok'; }
           catch (e) { return e.status + ' ' + e.message; } }"""
    )
    assert message.startswith("404 ") and "nope" in message


def test_documents_upload_with_progress_ask_trace_feedback(gw: Gateway, context: Any, tmp_path: Any) -> None:
    """The Documents page's whole flow on mock models (the cited answer with real ones:
    test_dashboard_real.py, slow)."""
    path = tmp_path / "notes.md"
    path.write_text("# Notes\n\nThe blue door opens at nine. The red door stays shut on Sundays.\n" * 40)
    w = watched_page(context)
    w.page.goto(gw.url + "/ui#/documents")
    w.page.fill("#doc-collection", "page-test")
    w.page.set_input_files("#doc-file", str(path))
    w.page.click("#doc-upload")
    w.page.wait_for_selector("#doc-upload-log >> text=notes.md: created")
    assert w.page.evaluate("document.querySelector('.progress span').style.width") == "100%"
    w.page.wait_for_selector("#collections >> text=page-test")
    w.page.fill("#doc-question", "When does the blue door open?")
    w.page.click("#doc-ask")
    w.page.wait_for_selector("#doc-answer .answer-text")
    w.page.click("#doc-answer button:has-text('Trace')")
    w.page.wait_for_selector("#doc-trace-body")
    assert "retrieved" in w.page.inner_text("#doc-trace-body")
    w.page.click("#doc-good")
    w.page.wait_for_selector("#toast >> text=feedback recorded")
    assert w.failed == [] and w.errors == [] and w.external == []


def chart_requests(page: Any) -> int:
    return page.evaluate("window.nanoserveCharts.tokens.points.reduce((a, p) => a + p.requests, 0)")


def test_live_chart_counts_the_requests_sent(gw: Gateway, context: Any) -> None:
    w = watched_page(context)
    w.page.goto(gw.url + "/ui#/overview")
    w.page.wait_for_function("window.nanoserveCharts && window.nanoserveCharts.tokens.points.length > 0")
    before = chart_requests(w.page)
    n = 7
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused")
    for i in range(n):
        client.chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": f"hello {i}"}], max_tokens=8
        )
    w.page.wait_for_function(
        f"window.nanoserveCharts.tokens.points.reduce((a, p) => a + p.requests, 0) >= {before + n}",
        timeout=15_000,
    )
    assert chart_requests(w.page) == before + n
    tokens = w.page.evaluate("window.nanoserveCharts.tokens.points.reduce((a, p) => a + p.tokens_per_s, 0)")
    assert tokens >= n  # each answer had tokens
    w.page.goto(gw.url + "/ui#/requests")
    w.page.wait_for_selector("#requests tr.click")
    assert w.page.locator("#requests tr.click", has_text="mock-chat").count() >= n
    w.page.locator("#requests tr.click", has_text="mock-chat").first.click()
    w.page.wait_for_selector("#detail .kv")
    assert "/v1/chat/completions" in w.page.inner_text("#detail")
    assert w.errors == []


def test_dashboard_off_keeps_the_offline_docs(tmp_path: Any) -> None:
    gateway = Gateway(tmp_path, {**MOCK_CONFIG, "dashboard": False})
    try:
        with gateway.client() as http:
            assert http.get("/ui").status_code == 404
            assert http.get("/dashboard/overview").status_code == 404
            docs = http.get("/docs")
            assert docs.status_code == 200 and "/ui/vendor/swagger/swagger-ui-bundle.js" in docs.text
            assert "cdn" not in docs.text and "cdn" not in http.get("/redoc").text
            assert http.get("/ui/vendor/redoc/redoc.standalone.js").status_code == 200
    finally:
        gateway.stop()


BOOT = "ns-boot-" + secrets.token_urlsafe(24)


def test_login_with_an_admin_key_gives_an_httponly_session(tmp_path: Any, context: Any) -> None:
    gateway = Gateway(
        tmp_path, {**MOCK_CONFIG, "auth": {"required": True}}, env={"NANOSERVE_BOOTSTRAP_KEY": BOOT}
    )
    try:
        with gateway.client() as http:
            assert http.get("/dashboard/overview").status_code == 401
            created = http.post(
                "/admin/keys", json={"name": "reader", "scopes": ["inference"]}, headers={"x-api-key": BOOT}
            )
            reader = created.json()["key"]
        w = watched_page(context)
        w.page.goto(gateway.url + "/ui")
        w.page.fill("#login-key", "wrong-key-wrong-key-wrong")
        w.page.click("form.login button")
        w.page.wait_for_selector("form.login >> text=Invalid or revoked API key")
        w.page.fill("#login-key", reader)
        w.page.click("form.login button")
        w.page.wait_for_selector("form.login >> text=lacks the 'admin' scope")
        w.page.fill("#login-key", BOOT)
        w.page.click("form.login button")
        w.page.wait_for_selector("#stats .stat")
        w.page.wait_for_selector("#live-dot.on")  # EventSource passes with the cookie alone
        assert "signed in: bootstrap" in w.page.inner_text("#who")
        assert w.page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
        cookie = next(c for c in context.cookies() if c["name"] == "nanoserve_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        session = {"cookie": f"nanoserve_session={cookie['value']}"}
        with gateway.client() as http:
            assert http.get("/models/status", headers=session).status_code == 200
            # the cookie is this origin's only: a foreign page's request with it is refused
            foreign = http.get("/models/status", headers={**session, "origin": "https://evil.example"})
            assert foreign.status_code == 403
            assert http.post("/ui/logout", headers=session, json={}).status_code == 200
            assert http.get("/models/status", headers=session).status_code == 401
        # the log in attempts were 401/403 console messages of the browser, nothing else
        assert all("401" in e or "403" in e for e in w.errors), w.errors
    finally:
        gateway.stop()


def test_login_needs_a_body_with_a_key(gw: Gateway) -> None:
    with httpx.Client(base_url=gw.url) as http:
        bad = http.post("/ui/login", json={"secret": "x"})
        assert bad.status_code == 400 and bad.json()["error"]["message"]


def test_an_open_live_feed_does_not_hold_up_shutdown(tmp_path: Any) -> None:
    """The server waits for open responses before it stops, and a live feed never ends: an open
    dashboard held every shutdown for the whole grace period (30 s)."""
    gateway = Gateway(tmp_path, MOCK_CONFIG)
    try:
        with (
            httpx.Client(base_url=gateway.url, timeout=10) as http,
            http.stream("GET", "/dashboard/live") as feed,
        ):
            lines = feed.iter_lines()
            assert next(lines).startswith("retry:")
            began = time.monotonic()
            gateway.stop(timeout=20)
            assert gateway.proc.poll() is not None and time.monotonic() - began < 8
    finally:
        gateway.stop()
