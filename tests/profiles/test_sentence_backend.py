"""The sentence profile by backend (issue 18): the runtime each backend's worker imports, and the
memory estimate's parts (no model is loaded here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nanoserve.config import ModelConfig, default_models
from nanoserve.profiles import profile_for
from nanoserve.profiles.sentence import ONNX_ACTIVATION_FACTOR, onnx_path
from nanoserve.sources import resolve_source

pytest.importorskip("onnxruntime")

MINILM = default_models()[1]
PROFILE = profile_for("sentence-transformers")


def with_backend(backend: str) -> ModelConfig:
    return MINILM.model_copy(update={"options": {"backend": backend}})


def test_each_backend_has_its_own_runtime_name(tmp_path: Path) -> None:
    assert PROFILE.runtime_name(with_backend("torch"), tmp_path) == "sentence-transformers"
    for backend in ("onnx", "onnx-int8", "auto"):
        assert PROFILE.runtime_name(with_backend(backend), tmp_path) == "sentence-transformers:onnx"
    # a bad value is the engine's error to report, not the estimate's
    assert PROFILE.runtime_name(with_backend("tensorrt"), tmp_path) == "sentence-transformers"
    assert PROFILE.runtime_modules("onnx") == ("onnxruntime", "tokenizers")
    assert PROFILE.runtime_modules(None) == ("sentence_transformers",)


def test_onnx_parts(tmp_path: Path) -> None:
    torch_parts = PROFILE.model_parts(with_backend("torch"), tmp_path).parts
    onnx = PROFILE.model_parts(with_backend("onnx"), tmp_path)
    assert onnx.parts["activations"] == ONNX_ACTIVATION_FACTOR * torch_parts["activations"]
    assert onnx.parts["weights"] == torch_parts["weights"]  # not exported yet: the safetensors
    int8 = PROFILE.model_parts(with_backend("onnx-int8"), tmp_path).parts
    # not exported yet: the fp32 weights, an upper bound (the int8 file keeps much in fp32)
    assert int8["weights"] == torch_parts["weights"]
    exported = onnx_path(resolve_source(MINILM.source or ""), "onnx", tmp_path)
    exported.parent.mkdir(parents=True)
    exported.write_bytes(b"x" * 1000)
    again = PROFILE.model_parts(with_backend("onnx"), tmp_path)
    assert again.parts["weights"] == 1000 and exported.name in again.basis


def test_the_onnx_runtime_probe_imports_no_torch() -> None:
    code = (
        "import sys, json; from nanoserve.worker.baseline import probe; "
        "r = probe('sentence-transformers:onnx'); "
        "print(json.dumps([r['ram'] > 0, 'onnxruntime' in sys.modules, 'torch' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, True, False]
