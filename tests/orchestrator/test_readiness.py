"""``/ready``'s per-model check, from the engine's profile: kind, installed package, source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nanoserve.config import ModelConfig, default_models
from nanoserve.orchestrator.readiness import model_problem
from nanoserve.profiles import _PROFILES, EngineProfile, profile_for, register_profile

SMOLLM2, MINILM = default_models()


@pytest.fixture
def missing_package() -> Iterator[str]:
    register_profile(EngineProfile(name="needs-missing", module="no_such_package_for_nanoserve"))
    yield "needs-missing"
    del _PROFILES["needs-missing"]


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (SMOLLM2, None),
        (MINILM, None),
        (ModelConfig(id="m", engine="mock"), None),
        (ModelConfig(id="e", engine="mock-embedding", kind="embedding"), None),
        (ModelConfig(id="x", engine="someone-elses", kind="embedding"), None),  # default profile
        (SMOLLM2.model_copy(update={"source": None}), "no source configured"),
        (SMOLLM2.model_copy(update={"kind": "embedding"}), "serves chat models, not embedding"),
        (ModelConfig(id="e", engine="mock-embedding"), "serves embedding models, not chat"),
        (SMOLLM2.model_copy(update={"source": MINILM.source}), "cannot read"),  # a directory
        (MINILM.model_copy(update={"source": SMOLLM2.source}), "not a sentence-transformers model"),
        (ModelConfig(id="m", engine="mock", source="/no/such/file"), "/no/such/file"),
    ],
)
def test_model_problem(config: ModelConfig, problem: str | None) -> None:
    module = profile_for(config.engine).module
    if module is not None:
        pytest.importorskip(module)
    found = model_problem(config)
    assert found is None if problem is None else problem in (found or "")


def test_an_engine_whose_package_is_missing(missing_package: str, tmp_path: Path) -> None:
    config = ModelConfig(id="m", engine=missing_package, source=str(tmp_path))
    assert "needs the Python package 'no_such_package_for_nanoserve'" in (model_problem(config) or "")


def test_a_text_file_is_not_gguf(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    path = tmp_path / "model.gguf"
    path.write_text("nope")
    assert model_problem(SMOLLM2.model_copy(update={"source": str(path)})) == f"{path} is not a GGUF file"
