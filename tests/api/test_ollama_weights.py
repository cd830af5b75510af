"""Model facts for /api/tags, /api/ps and /api/show, read from the real default weights and checked
against independent readers (the ``gguf`` package, ``safetensors``, hashlib)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from nanoserve.api.ollama._gguf import GGUFError, read_header
from nanoserve.api.ollama.weights import WeightsCatalog, human_number
from nanoserve.config import ModelConfig, default_models
from nanoserve.sources import resolve_source

CHAT, EMBEDDING = default_models()


@pytest.fixture(scope="module")
def gguf_path() -> Path:
    assert CHAT.source is not None
    return resolve_source(CHAT.source)


def test_header_matches_the_gguf_package(gguf_path: Path) -> None:
    import gguf

    reference = gguf.GGUFReader(gguf_path)
    header = read_header(gguf_path, max_array=None)
    for key, field in reference.fields.items():
        if key.startswith("GGUF."):
            continue
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            assert len(header.metadata[key]) == len(field.data), key
        elif field.types[0] == gguf.GGUFValueType.FLOAT32:
            assert header.metadata[key] == pytest.approx(field.contents(), rel=1e-6), key
        else:
            assert header.metadata[key] == field.contents(), key
    assert header.parameter_count == sum(int(t.n_elements) for t in reference.tensors)


def test_large_arrays_are_elided_unless_verbose(gguf_path: Path) -> None:
    short = read_header(gguf_path)
    assert short.metadata["tokenizer.ggml.tokens"] == []
    assert short.array_lengths["tokenizer.ggml.tokens"] == short.metadata["llama.vocab_size"]
    assert short.metadata["general.languages"] == ["en"]  # short arrays are kept


def test_not_a_gguf_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"GGML" + b"\0" * 32)
    with pytest.raises(GGUFError):
        read_header(bad)
    truncated = tmp_path / "t.gguf"
    truncated.write_bytes(b"GGUF\x03\0\0\0" + (5).to_bytes(8, "little") + (9).to_bytes(8, "little"))
    with pytest.raises(GGUFError):
        read_header(truncated)


def test_gguf_model_facts(gguf_path: Path) -> None:
    catalog = WeightsCatalog(started_at=0.0)
    weights = catalog.describe(CHAT)
    header = read_header(gguf_path)
    assert weights.format == "gguf"
    assert weights.family == header.metadata["general.architecture"]
    assert weights.quantization_level in gguf_path.name  # ...Q4_1.gguf
    assert weights.parameter_count == header.parameter_count
    assert human_number(weights.parameter_count).endswith("M")
    assert weights.size == gguf_path.stat().st_size
    assert weights.digest == hashlib.sha256(gguf_path.read_bytes()).hexdigest()
    assert weights.template and weights.template == read_header(gguf_path).metadata["tokenizer.chat_template"]
    assert "general.name" not in weights.model_info and "tokenizer.chat_template" not in weights.model_info
    assert weights.model_info["general.parameter_count"] == header.parameter_count
    verbose = catalog.describe(CHAT, verbose=True)
    assert len(verbose.model_info["tokenizer.ggml.tokens"]) == header.metadata["llama.vocab_size"]
    assert catalog.describe(CHAT) is weights  # cached


def test_sentence_transformers_model_facts() -> None:
    from safetensors import safe_open

    assert EMBEDDING.source is not None
    path = resolve_source(EMBEDDING.source)
    weights = WeightsCatalog(started_at=0.0).describe(EMBEDDING)
    config = json.loads((path / "config.json").read_text())
    with safe_open(str(path / "model.safetensors"), framework="numpy") as f:
        parameters = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
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
