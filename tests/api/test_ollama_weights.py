"""Model facts for /api/tags, /api/ps and /api/show, read from the real default weights and checked
against independent readers (``safetensors``, hashlib) and the GGUF header reader (itself checked
against the ``gguf`` package in tests/models/test_gguf.py)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from nanoserve.api.ollama.weights import WeightsCatalog, human_number
from nanoserve.config import ModelConfig, default_models
from nanoserve.models.gguf import read_gguf_info
from nanoserve.sources import resolve_source

CHAT, EMBEDDING = default_models()


@pytest.fixture(scope="module")
def gguf_path() -> Path:
    assert CHAT.source is not None
    return resolve_source(CHAT.source)


def test_gguf_model_facts(gguf_path: Path) -> None:
    catalog = WeightsCatalog(started_at=0.0)
    weights = catalog.describe(CHAT)
    header = read_gguf_info(gguf_path)
    assert weights.format == "gguf"
    assert weights.family == header.metadata["general.architecture"]
    assert weights.quantization_level in gguf_path.name  # ...Q4_1.gguf
    assert weights.parameter_count == sum(t.n_elements for t in header.tensors)  # none declared
    assert human_number(weights.parameter_count).endswith("M")
    assert weights.size == gguf_path.stat().st_size
    assert weights.digest == hashlib.sha256(gguf_path.read_bytes()).hexdigest()
    assert weights.template and weights.template == header.metadata["tokenizer.chat_template"]
    assert "general.name" not in weights.model_info and "tokenizer.chat_template" not in weights.model_info
    assert weights.model_info["general.parameter_count"] == weights.parameter_count
    assert weights.model_info["llama.attention.layer_norm_rms_epsilon"] == 1e-05  # float32, shortest
    verbose = catalog.describe(CHAT, verbose=True)
    assert len(verbose.model_info["tokenizer.ggml.tokens"]) == header.metadata["llama.vocab_size"]
    assert verbose.model_info["tokenizer.ggml.tokens"][:2] == ["<|endoftext|>", "<|im_start|>"]
    assert catalog.describe(CHAT) is weights  # cached


def test_large_arrays_are_elided_unless_verbose(gguf_path: Path) -> None:
    catalog = WeightsCatalog(started_at=0.0)
    short = catalog.describe(CHAT).model_info
    assert short["tokenizer.ggml.tokens"] == [] and short["tokenizer.ggml.merges"] == []
    assert short["general.languages"] == ["en"]  # short arrays are kept
    verbose = catalog.describe(CHAT, verbose=True).model_info
    assert verbose.keys() == short.keys()
    assert len(verbose["tokenizer.ggml.token_type"]) == short["llama.vocab_size"]
    assert {k: verbose[k] for k, v in short.items() if v != []} == {k: v for k, v in short.items() if v != []}


def _gguf(path: Path, **metadata: Any) -> ModelConfig:
    writer = gguf.GGUFWriter(path, "llama")
    for key, value in metadata.items():
        if isinstance(value, list):
            writer.add_array(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        else:
            writer.add_uint32(key, value)
    writer.add_tensor("token_embd.weight", np.zeros((10, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return ModelConfig(id=path.stem, engine="llamacpp", source=str(path))


def test_show_json_of_a_small_gguf(tmp_path: Path) -> None:
    arrays = {"x.five": [1, 2, 3, 4, 5], "x.six": [0.5] * 6, "x.nested": [[1], [2, 3]]}
    config = _gguf(tmp_path / "m.gguf", **arrays, **{"x.eps": 1e-5, "x.third": 1 / 3})
    catalog = WeightsCatalog(started_at=0.0)
    weights = catalog.describe(config)
    assert weights.model_info == {
        "general.architecture": "llama",
        "general.parameter_count": 40,  # not declared: the tensors' sum
        "x.five": [1, 2, 3, 4, 5],
        "x.six": [],
        "x.nested": [[1], [2, 3]],
        "x.eps": 1e-05,
        "x.third": 0.33333334,
    }
    assert (weights.format, weights.family, weights.quantization_level) == ("gguf", "llama", "unknown")
    assert catalog.describe(config, verbose=True).model_info["x.six"] == [0.5] * 6
    declared = catalog.describe(
        _gguf(tmp_path / "d.gguf", **{"general.parameter_count": 7, "general.file_type": 7})
    )
    assert declared.parameter_count == declared.model_info["general.parameter_count"] == 7
    assert declared.quantization_level == "Q8_0"


@pytest.mark.parametrize(
    "content", [b"GGML" + b"\0" * 32, b"", b"GGUF\x03\0", b"GGUF\x03\0\0\0" + b"\xff" * 16]
)
def test_an_unreadable_gguf_is_described_by_its_file_only(tmp_path: Path, content: bytes) -> None:
    """Never an error for /api/tags or /api/show; an empty or cut file was an unhandled 500."""
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    weights = WeightsCatalog(started_at=0.0).describe(
        ModelConfig(id="bad", engine="llamacpp", source=str(path))
    )
    assert (weights.format, weights.family, weights.model_info) == ("", "", {})
    assert weights.size == len(content) and weights.digest == hashlib.sha256(content).hexdigest()


def test_sentence_transformers_model_facts() -> None:
    from safetensors import safe_open

    assert EMBEDDING.source is not None
    path = resolve_source(EMBEDDING.source)
    weights = WeightsCatalog(started_at=0.0).describe(EMBEDDING)
    config = json.loads((path / "config.json").read_text())
    with safe_open(str(path / "model.safetensors"), framework="numpy") as f:
        parameters = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 (not a dict: no iteration)
    assert weights.format == "safetensors" and weights.family == config["model_type"]
    assert weights.parameter_count == parameters
    assert weights.model_info[f"{config['model_type']}.embedding_length"] == config["hidden_size"]
    assert len(weights.digest) == 64


def test_a_model_without_weights_is_described_by_its_config() -> None:
    catalog = WeightsCatalog(started_at=123.0)
    one = catalog.describe(ModelConfig(id="a", engine="mock"))
    two = catalog.describe(ModelConfig(id="b", engine="mock"))
    assert (one.family, one.size, one.modified_at, one.format) == ("mock", 0, 123.0, "")
    assert one.digest != two.digest
