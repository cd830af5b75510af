"""``nanoserve demo cycle``: seed 003's provisioning cycle, mock engine (and the real model, slow)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run_cycle(*args: str) -> tuple[list[str], dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "nanoserve", "demo", "cycle", "--json", *args],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    return lines[:-1], json.loads(lines[-1])


def check(steps: list[str], report: dict[str, object]) -> None:
    assert [line.split()[0] for line in steps] == ["create", "ready", "route", "process", "drain", "destroy"]
    spread = report["spread"]
    assert isinstance(spread, dict) and min(spread.values()) >= 1  # both replicas served
    assert sorted(report["session"].values()) == [0, 4]  # type: ignore[union-attr]
    assert report["released"] is True
    assert "processes left: none" in steps[-1]


def test_the_cycle_with_the_mock_engine() -> None:
    check(*run_cycle())


@pytest.mark.slow
def test_the_cycle_with_the_real_model() -> None:
    steps, report = run_cycle("--real")
    check(steps, report)
    assert "answer: ''" not in steps[3]
