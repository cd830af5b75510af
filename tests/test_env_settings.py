"""Settings from NANOSERVE_* variables, the precedence of the layers, profiles, and `config show`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from nanoserve.cli.main import cli
from nanoserve.config import FOREVER, ClusterSettings, Settings, load_settings, resolve_settings
from nanoserve.envsettings import PREFIX, settings_variables
from nanoserve.errors import ConfigError
from nanoserve.presets import profile_problem

MOCK_MODELS = [{"id": "m", "engine": "mock"}, {"id": "e", "engine": "mock-embedding", "kind": "embedding"}]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No NANOSERVE_* variable of the machine running the tests leaks in."""
    import os

    for name in list(os.environ):
        if name.upper().startswith(PREFIX):
            monkeypatch.delenv(name)


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def as_variable(value: Any, is_json: bool) -> str:
    if is_json:
        return json.dumps(value)
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def get(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def defaults() -> dict[str, Any]:
    """The settings' defaults, optional sections (off by default, e.g. ``cluster``) with theirs."""
    default = json.loads(Settings().model_dump_json())
    default["cluster"] = ClusterSettings().model_dump(mode="json")
    return default


@pytest.mark.parametrize("name", sorted(settings_variables(Settings)))
def test_every_setting_has_a_variable(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Each variable, set to the default's text, is read, validates and is said to come from it
    (a variable of an optional section turns the section on)."""
    leaf = settings_variables(Settings)[name]
    default = defaults()
    monkeypatch.setenv(name, as_variable(get(default, leaf.path), leaf.json))
    resolved = resolve_settings()
    assert resolved.warnings == []
    dumped = json.loads(resolved.settings.model_dump_json())
    assert get(dumped, leaf.path) == get(default, leaf.path)
    dotted = ".".join(leaf.path)
    assert any(
        k == dotted or k.startswith(dotted + ".") for k, v in resolved.origins.items() if v == f"env {name}"
    )


def test_variables_are_nested_with_double_underscores() -> None:
    names = settings_variables(Settings)
    assert names["NANOSERVE_MEMORY__MARGIN_MIB"].path == ("memory", "margin_mib")
    assert names["NANOSERVE_OBSERVABILITY__OTLP_ENDPOINT"].path == ("observability", "otlp_endpoint")
    assert names["NANOSERVE_RAG__TOP_K"].path == ("rag", "top_k")
    assert names["NANOSERVE_MODELS"].json and names["NANOSERVE_CORS__ALLOW_ORIGINS"].json
    assert not names["NANOSERVE_PORT"].json


@pytest.mark.parametrize(
    ("cli", "env", "file", "profile", "expected", "origin"),
    [
        ({"log_format": "text"}, "json", "json", "cloud", "text", "cli --log-format"),
        ({}, "text", "json", "cloud", "text", "env NANOSERVE_LOG_FORMAT"),
        ({}, None, "text", "cloud", "text", "file"),
        ({}, None, None, "cloud", "json", "profile cloud"),
        ({}, None, None, None, "text", "default"),
    ],
)
def test_precedence_cli_env_file_profile_default(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cli: dict[str, str],
    env: str | None,
    file: str | None,
    profile: str | None,
    expected: str,
    origin: str,
) -> None:
    data: dict[str, Any] = {"profile": profile} if profile else {}
    if file is not None:
        data["log_format"] = file
    if env is not None:
        monkeypatch.setenv("NANOSERVE_LOG_FORMAT", env)
    resolved = resolve_settings(write(tmp_path, data), **cli)
    assert resolved.settings.log_format == expected
    assert resolved.origins["log_format"].startswith(origin)


def test_sections_merge_key_by_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NANOSERVE_MEMORY__BUDGET_MIB", "3000")
    resolved = resolve_settings(write(tmp_path, {"memory": {"margin_mib": 100, "budget_mib": 10}}))
    assert (resolved.settings.memory.budget_mib, resolved.settings.memory.margin_mib) == (3000, 100)
    assert resolved.origins["memory.budget_mib"] == "env NANOSERVE_MEMORY__BUDGET_MIB"
    assert resolved.origins["memory.margin_mib"].startswith("file ")
    assert resolved.origins["memory.max_wait"] == "default"


def test_an_empty_variable_is_null_where_allowed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NANOSERVE_MEMORY__BUDGET_MIB", "")
    assert load_settings(write(tmp_path, {"memory": {"budget_mib": 10}})).memory.budget_mib is None


def test_models_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOSERVE_MODELS", json.dumps(MOCK_MODELS))
    assert [m.id for m in load_settings().models] == ["m", "e"]
    monkeypatch.setenv("NANOSERVE_MODELS", "[{id: m}]")
    with pytest.raises(ConfigError, match="NANOSERVE_MODELS must be JSON"):
        load_settings()


def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOSERVE_MEMORY__MARGIN_MIB", "lots")
    with pytest.raises(ConfigError, match=r"memory\.margin_mib: .* \(env NANOSERVE_MEMORY__MARGIN_MIB\)"):
        load_settings()


def test_unknown_variables_are_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NANOSERVE_PROT", "9000")
    monkeypatch.setenv("NANOSERVE_MEMORY__MARGIN", "1")
    for name in ("NANOSERVE_URL", "NANOSERVE_API_KEY", "NANOSERVE_ALLOWED_HOSTS", "NANOSERVE_BOOTSTRAP_KEY"):
        monkeypatch.setenv(name, "x")  # ours, not settings paths: no warning
    with caplog.at_level(logging.WARNING, logger="nanoserve.config"):
        settings = load_settings()
    assert settings.port == 8000
    assert [r.getMessage() for r in caplog.records] == [
        "unknown variable NANOSERVE_MEMORY__MARGIN ignored (did you mean NANOSERVE_MEMORY__MARGIN_MIB?)",
        "unknown variable NANOSERVE_PROT ignored (did you mean NANOSERVE_PORT?)",
    ]


def test_allowed_hosts_keeps_its_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOSERVE_ALLOWED_HOSTS", "proxy.example, n8n")
    resolved = resolve_settings(allowed_hosts=["api"])
    assert resolved.settings.allowed_hosts == ["api", "proxy.example", "n8n"]
    assert resolved.origins["allowed_hosts.1"] == "env NANOSERVE_ALLOWED_HOSTS"
    assert resolved.warnings == []


def test_nanoserve_home_is_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NANOSERVE_HOME", str(tmp_path / "home"))
    resolved = resolve_settings(write(tmp_path, {"data_dir": str(tmp_path / "file")}))
    assert resolved.settings.data_dir == tmp_path / "home"  # the environment beats the file
    assert resolved.origins["data_dir"] == "env NANOSERVE_HOME"
    monkeypatch.setenv("NANOSERVE_DATA_DIR", str(tmp_path / "data"))
    resolved = resolve_settings()
    assert resolved.settings.data_dir == tmp_path / "data"
    assert resolved.warnings == ["NANOSERVE_HOME is ignored: NANOSERVE_DATA_DIR is set too"]
    assert load_settings(data_dir=tmp_path / "cli").data_dir == tmp_path / "cli"


def test_local_profile_presets_the_built_in_models() -> None:
    settings = load_settings(profile="local")
    chat, embed = settings.models
    assert (settings.host, chat.parallel, embed.parallel) == ("127.0.0.1", 2, 4)
    assert chat.keep_alive == embed.keep_alive == FOREVER
    assert chat.options == {"n_batch": 512, "prefill_chunk": 512, "prefill_budget": 32}
    assert embed.options == {"backend": "onnx-int8"}  # its own: llama.cpp options go to llama.cpp models only


def test_cloud_profile() -> None:
    settings = load_settings(profile="cloud")
    assert settings.host == "0.0.0.0" and settings.auth.required and settings.log_format == "json"
    assert settings.observability.otlp_endpoint == "http://127.0.0.1:4318"
    assert [m.parallel for m in settings.models] == [16, 32]
    assert settings.models[0].keep_alive == 300.0


def test_a_profile_fills_in_only_what_a_listed_model_leaves_out(tmp_path: Path) -> None:
    models = [
        {"id": "a", "parallel": 3, "options": {"prefill_chunk": 64}},
        {"id": "b", "engine": "mock", "keep_alive": "1m"},
    ]
    resolved = resolve_settings(write(tmp_path, {"profile": "local", "models": models}))
    a, b = resolved.settings.models
    assert a.parallel == 3 and a.keep_alive == FOREVER
    assert a.options == {"prefill_chunk": 64, "n_batch": 512, "prefill_budget": 32}
    assert b.parallel == 2 and b.keep_alive == 60.0 and b.options == {}
    assert resolved.origins["models.0.parallel"].startswith("file ")
    assert resolved.origins["models.0.keep_alive"] == "profile local"
    assert resolved.origins["models.0.options.n_batch"] == "profile local"


def test_unknown_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOSERVE_PROFILE", "laptop")
    with pytest.raises(ConfigError, match=r"profile: 'laptop' \(env NANOSERVE_PROFILE\) is not one of"):
        load_settings()


@pytest.mark.parametrize(
    ("profile", "host", "required", "keys", "fragment"),
    [
        ("cloud", "0.0.0.0", True, True, None),
        ("cloud", "0.0.0.0", False, True, "auth.required is off"),
        ("cloud", "0.0.0.0", True, False, "none exists"),
        ("cloud", "127.0.0.1", False, False, None),  # loopback: keys optional
        ("local", "0.0.0.0", False, False, None),  # the usual rule (--insecure-no-auth) applies
        (None, "0.0.0.0", False, False, None),
    ],
)
def test_cloud_binds_beyond_loopback_only_with_keys(
    profile: str | None, host: str, required: bool, keys: bool, fragment: str | None
) -> None:
    problem = profile_problem(profile, host, auth_required=required, has_keys=lambda: keys)
    assert problem is None if fragment is None else fragment in problem


def test_serve_refuses_cloud_without_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["serve", "--profile", "cloud", "--data-dir", str(tmp_path), "--insecure-no-auth"]
    )
    assert result.exit_code == 1
    assert (
        "profile cloud: refusing to bind 0.0.0.0" in result.output
        and "nanoserve keys create" in result.output
    )
    monkeypatch.setenv("NANOSERVE_AUTH__REQUIRED", "false")
    result = CliRunner().invoke(cli, ["serve", "--profile", "cloud", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "auth.required is off" in result.output


def test_config_show_says_where_each_value_came_from(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path, {"port": 9000, "memory": {"margin_mib": 100}, "models": MOCK_MODELS})
    monkeypatch.setenv("NANOSERVE_PROFILE", "cloud")
    monkeypatch.setenv("NANOSERVE_PORT", "9001")
    monkeypatch.setenv("NANOSERVE_PORTS", "1")
    result = CliRunner().invoke(cli, ["config", "show", "--config", str(path)])
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "profile: cloud # env NANOSERVE_PROFILE" in lines
    assert "port: 9001 # env NANOSERVE_PORT" in lines
    assert "host: 0.0.0.0 # profile cloud" in lines
    assert f"margin_mib: 100 # file {path}" in lines
    assert "margin_mib: 100" not in lines and "gpu_margin_mib: 512" in lines  # defaults: no comment
    assert "- id: m # file " + str(path) in lines and "parallel: 16 # profile cloud" in lines
    assert "kind: chat" in lines and f"kind: embedding # file {path}" in lines  # m's kind is a default
    shown = yaml.safe_load(result.stdout)  # still YAML: the comments are comments
    assert shown["port"] == 9001 and shown["models"][0]["id"] == "m"
    assert "Warning: unknown variable NANOSERVE_PORTS ignored (did you mean NANOSERVE_PORT?)" in result.stderr
    as_json = json.loads(CliRunner().invoke(cli, ["config", "show", "--config", str(path), "--json"]).stdout)
    assert as_json["settings"]["port"] == 9001 and as_json["origins"]["port"] == "env NANOSERVE_PORT"
