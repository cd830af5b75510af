"""The principal of the request being served, for the layers below the middleware.

The middleware makes it current; the proxy asks ``check_model`` before sending to a model, and
the RAG pipeline's calls to the gateway's own ``/v1`` carry ``internal_headers()``: the
gateway's internal credential and the name of the key that asked, so their tokens are charged to
it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar

from nanoserve.auth.policy import Principal, model_allowed
from nanoserve.errors import Forbidden

ON_BEHALF_OF = "x-nanoserve-on-behalf-of"

_current: ContextVar[Principal | None] = ContextVar("nanoserve_principal", default=None)


def current_principal() -> Principal | None:
    return _current.get()


def check_model(names: Sequence[str]) -> None:
    """Raise 403 unless the current key may use the model known by ``names`` (id first)."""
    principal = _current.get()
    if not model_allowed(principal, tuple(names)):
        raise Forbidden(
            f"The API key '{principal.name}' may not use the model '{names[0]}'",  # type: ignore[union-attr]
            param="model",
        )


class InternalCredential:
    """The gateway's credential for calls to itself (random per process, never stored)."""

    def __init__(self, secret: str):
        self.secret = secret

    def headers(self) -> dict[str, str]:
        principal = _current.get()
        headers = {"authorization": f"Bearer {self.secret}"}
        if principal is not None:
            headers[ON_BEHALF_OF] = principal.name
        return headers
