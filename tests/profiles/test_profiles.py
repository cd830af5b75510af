"""Engine profiles: each built-in profile's facts (source check, memory parts, capabilities), the
registry's default for unknown engines, that profiles are import-light, and that the engines
and the gateway agree with them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from nanoserve.config import ModelConfig, default_models
from nanoserve.profiles import _PROFILES as REGISTERED
from nanoserve.profiles import (
    DEFAULT_PROFILE,
    KINDS,
    Capabilities,
    EngineOptions,
    EngineProfile,
    profile_for,
    profile_names,
    register_profile,
)
from nanoserve.profiles.crossencoder import CrossEncoderOptions
from nanoserve.profiles.llamacpp import LlamaCppOptions
from nanoserve.profiles.mock import MockOptions
from nanoserve.profiles.sentence import SentenceOptions
from nanoserve.sources import resolve_source

SMOLLM2, MINILM = default_models()
MIB = 1 << 20
SRC = Path(__file__).parents[2] / "src" / "nanoserve"


@pytest.fixture(scope="module")
def gguf_file() -> Path:
    return resolve_source(SMOLLM2.source or "")


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return resolve_source(MINILM.source or "")


def test_builtin_profiles_are_registered() -> None:
    assert profile_names() == [
        "command",
        "cross-encoder",
        "llamacpp",
        "mock",
        "mock-embedding",
        "remote",
        "sentence-transformers",
    ]


@pytest.mark.parametrize(
    ("engine", "kinds", "module", "options", "capabilities"),
    [
        ("llamacpp", {"chat"}, "llama_cpp", LlamaCppOptions, Capabilities(grammar=True)),
        ("sentence-transformers", {"embedding"}, "sentence_transformers", SentenceOptions, Capabilities()),
        ("cross-encoder", {"rerank"}, "sentence_transformers", CrossEncoderOptions, Capabilities()),
        ("mock", {"chat"}, None, MockOptions, Capabilities()),
        ("mock-embedding", {"embedding"}, None, MockOptions, Capabilities()),
        ("someone-elses", KINDS, None, EngineOptions, Capabilities()),  # the default profile
    ],
)
def test_profile_facts(
    engine: str, kinds: set[str], module: str | None, options: type, capabilities: Capabilities
) -> None:
    profile = profile_for(engine)
    assert profile.name == engine
    assert profile.kinds == kinds
    assert profile.module == module
    assert profile.options is options
    assert profile.capabilities == capabilities


@pytest.mark.parametrize(
    ("engine", "path", "problem"),
    [
        ("llamacpp", "gguf", None),
        ("llamacpp", "text", "is not a GGUF file"),
        ("llamacpp", "missing", "cannot read"),
        ("llamacpp", "model_dir", "cannot read"),  # a directory
        ("sentence-transformers", "model_dir", None),
        ("sentence-transformers", "gguf", "is not a sentence-transformers model directory"),
        ("sentence-transformers", "empty_dir", "is not a sentence-transformers model directory"),
    ],
)
def test_source_checks(
    engine: str, path: str, problem: str | None, tmp_path: Path, gguf_file: Path, model_dir: Path
) -> None:
    (tmp_path / "text").write_text("not weights")
    (tmp_path / "empty_dir").mkdir()
    paths = {"gguf": gguf_file, "model_dir": model_dir, "missing": tmp_path / "nope.gguf"}
    check = profile_for(engine).check_source
    assert check is not None
    found = check(paths.get(path, tmp_path / path))
    assert found == problem if problem is None else problem in (found or "")


@pytest.mark.parametrize("engine", ["mock", "mock-embedding", "someone-elses"])
def test_engines_without_weights_check_nothing(engine: str) -> None:
    assert profile_for(engine).check_source is None


def test_llamacpp_parts_from_the_served_file(tmp_path: Path) -> None:
    parts_of = profile_for("llamacpp").model_parts
    converted = parts_of(SMOLLM2, tmp_path)  # default quantize q8_0, not converted yet
    assert converted.basis.endswith("as q8_0")
    assert round(converted.parts["weights"] / MIB, 2) == 136.40
    assert converted.parts["kv_cache"] == 360 * MIB * 34 // 64  # q8_0: 34 bytes per 32 cells, f16: 64
    assert set(converted.parts) == {"weights", "kv_cache", "compute", "output"}
    kept = parts_of(SMOLLM2.model_copy(update={"options": {"quantize": "keep"}}), tmp_path)
    assert kept.basis == f"gguf {Path(SMOLLM2.source or '').name}"
    assert kept.parts["weights"] < converted.parts["weights"]  # Q4_1 as it is


@pytest.mark.parametrize(
    ("config", "parts"),
    [
        (ModelConfig(id="m", engine="mock", options={"memory_mib": 300}), {"weights": 300 * MIB}),
        (ModelConfig(id="m", engine="mock-embedding", kind="embedding"), {"weights": 0}),
        (ModelConfig(id="x", engine="someone-elses"), {}),
    ],
)
def test_declared_parts(config: ModelConfig, parts: dict[str, int], tmp_path: Path) -> None:
    assert profile_for(config.engine).model_parts(config, tmp_path).parts == parts


def test_sentence_parts(tmp_path: Path, model_dir: Path) -> None:
    parts = profile_for("sentence-transformers").model_parts(MINILM, tmp_path).parts
    assert parts["weights"] == (model_dir / "model.safetensors").stat().st_size
    smaller = MINILM.model_copy(update={"options": {"max_batch_tokens": 4096}})
    half = profile_for("sentence-transformers").model_parts(smaller, tmp_path).parts
    assert half["activations"] * 2 == parts["activations"]


def test_unknown_engine_gets_the_default_profile() -> None:
    profile = profile_for("someone-elses")
    assert profile == EngineProfile(name="someone-elses")
    assert (profile.model_parts, profile.module) == (DEFAULT_PROFILE.model_parts, None)


def test_a_third_party_profile_registers_under_its_name() -> None:
    onnx = EngineProfile(name="onnx", kinds=frozenset({"embedding"}), module="onnxruntime")
    register_profile(onnx)
    try:
        assert profile_for("onnx") is onnx and "onnx" in profile_names()
    finally:
        del REGISTERED["onnx"]


def test_profiles_are_import_light() -> None:
    code = (
        "import sys, nanoserve.profiles; "
        "heavy = [m for m in ('llama_cpp', 'torch', 'sentence_transformers', 'gguf', 'numpy', "
        "'nanoserve.engines', 'nanoserve.worker', 'nanoserve.orchestrator') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("engine", ["llamacpp", "sentence-transformers", "mock", "mock-embedding"])
def test_engine_classes_agree_with_their_profiles(engine: str) -> None:
    from nanoserve.engines import load_engine_class

    profile = profile_for(engine)
    if profile.module is not None:
        pytest.importorskip(profile.module)
    cls = load_engine_class(engine)
    assert cls.name == profile.name
    assert cls.kinds == profile.kinds
    assert cls.Options is profile.options
    assert (cls.supports_grammar, cls.supports_vision) == (
        profile.capabilities.grammar,
        profile.capabilities.vision,
    )


@pytest.mark.parametrize(
    ("config", "shown"),
    [
        (ModelConfig(id="c", engine="llamacpp"), ["completion"]),
        (ModelConfig(id="e", engine="sentence-transformers", kind="embedding"), ["embedding"]),
        (ModelConfig(id="v", engine="seeing"), ["completion", "vision"]),
        (ModelConfig(id="v", engine="seeing", kind="embedding"), ["embedding"]),
    ],
)
def test_ollama_show_capabilities_come_from_the_profile(config: ModelConfig, shown: list[str]) -> None:
    from nanoserve.api.ollama.models import capabilities

    register_profile(EngineProfile(name="seeing", capabilities=Capabilities(vision=True)))
    try:
        assert capabilities(config) == shown
    finally:
        del REGISTERED["seeing"]


# The gateway side: what runs in the gateway process. It reads profiles, never engines.
GATEWAY = ("api", "orchestrator", "observability", "mcp", "rag", "profiles")
# TODO(wire/): the gateway-worker protocol pieces still live under worker/ until they move to wire/.
WIRE_IN_WORKER = {"nanoserve.worker.client", "nanoserve.worker.metrics"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):  # also imports inside functions
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _forbidden(name: str) -> bool:
    package = name.split(".")[:2]
    if package == ["nanoserve", "engines"]:
        return True
    wire = any(name == w or name.startswith(w + ".") for w in WIRE_IN_WORKER)
    return package == ["nanoserve", "worker"] and not wire


def test_the_gateway_never_imports_an_engine_or_the_worker() -> None:
    found = {}
    for package in GATEWAY:
        for path in sorted((SRC / package).rglob("*.py")):
            bad = {name for name in _imports(path) if _forbidden(name)}
            if bad:
                found[str(path.relative_to(SRC))] = sorted(bad)
    assert found == {}


def test_foreign_backends_have_no_runtime_of_ours_and_check_their_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    command = profile_for("command")
    remote = profile_for("remote")
    assert not command.runtime and not remote.runtime
    assert command.check_config is not None and remote.check_config is not None
    missing = ModelConfig(id="c", engine="command", options={"command": "no-such-program-xyz -m {source}"})
    assert "not on PATH" in (command.check_config(missing) or "")
    found = ModelConfig(id="c", engine="command", options={"command": "sh -c true"})
    assert command.check_config(found) is None
    monkeypatch.delenv("NANOSERVE_TEST_KEY", raising=False)
    keyed = ModelConfig(
        id="r",
        engine="remote",
        options={"base_url": "http://127.0.0.1:1/v1", "api_key_env": "NANOSERVE_TEST_KEY"},
    )
    assert "NANOSERVE_TEST_KEY" in (remote.check_config(keyed) or "")
    monkeypatch.setenv("NANOSERVE_TEST_KEY", "x")
    assert remote.check_config(keyed) is None
    assert remote.model_parts(keyed, tmp_path).parts == {}


def test_a_managed_server_is_estimated_from_its_gguf_or_its_declaration(
    gguf_file: Path, tmp_path: Path
) -> None:
    command = profile_for("command")
    from_gguf = command.model_parts(
        ModelConfig(id="c", engine="command", source=str(gguf_file), options={}), tmp_path
    )
    assert 0.9 * gguf_file.stat().st_size < from_gguf.parts["weights"] <= gguf_file.stat().st_size  # as it is
    assert from_gguf.parts["kv_cache"] > 0
    declared = ModelConfig(id="c", engine="command", source=str(gguf_file), options={"memory_mib": 700})
    assert command.model_parts(declared, tmp_path).parts == {"declared": 700 << 20}
