"""Pure decisions: the scope a route needs, whether a caller may pass, whether a request comes
from a foreign web page, whether a bind address is safe without keys. No I/O; tested by tables.

Scopes (docs/security.md):

    open        /health, /ready, GET /, /api/version      no key, ever
                GET /ui... (the dashboard's static page), POST /ui/login and /ui/logout
    inference   /v1/... (chat, completions, embeddings, rerank, models, RAG query/search and reads),
                /rerank (/v1/rerank's alias),
                /api/... (Ollama's chat, generate, embed, tags, ps, show)
    documents   POST/PUT/PATCH/DELETE under /v1/rag/collections, /v1/rag/feedback
    admin       /models/..., /admin/..., /metrics, /dashboard, Ollama's pull/delete/create/copy/push
    key         any live key (/mcp: its tools call the REST API with the same key; /docs; unknown
                paths, so that a 404 does not tell a stranger which routes exist)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from nanoserve.auth.hosts import is_loopback, origin_host
from nanoserve.auth.store import ApiKey, Limits
from nanoserve.errors import Forbidden, NanoserveError, Unauthorized

Need = Literal["open", "inference", "documents", "admin", "key"]
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ALL_SCOPES = frozenset({"inference", "documents", "admin"})

# (methods or None for any, path, exact match?, need); the first match wins
ROUTE_RULES: tuple[tuple[frozenset[str] | None, str, bool, Need], ...] = (
    (None, "/health", True, "open"),
    (None, "/ready", True, "open"),
    (frozenset({"GET", "HEAD"}), "/", True, "open"),
    (frozenset({"GET", "HEAD"}), "/api/version", True, "open"),
    (frozenset({"GET", "HEAD"}), "/ui", True, "open"),  # the dashboard's page and assets: no data
    (frozenset({"GET", "HEAD"}), "/ui/", False, "open"),
    (frozenset({"POST"}), "/ui/login", True, "open"),
    (frozenset({"POST"}), "/ui/logout", True, "open"),
    (None, "/models/", False, "admin"),
    (None, "/admin/", False, "admin"),
    (None, "/metrics", True, "admin"),
    (None, "/dashboard", False, "admin"),
    *((None, f"/api/{op}", False, "admin") for op in ("pull", "delete", "create", "copy", "push", "blobs")),
    (WRITES, "/v1/rag/collections", False, "documents"),
    (None, "/v1/rag/feedback", True, "documents"),
    (None, "/v1/", False, "inference"),
    (None, "/rerank", True, "inference"),  # /v1/rerank's alias
    (None, "/api/", False, "inference"),
)


def required_scope(method: str, path: str) -> Need:
    """What a request needs to pass (``key``: any live key)."""
    for methods, prefix, exact, need in ROUTE_RULES:
        if methods is not None and method not in methods:
            continue
        if path == prefix if exact else path.startswith(prefix):
            return need
    return "key"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: a key, the bootstrap key, or the gateway itself on behalf of a key."""

    name: str
    scopes: frozenset[str]
    models: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    internal: bool = False  # the gateway's own call (RAG → /v1): charged, never limited again

    @classmethod
    def of(cls, key: ApiKey, *, internal: bool = False) -> Principal:
        return cls(key.name, key.scopes, key.models, key.limits, internal)


def authorize(principal: Principal | None, need: Need, *, required: bool) -> NanoserveError | None:
    """None if the request may pass, else the 401 or 403 to answer with."""
    if need == "open":
        return None
    if principal is None:
        if not required:
            return None
        return Unauthorized(
            "Missing or invalid API key: send it as 'Authorization: Bearer <key>' or 'x-api-key'"
        )
    if need == "key" or need in principal.scopes:
        return None
    return Forbidden(f"The API key '{principal.name}' lacks the '{need}' scope", param="scope")


def model_allowed(principal: Principal | None, names: tuple[str, ...] | list[str]) -> bool:
    """Whether the key may use a model known by ``names`` (its id and aliases)."""
    if principal is None or not principal.models:
        return True
    return any(name in principal.models for name in names)


def token_from(authorization: str | None, api_key: str | None) -> str | None:
    """The key a request carries: ``Authorization: Bearer <key>`` or ``x-api-key: <key>``."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if api_key and api_key.strip():
        return api_key.strip()
    return None


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def origin_allowed(
    origin: str,
    host: str | None,
    cors_origins: tuple[str, ...] | list[str] = (),
    hosts: frozenset[str] | set[str] = frozenset(),
) -> bool:
    """Listed for CORS (``*``: any), or this server: the Host it was sent to, or another of this
    server's names (``hosts``) on the same port. A page on another port of the same machine is
    another origin (another local app) and is refused."""
    if "*" in cors_origins or origin.strip().rstrip("/") in cors_origins:
        return True
    named = origin_host(origin)
    if named is None or host is None:
        return False
    netloc, host = urlsplit(origin.strip()).netloc.lower(), host.strip().lower()
    if netloc == host:
        return True
    return named in hosts and _port(netloc) == _port(host)


def _port(netloc: str) -> str:
    tail = netloc.rsplit("]", 1)[-1]
    return tail.rsplit(":", 1)[1] if ":" in tail else ""


def browser_problem(
    method: str,
    *,
    host: str | None,
    origin: str | None,
    fetch_site: str | None,
    content_type: str | None,
    cors_origins: tuple[str, ...] | list[str] = (),
    hosts: frozenset[str] | set[str] = frozenset(),
) -> Forbidden | None:
    """None unless a browser sent the request from a foreign page, or sent a state-changing
    request that is not JSON (a cross-site form or ``text/plain`` fetch). Requests without
    ``Origin`` and ``Sec-Fetch-Site`` (curl, SDKs, scripts) are not a browser's."""
    if origin is None and fetch_site is None:
        return None
    if origin is not None:
        if not origin_allowed(origin, host, cors_origins, hosts):
            return Forbidden(f"Cross-origin request from {origin[:100]!r} refused", param="origin")
    elif fetch_site.strip().lower() not in ("same-origin", "none"):  # type: ignore[union-attr]
        return Forbidden(f"Cross-site request refused (Sec-Fetch-Site: {fetch_site})", param="origin")
    if method in WRITES and not is_json(content_type):
        return Forbidden(
            "A browser's state-changing request must be JSON (Content-Type: application/json)",
            param="content-type",
        )
    return None


def exposure_problem(bind_host: str, *, auth_required: bool, insecure_no_auth: bool) -> str | None:
    """Why serving on ``bind_host`` is refused, or None (loopback, keys required, or the
    operator said ``--insecure-no-auth``)."""
    if is_loopback(bind_host) or auth_required or insecure_no_auth:
        return None
    return (
        f"refusing to bind {bind_host} without API keys: anyone who can reach it could use and "
        "manage every model. Set `auth: {required: true}` in the config (and create keys with "
        "`nanoserve keys create`), or pass --insecure-no-auth"
    )
