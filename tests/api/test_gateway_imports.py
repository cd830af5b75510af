"""The gateway process never loads an engine.

After a real gateway has served chat and embeddings with the real default models (each in its
worker), its ``sys.modules`` holds no engine library (llama_cpp, torch, sentence_transformers) and
no engine or worker code. The import contract (pyproject.toml, ``make lint``) checks the source;
this checks the running process, including what libraries and ``importlib`` bring in.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from gateway import Gateway, wait_until

# ray: only a config with a `cluster` section loads it (docs/cluster.md)
FORBIDDEN = ("llama_cpp", "torch", "sentence_transformers", "nanoserve.engines", "nanoserve.worker", "ray")

# ``nanoserve serve`` as ``python -m nanoserve`` runs it, plus a SIGUSR1 handler (a signal nanoserve
# leaves alone) that writes the names in sys.modules to the file given as the first argument.
LAUNCHER = """
import json, os, signal, sys

out = sys.argv.pop(1)

def dump(signum, frame):
    with open(out + ".tmp", "w") as f:
        json.dump(sorted(sys.modules), f)
    os.replace(out + ".tmp", out)

signal.signal(signal.SIGUSR1, dump)
from nanoserve.cli.main import main
main()
"""


def forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]


HI = [{"role": "user", "content": "Hi"}]
CHAT = {"model": "smollm2:135m", "messages": HI, "max_tokens": 4}
OLLAMA_CHAT = {"model": "smollm2:135m", "messages": HI, "stream": False, "options": {"num_predict": 4}}
EMBED = {"model": "all-minilm:l6-v2", "input": "hello"}


def test_gateway_process_imports_no_engine_nor_worker(tmp_path: Path) -> None:
    out = tmp_path / "modules.json"
    gw = Gateway(tmp_path / "gateway", launcher=[sys.executable, "-c", LAUNCHER, str(out)])
    try:
        with gw.client() as http:
            chat = http.post("/v1/chat/completions", json=CHAT)
            assert chat.status_code == 200, chat.text
            assert chat.json()["usage"]["completion_tokens"] > 0
            with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as stream:
                assert stream.status_code == 200
                assert "data: [DONE]" in stream.read().decode()
            ollama = http.post("/api/chat", json=OLLAMA_CHAT)
            assert ollama.status_code == 200, ollama.text
            emb = http.post("/v1/embeddings", json=EMBED)
            assert emb.status_code == 200, emb.text
            assert len(emb.json()["data"][0]["embedding"]) == 384
            assert http.get("/metrics").status_code == 200
        assert len(gw.worker_pids()) >= 2  # the models ran in workers, not in the gateway
        gw.proc.send_signal(signal.SIGUSR1)
        assert wait_until(out.exists, timeout=10), gw.log()
    finally:
        gw.stop()
    modules = json.loads(out.read_text())
    assert {"nanoserve.api.app", "nanoserve.wire.client"} <= set(modules)  # this is the gateway
    assert sorted(forbidden(modules)) == []
