"""The pure parts of worker handles, by tables: command templates, environment, request
translation for foreign backends, remote paths, metric relabelling; and how the reaper exits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nanoserve.cli.main import cli
from nanoserve.config import ModelConfig
from nanoserve.errors import ConfigError, EngineError, UnsupportedFeature
from nanoserve.observability.exposition import with_labels
from nanoserve.orchestrator.handles import translator_for
from nanoserve.orchestrator.handles.command import REAPER, expand_env, fill_template, template_values
from nanoserve.orchestrator.handles.remote import RemoteClient
from nanoserve.orchestrator.handles.translate import ForeignRequests
from nanoserve.profiles.foreign import ForeignOptions, RemoteOptions

VALUES = {"source": "/m/a b.gguf", "port": "8081", "host": "127.0.0.1", "ctx_total": "4096"}


@pytest.mark.parametrize(
    ("template", "argv"),
    [
        (
            "llama-server -m {source} --port {port} -c {ctx_total}",
            ["llama-server", "-m", "/m/a b.gguf", "--port", "8081", "-c", "4096"],
        ),
        ("srv --listen={host}:{port}", ["srv", "--listen=127.0.0.1:8081"]),
        # JSON arguments keep their braces; quotes are shell-like, but nothing runs in a shell
        ("""srv --override '{"a": 1}' "x; rm -rf /" """, ["srv", "--override", '{"a": 1}', "x; rm -rf /"]),
        ("srv $(whoami) `id` | cat", ["srv", "$(whoami)", "`id`", "|", "cat"]),
    ],
)
def test_command_templates_fill_each_argument(template: str, argv: list[str]) -> None:
    assert fill_template(template, VALUES) == argv


@pytest.mark.parametrize(
    ("template", "error"),
    [("srv --port {prot}", "unknown placeholder {prot}"), ("srv 'unclosed", "No closing quotation")],
)
def test_bad_command_templates_name_the_problem(template: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        fill_template(template, VALUES)


def test_template_values_total_context_is_context_times_slots() -> None:
    config = ModelConfig(id="m", engine="command", context_length=1024, parallel=4, threads=2)
    values = template_values(config, 9000)
    assert values["ctx_total"] == "4096"
    assert values["port"] == "9000"
    assert values["threads"] == "2"
    assert "source" not in values  # no source configured: {source} is an unknown placeholder


def test_env_values_name_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOSERVE_TEST_TOKEN", "s3")
    assert expand_env(
        {"HF_TOKEN": "$NANOSERVE_TEST_TOKEN", "X": "plain", "Y": "${NANOSERVE_TEST_TOKEN}/b"}
    ) == {
        "HF_TOKEN": "s3",
        "X": "plain",
        "Y": "s3/b",
    }
    monkeypatch.delenv("NANOSERVE_TEST_TOKEN")
    with pytest.raises(EngineError, match="NANOSERVE_TEST_TOKEN"):
        expand_env({"HF_TOKEN": "$NANOSERVE_TEST_TOKEN"})


def _foreign(**options: Any) -> ForeignRequests:
    return ForeignRequests("peer", ForeignOptions(upstream_model="up/model", **options))


def _prepared(translator: ForeignRequests, body: dict[str, Any]) -> dict[str, Any]:
    return json.loads(translator.prepare("/v1/chat/completions", json.dumps(body).encode()))


CHAT = {"model": "peer", "messages": [{"role": "user", "content": "hi"}]}


def test_foreign_requests_get_the_upstream_name_and_no_extension_fields() -> None:
    body = {**CHAT, "keep_alive": "5m", "priority": 3, "top_k": 5, "ignore_eos": True, "return_context": True}
    assert _prepared(_foreign(), body) == {**CHAT, "model": "up/model"}


def test_declared_extensions_are_kept() -> None:
    body = {**CHAT, "top_k": 5, "ignore_eos": True, "min_p": 0.1}
    out = _prepared(_foreign(extensions=["top_k", "ignore_eos"]), body)
    assert out["top_k"] == 5 and out["ignore_eos"] is True and "min_p" not in out


TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
IMAGE = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": TOOLS}, "tools"),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"messages": [{"role": "user", "content": IMAGE}]}, "messages"),
        ({"context": [1, 2, 3]}, "context"),
    ],
)
def test_undeclared_capabilities_are_refused_not_dropped(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedFeature) as caught:
        _prepared(_foreign(), {**CHAT, **extra})
    assert caught.value.param == param and caught.value.status == 400


def test_declared_capabilities_pass_through() -> None:
    translator = _foreign(capabilities=["tools", "response_format", "vision"])
    body = {**CHAT, "tools": TOOLS, "response_format": {"type": "json_object"}}
    assert _prepared(translator, body)["tools"] == TOOLS
    assert _prepared(translator, {**CHAT, "response_format": {"type": "text"}})["response_format"]


def test_our_workers_get_the_clients_bytes() -> None:
    raw = b'{"model":"m","top_k":3}'
    assert translator_for(ModelConfig(id="m", engine="llamacpp")).prepare("/v1/completions", raw) is raw


@pytest.mark.parametrize(
    ("engine", "options", "error"),
    [
        ("command", {}, "command"),
        ("command", {"command": "x", "unknown": 1}, "unknown"),
        ("remote", {"base_url": "ftp://x"}, "http"),
        ("remote", {"base_url": "http://127.0.0.1:1/v1", "max_concurrent": 0}, "max_concurrent"),
    ],
)
def test_backend_options_are_checked_up_front(engine: str, options: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        translator_for(ModelConfig(id="m", engine=engine, options=options))


@pytest.mark.parametrize(
    ("base_url", "path", "expected"),
    [
        ("http://127.0.0.1:9/v1", "/v1/chat/completions", "/v1/chat/completions"),
        ("http://127.0.0.1:9/api/openai/v1/", "/v1/embeddings", "/api/openai/v1/embeddings"),
        ("http://127.0.0.1:9", "/v1/models", "/models"),
        ("http://127.0.0.1:9/v1", "/models", "/v1/models"),
    ],
)
def test_remote_paths_hang_off_the_base_url(base_url: str, path: str, expected: str) -> None:
    client = RemoteClient(RemoteOptions(base_url=base_url), None)
    assert client.base_url == "http://127.0.0.1:9"
    assert client.path(path) == expected


def test_foreign_metrics_merge_under_the_models_label() -> None:
    text = (
        "# HELP llamacpp:tokens_predicted_total Tokens\n"
        "# TYPE llamacpp:tokens_predicted_total counter\n"
        "llamacpp:tokens_predicted_total 12\n"
        'vllm:num_requests_running{engine="0",model="Qwen/Q"} 2.0\n'
    )
    assert with_labels(text, {"model": 'peer"1'}, own_model_as_upstream=True).splitlines() == [
        "# HELP llamacpp:tokens_predicted_total Tokens",
        "# TYPE llamacpp:tokens_predicted_total counter",
        'llamacpp:tokens_predicted_total{model="peer\\"1"} 12',
        'vllm:num_requests_running{model="peer\\"1",engine="0",upstream_model="Qwen/Q"} 2.0',
    ]


def test_serve_refuses_bad_backend_options_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "models:\n  - id: x\n    engine: remote\n    options: {base_url: 'ftp://h', max_concurrent: 0}\n"
    )
    result = CliRunner().invoke(cli, ["serve", "--config", str(config), "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "model 'x' (engine remote): options.base_url: " in result.output
    assert "options.max_concurrent: " in result.output


@pytest.mark.parametrize(
    ("script", "returncode"),
    [("exit 0", 0), ("exit 3", 3), ("kill -TERM $$", -15), ("kill -KILL $$", -9)],
)
def test_the_reaper_exits_the_way_its_server_did(script: str, returncode: int) -> None:
    # a new session, as the gateway starts it: the reaper signals its whole process group
    argv = [sys.executable, "-I", str(REAPER), "1", "15", "--", "sh", "-c", script]
    done = subprocess.run(
        argv, start_new_session=True, capture_output=True, text=True, timeout=30, check=False
    )
    assert (done.returncode, done.stderr) == (returncode, "")
