"""Models from a hub (issue 23): ``source: hf:...`` pulled through ``huggingface_hub`` from a hub on
loopback (``HF_ENDPOINT``), with Ollama's progress, a download cut midway and resumed, a checksum
mismatch refused, and the pulled weights (the real default models) then served."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from nanoserve.config import default_models
from nanoserve.errors import ConfigError, PullFailed
from nanoserve.models import hub
from nanoserve.sources import resolve_source
from tests.gateway import Gateway
from tests.hub_server import Hub

GGUF = resolve_source(default_models()[0].source or "")
MINILM = resolve_source(default_models()[1].source or "")
# bytes of the GGUF's first download before the connection breaks: past huggingface_hub's first
# 10 MB chunk, the part it keeps and resumes after
CUT_AT = 25_000_000


@pytest.fixture(scope="module")
def loopback_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    broken = tmp_path_factory.mktemp("broken") / "bad.gguf"
    broken.write_bytes(b"GGUF" + bytes(4096))
    minilm = {p.relative_to(MINILM).as_posix(): p for p in MINILM.rglob("*") if p.is_file()}
    hub_server = Hub(
        {
            "team/smol": {"smollm2.gguf": GGUF},
            "team/minilm": minilm,
            "team/broken": {"bad.gguf": broken},
            "team/quants": {"a.Q4_0.gguf": broken, "a.Q8_0.gguf": broken},
        },
        cut_after={"smollm2.gguf": CUT_AT},
        wrong_sha={"bad.gguf"},
    )
    yield hub_server
    hub_server.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, loopback_hub: Hub) -> Iterator[Gateway]:
    config = {
        "models": [
            {"id": "smol", "source": "hf:team/smol/smollm2.gguf", "context_length": 512, "parallel": 2}
        ],
        "allow_pull": True,
    }
    env = {"HF_ENDPOINT": loopback_hub.url, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0"}
    gw = Gateway(tmp_path_factory.mktemp("hub"), config, env=env)
    try:
        yield gw
    finally:
        gw.stop()


def test_a_model_not_pulled_yet_is_named_by_ready_and_a_404(gateway: Gateway) -> None:
    ready = httpx.get(gateway.url + "/ready", timeout=10)
    assert ready.status_code == 503 and "not pulled yet" in ready.json()["models"]["smol"]
    chat = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "smol", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        timeout=30,
    )
    assert chat.status_code == 404 and chat.json()["error"]["code"] == "model_not_pulled"


def test_pull_streams_progress_resumes_a_cut_download_then_serves_chat(
    gateway: Gateway, loopback_hub: Hub
) -> None:
    client = ollama.Client(host=gateway.url)
    events = list(client.pull("smol", stream=True))
    statuses = [e.status for e in events]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert "verifying sha256 digest" in statuses
    progress = [e for e in events if e.digest]
    assert progress[-1].completed == progress[-1].total == GGUF.stat().st_size
    assert progress[-1].digest == "sha256:" + loopback_hub.files["team/smol"]["smollm2.gguf"].sha256
    ranges = [r for method, path, r in loopback_hub.requests if method == "GET" and "smollm2" in path]
    assert ranges[0] is None and ranges[1] is not None  # cut, then resumed from what it had
    assert 0 < int(ranges[1].removeprefix("bytes=").rstrip("-")) <= CUT_AT

    assert httpx.get(gateway.url + "/ready", timeout=10).status_code == 200
    reply = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused").chat.completions.create(
        model="smol", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0
    )
    assert reply.choices[0].message.content
    again = client.pull("smol")  # already there: nothing downloaded again
    assert again.status == "success"
    assert len([r for m, p, r in loopback_hub.requests if m == "GET" and "smollm2" in p]) == 2


def test_a_checksum_mismatch_is_refused_and_nothing_kept(gateway: Gateway) -> None:
    resp = httpx.post(
        gateway.url + "/api/pull", json={"model": "hf:team/broken/bad.gguf", "stream": False}, timeout=60
    )
    assert resp.status_code == 502 and "checksum" in resp.json()["error"]
    assert not list((gateway.data_dir / "hub").rglob("bad.gguf"))
    with httpx.stream(
        "POST", gateway.url + "/api/pull", json={"model": "hf:team/broken/bad.gguf"}, timeout=60
    ) as r:
        lines = list(r.iter_lines())
    assert '"pulling manifest"' in lines[0] and "checksum" in lines[-1] and '"error"' in lines[-1]
    assert "hf:team/broken/bad.gguf" not in httpx.get(gateway.url + "/v1/models", timeout=10).text


def test_bad_names_are_4xx(gateway: Gateway) -> None:
    unknown = httpx.post(gateway.url + "/api/pull", json={"model": "llama3"}, timeout=10)
    assert unknown.status_code == 404 and "hf:" in unknown.json()["error"]
    several = httpx.post(
        gateway.url + "/api/pull", json={"model": "hf:team/quants", "stream": False}, timeout=30
    )
    assert several.status_code == 400 and "a.Q8_0.gguf" in several.json()["error"]
    malformed = httpx.post(gateway.url + "/api/pull", json={"model": "hf:../etc"}, timeout=10)
    assert malformed.status_code in (400, 404)
    missing = httpx.post(
        gateway.url + "/api/pull", json={"model": "hf:team/nothing/x.gguf", "stream": False}, timeout=30
    )
    assert missing.status_code == 502 and "404" in missing.json()["error"]


def test_cli_pulls_a_repository_which_then_serves_embeddings(gateway: Gateway) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nanoserve", "pull", "hf:team/minilm", "--url", gateway.url],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "success" in done.stderr and "B/s" in done.stderr  # statuses and tqdm's progress bars
    vectors = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused").embeddings.create(
        model="hf:team/minilm", input=["a pulled embedding model"]
    )
    assert len(vectors.data[0].embedding) == 384


def test_hub_references_parse_and_offline_lookups(tmp_path: Path) -> None:
    ref = hub.HubRef.parse("hf:org/repo/sub/model.gguf@v1.0")
    assert (ref.repo, ref.filename, ref.revision) == ("org/repo", "sub/model.gguf", "v1.0")
    assert str(ref) == "hf:org/repo/sub/model.gguf@v1.0"
    assert hub.HubRef.parse("hf:org/repo").filename is None
    for bad in ("hf:org", "hf:/repo", "hf:org/repo/../x", "hf:org/re po", "pkg:x/y"):
        with pytest.raises(ConfigError):
            hub.HubRef.parse(bad)
    assert hub.cached_path(ref, tmp_path) is None
    with pytest.raises(ConfigError, match="not pulled yet"):
        resolve_source("hf:org/repo/model.gguf", tmp_path)


def test_offline_mode_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PullFailed, match="offline"):
        hub.pull(hub.HubRef.parse("hf:org/repo/model.gguf"), tmp_path)
