"""The engines' one-time weight conversions run in the load phase "converting" (the worker's
/health reports it; the gateway gives the phase its own start timeout), and only when they run."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanoserve.engines import sentence_onnx
from nanoserve.engines.base import CONVERTING, LOADING, EngineSpec
from nanoserve.engines.mock import MockEngine


@pytest.fixture
def engine() -> MockEngine:
    return MockEngine(EngineSpec(name="m", path=None))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "model.safetensors").write_bytes(b"weights")
    return directory


@pytest.mark.parametrize(("backend", "exports"), [("onnx", ["onnx"]), ("onnx-int8", ["onnx", "onnx-int8"])])
def test_the_onnx_export_is_one_converting_phase(
    monkeypatch: pytest.MonkeyPatch,
    engine: MockEngine,
    model_dir: Path,
    tmp_path: Path,
    backend: str,
    exports: list[str],
) -> None:
    seen: list[tuple[str, str]] = []

    def fake_export(directory: Path, source: Path, target: Path, backend: str, threads: int) -> None:
        seen.append((backend, engine.phase))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"onnx")

    monkeypatch.setattr(sentence_onnx, "_export", fake_export)
    data_dir = tmp_path / "data"
    first = sentence_onnx.ensure_onnx(model_dir, backend, data_dir, threads=1, converting=engine.converting)
    assert seen == [(b, CONVERTING) for b in exports]
    assert engine.phase == LOADING
    seen.clear()

    def no_export(*args: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(sentence_onnx, "_export", no_export)
    cached = sentence_onnx.ensure_onnx(model_dir, backend, data_dir, threads=1, converting=engine.converting)
    assert cached == first and engine.phase == LOADING


def test_the_llamacpp_requantization_is_a_converting_phase(
    monkeypatch: pytest.MonkeyPatch, engine: MockEngine, tmp_path: Path
) -> None:
    pytest.importorskip("llama_cpp")
    from nanoserve.engines.llamacpp import convert

    target = tmp_path / "weights" / "served.gguf"
    source = tmp_path / "source.gguf"
    seen: list[str] = []

    def fake_quantize(source: Path, target: Path, quantize: str, *, threads: int) -> None:
        seen.append(engine.phase)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"gguf")

    monkeypatch.setattr(convert, "served_weights_path", lambda *args: target)
    monkeypatch.setattr(convert, "quantize_file", fake_quantize)
    for _ in range(2):  # converted once, then cached
        served = convert.ensure_served_weights(
            source, "q8_0", tmp_path, threads=1, converting=engine.converting
        )
        assert served == target and engine.phase == LOADING
    assert seen == [CONVERTING]
