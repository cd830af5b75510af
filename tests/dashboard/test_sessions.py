"""The dashboard's session cookie: the id only, never the key; expiry; logout."""

from __future__ import annotations

from nanoserve.auth.sessions import COOKIE, Sessions, clear_cookie_header, session_id, set_cookie_header


def test_a_session_names_its_key_until_closed() -> None:
    sessions = Sessions()
    sid = sessions.open("the-key")
    header = f"other=1; {COOKIE}={sid}"
    assert sessions.token(header) == "the-key"
    assert "the-key" not in set_cookie_header(sid, secure=False)
    sessions.close(header)
    assert sessions.token(header) is None


def test_an_expired_or_unknown_session_is_no_one() -> None:
    sessions = Sessions(ttl=-1)
    sid = sessions.open("k")
    assert sessions.token(f"{COOKIE}={sid}") is None
    assert Sessions().token(f"{COOKIE}=made-up") is None
    assert session_id('bad "cookie; ; =') is None and session_id(None) is None


def test_cookie_flags() -> None:
    header = set_cookie_header("abc", secure=True)
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/", "Secure"):
        assert flag in header
    assert "Max-Age=0" in clear_cookie_header()
