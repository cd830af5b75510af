"""Which Host names mean this server, and whether a Host or Origin header names one (pure).

DNS rebinding: a web page must not reach a local server through a hostname it controls, so the
Host header must name this machine: a loopback name, the configured ``host``, or, when bound to
every interface (0.0.0.0 / ::), one of this machine's addresses or its hostname; plus the names
the config allows (``allowed_hosts``, ``$NANOSERVE_ALLOWED_HOSTS``: compose service names, a
reverse proxy's public name). ``*`` among them accepts any Host.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import psutil

LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "[::]", "", "*")
ANY = "*"


def as_host(address: str) -> str:
    """An address as it appears in a Host header (IPv6 in brackets, without a zone), lower case."""
    address = address.strip().lower().split("%", 1)[0]
    if ":" in address and not address.startswith("["):
        return f"[{address}]"
    return address


def allowed_hosts(
    bind_host: str, local_addresses: Iterable[str] = (), extra: Iterable[str] = ()
) -> list[str]:
    """The host names a request may use (pure): loopback, the bound host (or the machine's own
    addresses when bound to a wildcard), and the configured extras."""
    names = list(LOOPBACK)
    bound = local_addresses if bind_host in WILDCARDS else [bind_host]
    for name in [*bound, *extra]:
        host = ANY if name.strip() == ANY else as_host(name)
        if host and host not in names:
            names.append(host)
    return names


def machine_addresses() -> list[str]:
    """This machine's hostname and interface addresses (no DNS lookup)."""
    addresses = [socket.gethostname()]
    for interface in psutil.net_if_addrs().values():
        addresses += [a.address for a in interface if a.family in (socket.AF_INET, socket.AF_INET6)]
    return addresses


def is_loopback(bind_host: str) -> bool:
    """Whether binding to ``bind_host`` keeps the server on this machine."""
    host = bind_host.strip().lower().strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def strip_port(host: str) -> str:
    """``example.com:8000`` → ``example.com``; ``[::1]:8000`` → ``[::1]``."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(header: str | None, hosts: Iterable[str]) -> bool:
    """Whether a Host header names this server (a request without one is not a browser's)."""
    if header is None:
        return True
    allowed = set(hosts)
    return ANY in allowed or strip_port(header) in allowed


def origin_host(origin: str) -> str | None:
    """The host of an ``Origin`` header (``http(s)://name[:port]``), or None for ``null`` and
    anything that is not a web origin."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        return None
    return strip_port(parts.netloc)
