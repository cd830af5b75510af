"""The deployment files, checked offline (Docker does not run here; issue 23): hadolint on every
Dockerfile, compose.yaml against the Compose specification's JSON schema, and every variable the
compose file and .env.example set is one nanoserve (or the service it is for) reads."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nanoserve.config import Settings, load_settings
from nanoserve.envsettings import OTHER_VARIABLES, settings_variables

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(ROOT.glob("Dockerfile*"))
BIN = Path(sys.executable).parent
# variables huggingface_hub reads for nanoserve's pulls (hf: sources)
HUB_VARIABLES = {"HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE"}


def tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert path is not None, f"{name} is not installed (make install)"
    return path


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    done = run(tool("hadolint"), "--no-color", str(dockerfile))
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install nanoserve\n")
    assert run(tool("hadolint"), "--no-color", str(bad)).returncode != 0


def test_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    check = tool("check-jsonschema")
    done = run(check, "--builtin-schema", "vendor.compose-spec", str(ROOT / "compose.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
    broken = yaml.safe_load((ROOT / "compose.yaml").read_text())
    broken["services"]["nanoserve"]["ports"] = {"8000": 8000}  # a mapping where a list belongs
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(broken))
    assert (
        run(check, "--builtin-schema", "vendor.compose-spec", str(tmp_path / "compose.yaml")).returncode != 0
    )


def read_by_nanoserve(variable: str) -> bool:
    return (
        variable in settings_variables(Settings) or variable in OTHER_VARIABLES or variable in HUB_VARIABLES
    )


def compose_variables() -> tuple[set[str], set[str]]:
    """What compose.yaml sets in nanoserve's environment, and what it interpolates (``${X}``)."""
    text = (ROOT / "compose.yaml").read_text()
    compose = yaml.safe_load(text)
    environment: set[str] = set()
    for name, service in compose["services"].items():
        if name.startswith("nanoserve"):
            environment |= set(service.get("environment", {}))
    return environment, set(re.findall(r"\$\{(\w+)", text))


def env_example_variables() -> set[str]:
    """Every variable .env.example names, set or commented out."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {m[1] for line in lines if (m := re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=", line))}


def test_every_variable_set_for_nanoserve_is_one_it_reads() -> None:
    environment, interpolated = compose_variables()
    example = env_example_variables()
    assert {"NANOSERVE_BOOTSTRAP_KEY", "NANOSERVE_AUTH__REQUIRED"} <= environment | example
    for variable in environment | example:
        if variable in interpolated:  # for another service (a database password, Grafana's)
            continue
        assert read_by_nanoserve(variable), f"{variable} is read by nothing"
    assert not read_by_nanoserve("NANOSERVE_AUTH__REQUIRD")  # the check can fail


def test_the_compose_environment_configures_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    """What compose.yaml sets, read as the container reads it: keys required, its hosts allowed."""
    environment, _ = compose_variables()
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    values = compose["services"]["nanoserve"]["environment"]
    for name in environment:
        monkeypatch.setenv(name, str(values[name]))
    settings = load_settings()
    assert settings.auth.required is True
    assert "nanoserve" in settings.allowed_hosts


def test_images_install_with_the_makefiles_script() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "scripts/install.sh" in makefile
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        assert "scripts/install.sh /opt/nanoserve" in text, dockerfile.name
        assert (
            re.search(r"^USER 10001$", text, re.MULTILINE)
            and "HEALTHCHECK" in text
            and "VOLUME /data" in text
        )
    extras = re.findall(r"EXTRAS=([\w,]+)", "".join(p.read_text() for p in DOCKERFILES))
    declared = set(re.findall(r"^(\w+) = \[", (ROOT / "pyproject.toml").read_text(), re.MULTILINE))
    for extra in ",".join(extras).split(","):
        assert extra in declared, f"extra {extra} is not in pyproject.toml"


@pytest.mark.parametrize(
    "script", ["scripts/install.sh", "scripts/gpu-check.sh", "scripts/install-system.sh"]
)
def test_scripts_parse(script: str) -> None:
    done = run("bash", "-n", str(ROOT / script))
    assert done.returncode == 0, done.stderr
