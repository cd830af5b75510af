"""Browser sessions for the dashboard: the page logs in once with an admin key and gets an
HttpOnly, SameSite=Strict cookie (a browser's EventSource cannot send an Authorization header).

The cookie holds a random session id, never the key; the session remembers the key, so every
request is checked against the key store as if it carried the key itself (a revoked key ends its
sessions at once). Sessions live in memory: a gateway restart logs everyone out.
"""

from __future__ import annotations

import secrets
import time
from http.cookies import CookieError, SimpleCookie

COOKIE = "nanoserve_session"
TTL = 12 * 3600.0  # seconds a session lasts without use
MAX_SESSIONS = 256


class Sessions:
    def __init__(self, ttl: float = TTL):
        self.ttl = ttl
        self._tokens: dict[str, tuple[str, float]] = {}  # session id -> (key, expires at, monotonic)

    def open(self, token: str) -> str:
        """A new session for ``token`` (already checked by the caller); its id for the cookie."""
        now = time.monotonic()
        self._tokens = {s: v for s, v in self._tokens.items() if v[1] > now}
        while len(self._tokens) >= MAX_SESSIONS:  # the oldest goes
            self._tokens.pop(next(iter(self._tokens)))
        session = secrets.token_urlsafe(32)
        self._tokens[session] = (token, now + self.ttl)
        return session

    def close(self, cookie_header: str | None) -> None:
        session = session_id(cookie_header)
        if session is not None:
            self._tokens.pop(session, None)

    def token(self, cookie_header: str | None) -> str | None:
        """The key of the live session the ``Cookie`` header names, or None."""
        session = session_id(cookie_header)
        if session is None:
            return None
        entry = self._tokens.get(session)
        now = time.monotonic()
        if entry is None or entry[1] <= now:
            self._tokens.pop(session, None)
            return None
        self._tokens[session] = (entry[0], now + self.ttl)
        return entry[0]


def session_id(cookie_header: str | None) -> str | None:
    if not cookie_header or COOKIE not in cookie_header:
        return None
    try:
        morsel = SimpleCookie(cookie_header).get(COOKIE)
    except CookieError:
        return None
    return morsel.value if morsel is not None and morsel.value else None


def set_cookie_header(session: str, *, secure: bool) -> str:
    flags = "; Secure" if secure else ""
    return f"{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={int(TTL)}{flags}"


def clear_cookie_header() -> str:
    return f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
