"""The gate's pure decisions, by tables: scopes per route, who passes, foreign browsers, hosts."""

from __future__ import annotations

import pytest

from nanoserve.auth.hosts import allowed_hosts, host_allowed, is_loopback, origin_host, strip_port
from nanoserve.auth.policy import (
    ALL_SCOPES,
    Principal,
    authorize,
    browser_problem,
    exposure_problem,
    model_allowed,
    origin_allowed,
    required_scope,
    token_from,
)
from nanoserve.errors import Forbidden, Unauthorized


@pytest.mark.parametrize(
    ("method", "path", "need"),
    [
        ("GET", "/health", "open"),
        ("GET", "/ready", "open"),
        ("GET", "/", "open"),
        ("HEAD", "/", "open"),
        ("POST", "/", "key"),
        ("GET", "/api/version", "open"),
        ("POST", "/v1/chat/completions", "inference"),
        ("POST", "/v1/completions", "inference"),
        ("POST", "/v1/embeddings", "inference"),
        ("POST", "/v1/rerank", "inference"),
        ("POST", "/rerank", "inference"),
        ("POST", "/rerankings", "key"),
        ("GET", "/v1/models", "inference"),
        ("POST", "/api/chat", "inference"),
        ("POST", "/api/generate", "inference"),
        ("GET", "/api/tags", "inference"),
        ("POST", "/api/show", "inference"),
        ("POST", "/api/pull", "admin"),
        ("DELETE", "/api/delete", "admin"),
        ("POST", "/api/create", "admin"),
        ("HEAD", "/api/blobs/sha256:00", "admin"),
        ("POST", "/v1/rag/query", "inference"),
        ("POST", "/v1/rag/search", "inference"),
        ("GET", "/v1/rag/collections", "inference"),
        ("GET", "/v1/rag/collections/docs", "inference"),
        ("POST", "/v1/rag/collections/docs/documents", "documents"),
        ("DELETE", "/v1/rag/collections/docs", "documents"),
        ("DELETE", "/v1/rag/collections/docs/documents/a.md", "documents"),
        ("POST", "/v1/rag/feedback", "documents"),
        ("GET", "/models/status", "admin"),
        ("POST", "/models/load", "admin"),
        ("POST", "/models/unload", "admin"),
        ("GET", "/metrics", "admin"),
        ("GET", "/admin/keys/usage", "admin"),
        ("GET", "/dashboard", "admin"),
        ("GET", "/dashboard/live", "admin"),
        ("GET", "/ui", "open"),  # the dashboard's static page: no data in it
        ("GET", "/ui/static/app.js", "open"),
        ("POST", "/ui/login", "open"),
        ("POST", "/ui/static/app.js", "key"),
        ("GET", "/uiother", "key"),
        ("POST", "/mcp", "key"),
        ("GET", "/docs", "key"),
        ("GET", "/no/such/route", "key"),
        ("GET", "/healthz", "key"),  # no prefix match for exact routes
    ],
)
def test_required_scope(method: str, path: str, need: str) -> None:
    assert required_scope(method, path) == need


INFER = Principal("app", frozenset({"inference"}))
ADMIN = Principal("ops", ALL_SCOPES)


@pytest.mark.parametrize(
    ("principal", "need", "required", "error"),
    [
        (None, "open", True, None),
        (None, "inference", False, None),  # keys not required: anonymous passes
        (None, "admin", False, None),
        (None, "inference", True, Unauthorized),
        (None, "key", True, Unauthorized),
        (INFER, "inference", True, None),
        (INFER, "key", True, None),
        (INFER, "admin", True, Forbidden),
        (INFER, "documents", True, Forbidden),
        (INFER, "admin", False, Forbidden),  # a key's scopes hold even when keys are optional
        (ADMIN, "admin", True, None),
        (ADMIN, "documents", True, None),
    ],
)
def test_authorize(principal: Principal | None, need: str, required: bool, error: type | None) -> None:
    result = authorize(principal, need, required=required)  # type: ignore[arg-type]
    assert (type(result) if result is not None else None) is error


def test_forbidden_names_key_and_scope() -> None:
    error = authorize(INFER, "admin", required=True)
    assert error is not None and "'app'" in error.message and "'admin'" in error.message


@pytest.mark.parametrize(
    ("models", "names", "allowed"),
    [
        ((), ("smollm2:135m", "smollm2"), True),
        (("smollm2",), ("smollm2:135m", "smollm2"), True),  # an alias in the allow-list
        (("smollm2:135m",), ("smollm2:135m", "smollm2"), True),
        (("all-minilm",), ("smollm2:135m", "smollm2"), False),
    ],
)
def test_model_allowed(models: tuple[str, ...], names: tuple[str, ...], allowed: bool) -> None:
    assert model_allowed(Principal("k", frozenset({"inference"}), models), names) is allowed
    assert model_allowed(None, names)


@pytest.mark.parametrize(
    ("authorization", "api_key", "token"),
    [
        ("Bearer ns-abc", None, "ns-abc"),
        ("bearer  ns-abc ", None, "ns-abc"),
        ("Basic dXNlcg==", None, None),
        ("Bearer ", None, None),
        (None, "ns-xyz", "ns-xyz"),
        ("Bearer ns-abc", "ns-xyz", "ns-abc"),
        (None, None, None),
    ],
)
def test_token_from(authorization: str | None, api_key: str | None, token: str | None) -> None:
    assert token_from(authorization, api_key) == token


HOSTS = frozenset(allowed_hosts("127.0.0.1"))


@pytest.mark.parametrize(
    ("method", "host", "origin", "site", "ctype", "cors", "refused"),
    [
        # curl, SDKs: no Origin, no Sec-Fetch-Site; form-encoded `curl -d` keeps working
        ("POST", "localhost:8000", None, None, "application/x-www-form-urlencoded", (), False),
        ("POST", "localhost:8000", None, None, None, (), False),
        # a foreign page
        ("POST", "localhost:8000", "http://evil.example", None, "text/plain", (), True),
        ("POST", "localhost:8000", "http://evil.example", None, "application/json", (), True),
        ("GET", "localhost:8000", "http://evil.example", "cross-site", None, (), True),
        ("GET", "localhost:8000", "null", None, None, (), True),
        ("GET", "localhost:8000", None, "cross-site", None, (), True),
        ("GET", "localhost:8000", None, "same-site", None, (), True),
        # another app on this machine, another port
        ("POST", "localhost:8000", "http://localhost:3000", None, "application/json", (), True),
        # this server's own pages
        ("GET", "localhost:8000", "http://localhost:8000", "same-origin", None, (), False),
        ("POST", "localhost:8000", "http://localhost:8000", None, "application/json", (), False),
        ("POST", "localhost:8000", "http://127.0.0.1:8000", None, "application/json", (), False),
        ("POST", "localhost:8000", "http://localhost:8000", None, "text/plain", (), True),  # must be JSON
        ("POST", "localhost:8000", "http://localhost:8000", None, "multipart/form-data; b=x", (), True),
        ("GET", "localhost:8000", None, "none", None, (), False),  # typed in the address bar
        # CORS origins
        ("POST", "localhost:8000", "https://app.example", None, "application/json", ("https://app.example",), False),
        ("POST", "localhost:8000", "https://app.example", None, "text/plain", ("https://app.example",), True),
        ("POST", "localhost:8000", "https://other.example", None, "application/json", ("https://app.example",), True),
        ("POST", "localhost:8000", "https://any.example", None, "application/vnd.x+json", ("*",), False),
    ],
)  # fmt: skip
def test_browser_problem(
    method: str,
    host: str,
    origin: str | None,
    site: str | None,
    ctype: str | None,
    cors: tuple[str, ...],
    refused: bool,
) -> None:
    problem = browser_problem(
        method, host=host, origin=origin, fetch_site=site, content_type=ctype, cors_origins=cors, hosts=HOSTS
    )
    assert (problem is not None) is refused, problem


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("http://localhost:8000", "localhost:8000", True),
        ("https://localhost:8000", "localhost:8000", True),
        ("http://[::1]:8000", "localhost:8000", True),
        ("http://evil.example:8000", "evil.example:8000", True),  # same origin; the Host check refuses it
        ("http://localhost", "localhost:8000", False),
        ("file://", "localhost:8000", False),
        ("http://localhost:8000/path", "localhost:8000", False),
    ],
)
def test_origin_allowed(origin: str, host: str, allowed: bool) -> None:
    assert origin_allowed(origin, host, (), HOSTS) is allowed


@pytest.mark.parametrize(
    ("header", "hosts", "allowed"),
    [
        ("localhost:8000", HOSTS, True),
        ("127.0.0.1", HOSTS, True),
        ("[::1]:8000", HOSTS, True),
        ("LOCALHOST:8000", HOSTS, True),
        ("evil.example:8000", HOSTS, False),
        ("127.0.0.1.evil.example", HOSTS, False),
        (None, HOSTS, True),
        ("nanoserve:8000", frozenset(allowed_hosts("127.0.0.1", extra=["nanoserve"])), True),
        ("anything:1", frozenset(allowed_hosts("127.0.0.1", extra=["*"])), True),
    ],
)
def test_host_allowed(header: str | None, hosts: frozenset[str], allowed: bool) -> None:
    assert host_allowed(header, hosts) is allowed


def test_host_parsing() -> None:
    assert strip_port("[::1]:8000") == "[::1]"
    assert strip_port("Example.COM:80") == "example.com"
    assert origin_host("http://[::1]:8000") == "[::1]"
    assert origin_host("null") is None
    assert [is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost", "0.0.0.0", "10.0.0.1")] == [
        True, True, True, True, False, False,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("host", "required", "insecure", "refused"),
    [
        ("127.0.0.1", False, False, False),
        ("localhost", False, False, False),
        ("0.0.0.0", False, False, True),
        ("::", False, False, True),
        ("nano.lan", False, False, True),
        ("0.0.0.0", True, False, False),
        ("0.0.0.0", False, True, False),
    ],
)
def test_exposure_problem(host: str, required: bool, insecure: bool, refused: bool) -> None:
    problem = exposure_problem(host, auth_required=required, insecure_no_auth=insecure)
    assert (problem is not None) is refused
    if problem:
        assert "--insecure-no-auth" in problem
