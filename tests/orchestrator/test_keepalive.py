"""The gateway closes idle worker connections before the worker would: no request is ever sent on
a connection the worker has just timed out (that failed with "Can not write request body")."""

from __future__ import annotations

from nanoserve.wire.client import KEEPALIVE_SECONDS
from nanoserve.worker.main import WORKER_KEEPALIVE_SECONDS


def test_worker_keeps_idle_connections_longer_than_the_gateway_pool() -> None:
    assert WORKER_KEEPALIVE_SECONDS >= KEEPALIVE_SECONDS + 10
