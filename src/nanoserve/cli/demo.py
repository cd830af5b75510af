"""``nanoserve demo cycle``: seed 003's provisioning cycle, step by step, on a gateway of its own.

create (scale 0 → 2) → ready (health) → route (requests spread, one session pinned) → process
(answers) → drain → destroy (scale 2 → 0, memory confirmed released), each step printed with
its time and the model's queue and running figures. The mock engine by default; ``--real`` runs
the default chat model through the same code path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

MODEL = "cycle"


def _config(real: bool) -> dict[str, Any]:
    if real:
        from nanoserve.config import default_models

        model = default_models()[0].model_dump(mode="json")
        model.update(id=MODEL, aliases=[], parallel=4, context_length=1024)
    else:
        model = {"id": MODEL, "engine": "mock", "kind": "chat", "options": {"tokens_per_second": 200}}
    model["replicas"] = {"max": 2}
    return {"models": [model]}


@contextmanager
def _gateway(real: bool) -> Iterator[str]:
    import httpx
    import yaml

    from nanoserve.orchestrator.handles.command import free_port

    with tempfile.TemporaryDirectory(prefix="nanoserve-cycle-") as tmp:
        data = Path(tmp)
        (data / "config.yaml").write_text(yaml.safe_dump(_config(real)))
        port = free_port()
        cmd = [sys.executable, "-m", "nanoserve", "serve", "--port", str(port), "--data-dir", tmp]
        cmd += ["--config", str(data / "config.yaml"), "--log-level", "warning"]
        with (data / "gateway.log").open("wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=dict(os.environ, NANOSERVE_HOME=tmp))
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise click.ClickException(
                        f"the gateway did not start:\n{(data / 'gateway.log').read_text()[-2000:]}"
                    )
                time.sleep(0.1)
            yield url
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


class Cycle:
    def __init__(self, url: str):
        import httpx

        self.http = httpx.Client(base_url=url, timeout=300)
        self.started = time.perf_counter()

    def status(self) -> dict[str, Any]:
        return next(m for m in self.http.get("/models/status").json()["models"] if m["id"] == MODEL)

    def step(self, name: str, began: float, detail: str) -> None:
        model = self.status()
        replicas = " ".join(f"#{r['replica']}:{r['state']}" for r in model["replicas"])
        click.echo(
            f"{name:<8} {time.perf_counter() - began:7.2f} s   in flight {model['in_flight']:>2}   "
            f"queued {model['queued']:>2}   replicas {replicas}   {detail}"
        )

    def scale(self, replicas: int) -> dict[str, Any]:
        answer = self.http.post("/models/scale", json={"model": MODEL, "replicas": replicas})
        if answer.status_code != 200:
            raise click.ClickException(f"scale to {replicas}: {answer.status_code} {answer.text}")
        return answer.json()

    def chat(self, text: str, session: str | None = None, max_tokens: int = 16) -> str:
        headers = {"X-Session-Id": session} if session else {}
        body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}
        answer = self.http.post("/v1/chat/completions", json=body, headers=headers)
        if answer.status_code != 200:
            raise click.ClickException(f"chat: {answer.status_code} {answer.text}")
        return str(answer.json()["choices"][0]["message"]["content"])

    def served(self) -> dict[int, int]:
        return {r["replica"]: r["requests_total"] for r in self.status()["replicas"]}


def run_cycle(url: str, requests: int) -> dict[str, Any]:
    from nanoserve.orchestrator.memory import alive

    cycle = Cycle(url)
    report: dict[str, Any] = {}
    began = time.perf_counter()
    created = cycle.scale(2)
    pids = [r["pid"] for r in created["replicas"]]
    cycle.step("create", began, f"2 replicas, pids {pids}")

    began = time.perf_counter()
    health = cycle.http.get("/ready").json()
    cycle.step("ready", began, f"/ready: {health.get('status')}")

    began = time.perf_counter()
    before = cycle.served()
    answers: list[str] = []
    threads = [
        threading.Thread(target=lambda i=i: answers.append(cycle.chat(f"Question {i}?")))
        for i in range(requests)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spread = {i: n - before.get(i, 0) for i, n in cycle.served().items()}
    session_before = cycle.served()
    for _ in range(4):
        cycle.chat("Same session again?", session="demo-session")
    pinned = {i: n - session_before.get(i, 0) for i, n in cycle.served().items()}
    cycle.step("route", began, f"spread {spread}; one session: {pinned}")
    report.update(spread=spread, session=pinned)

    began = time.perf_counter()
    sample = cycle.chat("Say hello in three words.", max_tokens=12)
    cycle.step("process", began, f"answer: {sample!r}")
    report["answers"] = len(answers) + 5

    began = time.perf_counter()
    stream_done = threading.Event()

    def long_request() -> None:
        cycle.chat("A longer answer, please.", max_tokens=48)
        stream_done.set()

    worker = threading.Thread(target=long_request)
    worker.start()
    time.sleep(0.2)
    cycle.scale(1)  # replica 1 drains: takes nothing new, finishes what it has
    worker.join()
    cycle.step("drain", began, f"in-flight request finished: {stream_done.is_set()}")

    began = time.perf_counter()
    destroyed = cycle.scale(0)
    gone = alive(pid for pid in pids if pid)
    cycle.step("destroy", began, f"state {destroyed['state']}; processes left: {gone or 'none'}")
    report.update(released=not gone, total_seconds=round(time.perf_counter() - cycle.started, 2))
    return report


@click.group()
def demo() -> None:
    """Demonstrations that run a gateway of their own."""


@demo.command()
@click.option("--real", is_flag=True, help="The default chat model instead of the mock engine.")
@click.option("--requests", default=8, show_default=True, help="Concurrent requests in the route step.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON at the end.")
def cycle(real: bool, requests: int, as_json: bool) -> None:
    """Create, route, process, drain and destroy two replicas of a model (seed 003's cycle)."""
    with _gateway(real) as url:
        report = run_cycle(url, requests)
    if as_json:
        click.echo(json.dumps(report))
    if not report["released"]:
        raise click.ClickException("processes of the destroyed replicas are still running")
