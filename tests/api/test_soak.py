"""Soak: 32 concurrent streams for minutes through the gateway: no failed request, the
gateway's and the worker's RSS grow less than 10 %, no file descriptors leak."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from tests.gateway import Gateway

SECONDS = float(os.environ.get("NANOSERVE_SOAK_SECONDS", "180"))
STREAMS = 32
CONFIG: dict[str, Any] = {
    "models": [
        {
            "id": "chat",
            "engine": "mock",
            "kind": "chat",
            "parallel": 64,
            "options": {"tokens_per_second": 200},
        }
    ]
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("soak"), CONFIG)
    try:
        yield gw
    finally:
        gw.stop()


def footprint(pids: list[int]) -> tuple[int, int]:
    procs = [psutil.Process(p) for p in pids]
    return sum(p.memory_info().rss for p in procs), sum(p.num_fds() for p in procs)


async def run_streams(url: str, until: float) -> tuple[int, list[str]]:
    done, failures = 0, []

    async def loop(client: httpx.AsyncClient, i: int) -> None:
        nonlocal done
        n = 0
        while time.monotonic() < until:
            n += 1
            body = {"model": "chat", "prompt": f"soak {i} {n}", "max_tokens": 64, "stream": True}
            async with client.stream("POST", "/v1/completions", json=body) as resp:
                data = b"".join([chunk async for chunk in resp.aiter_bytes()])
            if resp.status_code != 200 or b'"error"' in data or not data.endswith(b"data: [DONE]\n\n"):
                failures.append(f"{resp.status_code}: {data[-300:]!r}")
            done += 1

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(loop(client, i) for i in range(STREAMS)))
    return done, failures


def test_soak_32_streams(gateway: Gateway) -> None:
    httpx.post(gateway.url + "/models/load", json={"model": "chat"}, timeout=60).raise_for_status()
    pids = [gateway.proc.pid, *gateway.worker_pids()]
    # warm up (connection pools, caches), then measure
    asyncio.run(run_streams(gateway.url, time.monotonic() + 10))
    rss0, fds0 = footprint(pids)
    done, failures = asyncio.run(run_streams(gateway.url, time.monotonic() + SECONDS))
    time.sleep(1)
    rss1, fds1 = footprint(pids)
    assert not failures, failures[:5]
    assert done > STREAMS * 10
    assert rss1 < rss0 * 1.10, f"RSS grew {100 * (rss1 / rss0 - 1):.1f}% ({rss0 >> 20} -> {rss1 >> 20} MiB)"
    assert fds1 <= fds0 + 4, f"file descriptors {fds0} -> {fds1}"
