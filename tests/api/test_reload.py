"""Config reload without a restart (issue 16): ``POST /admin/reload`` and SIGHUP re-read the file
the gateway was started with; models are added, removed, changed in place or replaced, and a
stream that is running when it happens goes on to its end."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.gateway import Gateway, pid_alive, wait_until


def mock(id: str, **fields: Any) -> dict[str, Any]:
    return {"id": id, "engine": "mock", "kind": "chat", **fields}


BEFORE: dict[str, Any] = {
    "models": [
        mock("kept"),
        mock("tuned", keep_alive=300),
        mock("swapped", options={"tokens_per_second": 40}),
        mock("dropped"),
    ]
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("reload"), BEFORE)
    try:
        yield gw
    finally:
        gw.stop()


def write_config(gw: Gateway, config: dict[str, Any]) -> None:
    (gw.data_dir / "config.yaml").write_text(yaml.safe_dump(config))


def model_ids(gw: Gateway) -> list[str]:
    return [m["id"] for m in httpx.get(gw.url + "/v1/models", timeout=10).json()["data"]]


def status_of(gw: Gateway, model: str) -> dict[str, Any]:
    models = httpx.get(gw.url + "/models/status", timeout=10).json()["models"]
    return next(m for m in models if m["id"] == model)


def test_reload_adds_removes_updates_and_replaces_while_a_stream_runs(gateway: Gateway) -> None:
    for model in ("kept", "tuned", "swapped"):
        httpx.post(gateway.url + "/models/load", json={"model": model}, timeout=60).raise_for_status()
    kept_pid, tuned_pid, old_pid = (status_of(gateway, m)["pid"] for m in ("kept", "tuned", "swapped"))

    # a stream on the model whose backend the reload replaces: ~3 s at 40 tokens/s
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    streamed: list[str] = []
    finish: list[str | None] = []
    first = threading.Event()

    def stream() -> None:
        for chunk in client.completions.create(model="swapped", prompt="x", max_tokens=120, stream=True):
            streamed.append(chunk.choices[0].text)
            first.set()
            finish.append(chunk.choices[0].finish_reason)

    runner = threading.Thread(target=stream)
    runner.start()
    assert first.wait(20)

    after = {
        "models": [
            mock("kept"),
            mock("tuned", keep_alive=-1, priority=5, aliases=["tuned-alias"]),
            mock("swapped", options={"reply": "new config"}),
            mock("added"),
        ]
    }
    write_config(gateway, after)
    resp = httpx.post(gateway.url + "/admin/reload", timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "added": ["added"],
        "removed": ["dropped"],
        "replaced": ["swapped"],
        "updated": ["tuned"],
        "unchanged": ["kept"],
        "restart_required": [],
    }

    runner.join(30)
    assert finish[-1] == "length" and len(streamed) >= 120  # the running stream went on to its end
    assert old_pid is not None and wait_until(lambda: not pid_alive(old_pid), timeout=15)

    assert sorted(model_ids(gateway)) == ["added", "kept", "swapped", "tuned"]
    missing = httpx.post(
        gateway.url + "/v1/completions", json={"model": "dropped", "prompt": "x"}, timeout=10
    )
    assert missing.status_code == 404
    new = client.completions.create(model="swapped", prompt="x", max_tokens=5)
    assert new.choices[0].text.startswith("new config")
    assert client.completions.create(model="added", prompt="x", max_tokens=3).choices[0].text

    tuned = status_of(gateway, "tuned")
    assert tuned["pid"] == tuned_pid and tuned["priority"] == 5 and tuned["keep_alive"] == -1
    assert client.completions.create(model="tuned-alias", prompt="x", max_tokens=2).model
    assert status_of(gateway, "kept")["pid"] == kept_pid  # untouched


def test_a_config_that_does_not_validate_changes_nothing(gateway: Gateway) -> None:
    before = model_ids(gateway)
    write_config(gateway, {"models": [mock("a"), mock("a")]})
    resp = httpx.post(gateway.url + "/admin/reload", timeout=30)
    assert resp.status_code == 400
    assert "not reloaded" in resp.json()["error"]["message"]
    write_config(gateway, {"models": [mock("x", engine="remote", options={"base_url": "not a url"})]})
    resp = httpx.post(gateway.url + "/admin/reload", timeout=30)
    assert resp.status_code == 400 and "base_url" in resp.json()["error"]["message"]
    assert model_ids(gateway) == before


def test_sighup_reloads_and_reports_settings_that_need_a_restart(gateway: Gateway) -> None:
    write_config(gateway, {"models": [mock("kept"), mock("after-sighup")], "memory": {"budget_mib": 4096}})
    gateway.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "after-sighup" in model_ids(gateway), timeout=10)
    assert "memory" in gateway.log()  # restart_required, in the log line of the reload
    resp = httpx.post(gateway.url + "/admin/reload", timeout=30).json()
    assert resp["restart_required"] == ["memory"] and resp["unchanged"] == ["kept", "after-sighup"]
    assert gateway.proc.poll() is None
