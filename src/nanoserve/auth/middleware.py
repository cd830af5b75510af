"""The gate in front of every route (pure ASGI): Host, Origin, CORS, keys, scopes, limits, usage.

Order per request: the Host must name this server (421); a CORS preflight is answered before any
key is asked for; a browser's request must come from this origin or a CORS origin, and must be
JSON if it changes state (403); the key must be live and hold the route's scope (401/403); its
limits must have room (429 + Retry-After). Then the request runs with its principal current
(``context.py``), and when the response has ended its tokens are charged to the key.

Errors are rendered by ``render(path, error)`` in the route's dialect (OpenAI's body, Ollama's
under ``/api/``), given by ``create_app``.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nanoserve.auth import context
from nanoserve.auth.hosts import WILDCARDS, allowed_hosts, host_allowed, machine_addresses
from nanoserve.auth.limits import Limiter
from nanoserve.auth.policy import (
    ALL_SCOPES,
    Principal,
    authorize,
    browser_problem,
    origin_allowed,
    required_scope,
    token_from,
)
from nanoserve.auth.sessions import Sessions
from nanoserve.auth.store import KeyStore
from nanoserve.auth.usage import KeyUsage
from nanoserve.config import Settings
from nanoserve.errors import ConfigError, Forbidden, MisdirectedRequest, NanoserveError, Unauthorized
from nanoserve.observability import requests

log = logging.getLogger("nanoserve.auth")
audit = logging.getLogger("nanoserve.audit")

Render = Callable[[str, NanoserveError], Response]
BOOTSTRAP_NAME = "bootstrap"
INTERNAL_NAME = "internal"
MIN_BOOTSTRAP_CHARS = 20
_WANTED = {
    b"host",
    b"origin",
    b"sec-fetch-site",
    b"content-type",
    b"authorization",
    b"x-api-key",
    context.ON_BEHALF_OF.encode(),
    b"access-control-request-method",
    b"cookie",
}
_EXPOSE = "Retry-After, X-Request-Id"


class Gate:
    """What the middleware decides with, built once by ``create_app``."""

    def __init__(self, settings: Settings, *, registry: CollectorRegistry | None = None):
        self.required = settings.auth.required
        self.data_dir = settings.data_dir
        self._store: KeyStore | None = None  # opened on first use: create_app touches no disk
        local = machine_addresses() if settings.host in WILDCARDS else []
        self.hosts = frozenset(allowed_hosts(settings.host, local, settings.allowed_hosts))
        self.cors = settings.cors
        self.cors_origins = tuple(o.rstrip("/") for o in settings.cors.allow_origins)
        self.limiter = Limiter()
        self.sessions = Sessions()  # the dashboard's login cookie (sessions.py)
        self.usage = KeyUsage(registry)
        self.internal = context.InternalCredential(secrets.token_urlsafe(32))
        self.bootstrap: str | None = None
        env = settings.auth.bootstrap_key_env
        if env and (value := os.environ.get(env, "").strip()):
            if len(value) < MIN_BOOTSTRAP_CHARS:
                raise ConfigError(
                    f"${env} is too short for a key (at least {MIN_BOOTSTRAP_CHARS} characters)"
                )
            self.bootstrap = value

    @property
    def store(self) -> KeyStore:
        if self._store is None:
            self._store = KeyStore.in_dir(self.data_dir)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def principal(self, token: str | None, on_behalf_of: str | None) -> Principal | None:
        """Who the token is, or None (no token, or one that is not a live key)."""
        if token is None:
            return None
        if hmac.compare_digest(token.encode(), self.internal.secret.encode()):
            if on_behalf_of:
                asked = self._named(on_behalf_of)
                if asked is not None:
                    return Principal(asked.name, asked.scopes, asked.models, asked.limits, internal=True)
            return Principal(INTERNAL_NAME, ALL_SCOPES, internal=True)
        if self.bootstrap is not None and hmac.compare_digest(token.encode(), self.bootstrap.encode()):
            return Principal(BOOTSTRAP_NAME, ALL_SCOPES)
        key = self.store.lookup(token)
        return None if key is None else Principal.of(key)

    def _named(self, name: str) -> Principal | None:
        if name == BOOTSTRAP_NAME and self.bootstrap is not None:
            return Principal(BOOTSTRAP_NAME, ALL_SCOPES)
        key = self.store.by_name(name)
        return None if key is None else Principal.of(key)


class AuthMiddleware:
    def __init__(self, app: ASGIApp, gate: Gate, render: Render):
        self.app = app
        self.gate = gate
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        gate = self.gate
        path: str = scope["path"]
        method: str = scope.get("method", "GET")
        h: dict[bytes, str] = {}
        for name, value in scope["headers"]:
            if name in _WANTED:
                h[name] = value.decode("latin-1")
        host, origin = h.get(b"host"), h.get(b"origin")

        if not host_allowed(host, gate.hosts):
            error: NanoserveError = MisdirectedRequest(
                f"Host {host!r} is not a name of this server (add it to allowed_hosts)", param="host"
            )
            return await self._refuse(path, error, scope, receive, send)
        cors_origin = self._cors_origin(origin)
        if method == "OPTIONS" and origin is not None and b"access-control-request-method" in h:
            return await self._preflight(path, cors_origin, h, scope, receive, send)
        problem = browser_problem(
            method,
            host=host,
            origin=origin,
            fetch_site=h.get(b"sec-fetch-site"),
            content_type=h.get(b"content-type"),
            cors_origins=gate.cors_origins,
            hosts=gate.hosts,
        )
        if problem is not None:
            return await self._refuse(path, problem, scope, receive, send)

        need = required_scope(method, path)
        token = token_from(h.get(b"authorization"), h.get(b"x-api-key"))
        if (
            token is None
            and b"cookie" in h
            and (origin is None or origin_allowed(origin, host, (), gate.hosts))
        ):
            token = gate.sessions.token(h[b"cookie"])  # the dashboard's session: this origin only
        principal = None if need == "open" else gate.principal(token, h.get(context.ON_BEHALF_OF.encode()))
        if principal is None and token is not None and gate.required and need != "open":
            error = Unauthorized("Invalid or revoked API key")
            return await self._refuse(path, error, scope, receive, send)
        if (denied := authorize(principal, need, required=gate.required)) is not None:
            return await self._refuse(path, denied, scope, receive, send)
        if principal is None:
            return await self.app(scope, receive, self._with_cors(send, cors_origin))

        limited = principal.limits.rpm or principal.limits.tpm or principal.limits.max_concurrent
        if limited and not principal.internal:
            refused = gate.limiter.enter(principal.name, principal.limits, time.monotonic())
            if refused is not None:
                return await self._refuse(path, refused, scope, receive, send)
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token_var = context._current.set(principal)
        try:
            await self.app(scope, receive, self._with_cors(send_status, cors_origin))
        finally:
            context._current.reset(token_var)
            if limited and not principal.internal:
                gate.limiter.leave(principal.name)
            self._account(principal, need, method, path, status)

    def _account(self, principal: Principal, need: str, method: str, path: str, status: int) -> None:
        if principal.name == INTERNAL_NAME:
            return
        record = requests.current()
        model = record.model if record is not None else ""
        prompt = record.prompt_tokens if record is not None else None
        completion = record.completion_tokens if record is not None else None
        self.gate.usage.record(principal.name, model, prompt, completion)
        if principal.limits.tpm:
            self.gate.limiter.charge(principal.name, (prompt or 0) + (completion or 0), time.monotonic())
        if need == "admin" and (method not in ("GET", "HEAD") or path.startswith("/admin/")):
            audit.info("admin action: key=%s %s %s -> %s", principal.name, method, path, status or "-")

    def _cors_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for this Origin, or None (not a CORS origin)."""
        if origin is None or not self.gate.cors_origins:
            return None
        if "*" in self.gate.cors_origins:
            return "*"
        clean = origin.strip().rstrip("/")
        return clean if clean in self.gate.cors_origins else None

    def _with_cors(self, send: Send, allow_origin: str | None) -> Send:
        if allow_origin is None:
            return send

        async def send_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"access-control-allow-origin", allow_origin.encode()),
                    (b"access-control-expose-headers", _EXPOSE.encode()),
                    (b"vary", b"Origin"),
                ]
            await send(message)

        return send_cors

    async def _preflight(
        self,
        path: str,
        allow_origin: str | None,
        h: dict[bytes, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        cors = self.gate.cors
        wanted = h.get(b"access-control-request-method", "").upper()
        if allow_origin is None or wanted not in {m.upper() for m in cors.allow_methods}:
            error = Forbidden(f"CORS preflight from {h.get(b'origin', '')[:100]!r} for {wanted} refused")
            return await self._refuse(path, error, scope, receive, send)
        headers = {
            "access-control-allow-origin": allow_origin,
            "access-control-allow-methods": ", ".join(cors.allow_methods),
            "access-control-allow-headers": ", ".join(cors.allow_headers),
            "access-control-max-age": str(cors.max_age),
            "vary": "Origin",
        }
        await Response(status_code=204, headers=headers)(scope, receive, send)

    async def _refuse(
        self, path: str, error: NanoserveError, scope: Scope, receive: Receive, send: Send
    ) -> None:
        requests.note_error(error)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = self.render(path, error)
        if error.status == 401:
            response.headers["www-authenticate"] = "Bearer"
        await response(scope, receive, send)
