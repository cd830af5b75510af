"""Every command's --help works, and the top-level help imports no engine."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from nanoserve.cli.main import COMMANDS, LazyGroup, cli

AVAILABLE = [name for name in COMMANDS if LazyGroup._available(name)]


def test_top_level_help_imports_no_engine() -> None:
    code = (
        "import sys\n"
        "from nanoserve.cli.main import cli\n"
        "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'llama_cpp', 'sentence_transformers') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    for name in AVAILABLE:
        assert name in out


@pytest.mark.parametrize("name", AVAILABLE)
def test_command_help(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_unknown_command_is_usage_error() -> None:
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2


def test_bad_config_is_user_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - id: x\n    parallel: zero\n")
    result = CliRunner().invoke(cli, ["serve", "--config", str(bad)])
    assert result.exit_code == 1
    assert "Error: invalid config" in result.output and "models.0.parallel" in result.output
