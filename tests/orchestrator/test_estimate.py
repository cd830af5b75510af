"""Estimates before a first load, and the footprints file that replaces them after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanoserve.config import ModelConfig, default_models
from nanoserve.models.gguf import read_gguf_info
from nanoserve.orchestrator.estimate import Estimator, combine
from nanoserve.orchestrator.footprints import FootprintStore, footprint_key
from nanoserve.orchestrator.planner import MIB
from nanoserve.profiles import ModelParts
from nanoserve.profiles.llamacpp import llamacpp_parts
from nanoserve.sources import resolve_source

SMOLLM2, MINILM = default_models()


def _fake_probe(calls: list[str], ram: int = 40 * MIB):
    async def probe(engine: str) -> dict[str, int]:
        calls.append(engine)
        return {"ram": ram}

    return probe


def test_llamacpp_parts_for_smollm2() -> None:
    info = read_gguf_info(resolve_source(SMOLLM2.source or ""))
    options = {"quantize": "q8_0", "n_batch": 512, "flash_attn": "auto"}
    parts = llamacpp_parts(info, SMOLLM2, options, "q8_0").parts
    # the numbers llama.cpp logs for this model with 8 slots x 2048 tokens
    assert round(parts["weights"] / MIB, 2) == 136.40
    assert parts["kv_cache"] == 360 * MIB
    assert parts["output"] == 49152 * 8 * 4  # "output buffer size = 1.50 MiB"
    # "compute buffer size = 99.38 MiB" reserved; resident on the CPU: 512 tokens' activations and
    # one row of logits per slot (the scheduler never asks for more)
    assert parts["compute"] == 512 * 4 * (2 * 1536 + 4 * 576) + 8 * 49152 * 4
    offloaded = llamacpp_parts(info, SMOLLM2, {**options, "n_gpu_layers": -1}, "q8_0").parts
    assert 95 * MIB <= offloaded["compute"] <= 110 * MIB  # a GPU allocates the whole reservation
    # without flash attention the attention scores add up; more slots, more KV
    no_fa = llamacpp_parts(info, SMOLLM2, {**options, "flash_attn": "off"}, "q8_0").parts
    assert no_fa["compute"] > parts["compute"]
    more = SMOLLM2.model_copy(update={"parallel": 16})
    assert llamacpp_parts(info, more, options, "q8_0").parts["kv_cache"] == 720 * MIB


def test_gpu_offload_splits_by_layers() -> None:
    info = read_gguf_info(resolve_source(SMOLLM2.source or ""))
    half = llamacpp_parts(info, SMOLLM2, {"n_gpu_layers": 15}, None)
    assert half.gpu_fraction == 0.5
    runtime = {"ram": 50 * MIB}
    on_gpu = combine(half, runtime, gpus=1)
    p = half.parts
    assert on_gpu.devices["gpu0"] == int(p["weights"] * 0.5) + int(p["kv_cache"] * 0.5) + p["compute"]
    assert on_gpu.total == 50 * MIB + sum(p.values())
    cpu_only = combine(half, runtime, gpus=0)  # no GPU on the machine: everything in RAM
    assert cpu_only.devices == {"ram": 50 * MIB + sum(p.values())}


@pytest.mark.parametrize(
    ("config", "expected_mib"),
    [
        (ModelConfig(id="m", engine="mock", options={"memory_mib": 300}), 340),
        (ModelConfig(id="e", engine="mock-embedding", kind="embedding", options={"memory_mib": 10}), 50),
        (ModelConfig(id="x", engine="someone-elses"), 40),  # runtime only
    ],
)
async def test_estimates_by_engine(tmp_path: Path, config: ModelConfig, expected_mib: int) -> None:
    calls: list[str] = []
    estimator = Estimator(tmp_path, FootprintStore(tmp_path), _fake_probe(calls))
    estimate = await estimator.estimate(config)
    assert estimate.devices == {"ram": expected_mib * MIB}
    assert estimate.parts["runtime"] == 40 * MIB


async def test_sentence_transformers_estimate(tmp_path: Path) -> None:
    estimator = Estimator(tmp_path, FootprintStore(tmp_path), _fake_probe([], ram=300 * MIB))
    estimate = await estimator.estimate(MINILM)
    weights = (resolve_source(MINILM.source or "") / "model.safetensors").stat().st_size
    assert estimate.parts["weights"] == weights
    assert estimate.parts["activations"] > 0
    assert estimate.total == 300 * MIB + weights + estimate.parts["activations"]


async def test_baseline_probed_once_per_engine_and_persisted(tmp_path: Path) -> None:
    calls: list[str] = []
    store = FootprintStore(tmp_path)
    estimator = Estimator(tmp_path, store, _fake_probe(calls))
    a = ModelConfig(id="a", engine="mock", options={"memory_mib": 1})
    b = ModelConfig(id="b", engine="mock", options={"memory_mib": 2})
    await estimator.estimate(a)
    await estimator.estimate(b)
    await estimator.estimate(a)
    assert calls == ["mock"]
    # a new process (new estimator, same data dir) reads it back instead of probing
    again: list[str] = []
    await Estimator(tmp_path, FootprintStore(tmp_path), _fake_probe(again)).estimate(a)
    assert again == []


async def test_real_baseline_probe_of_the_mock_runtime(tmp_path: Path) -> None:
    from nanoserve.orchestrator.baseline import measure_baseline

    measured = await measure_baseline("mock")
    assert set(measured) == {"ram"}
    assert 10 * MIB < measured["ram"] < 500 * MIB


def test_footprint_store_keeps_the_largest_measurement(tmp_path: Path) -> None:
    store = FootprintStore(tmp_path)
    key = footprint_key(SMOLLM2)
    assert store.footprint(key) is None
    store.record_footprint(key, SMOLLM2.id, {"ram": 500 * MIB})
    store.record_footprint(key, SMOLLM2.id, {"ram": 400 * MIB, "gpu0": 10 * MIB})
    assert store.footprint(key) == {"ram": 500 * MIB, "gpu0": 10 * MIB}
    assert FootprintStore(tmp_path).footprint(key) == {"ram": 500 * MIB, "gpu0": 10 * MIB}  # persisted
    data = json.loads((tmp_path / "memory" / "footprints.json").read_text())
    assert data["footprints"][key]["model"] == SMOLLM2.id


def test_footprint_key_changes_with_memory_settings_only() -> None:
    key = footprint_key(SMOLLM2)
    assert footprint_key(SMOLLM2.model_copy(update={"threads": 7, "keep_alive": 1})) == key
    assert footprint_key(SMOLLM2.model_copy(update={"context_length": 4096})) != key
    assert footprint_key(SMOLLM2.model_copy(update={"parallel": 2})) != key
    assert footprint_key(SMOLLM2.model_copy(update={"options": {"quantize": "keep"}})) != key


def test_unreadable_footprints_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "memory" / "footprints.json"
    path.parent.mkdir()
    path.write_text("{not json")
    store = FootprintStore(tmp_path)
    assert store.footprint("x") is None
    store.record_footprint("x", "x", {"ram": 1})
    assert FootprintStore(tmp_path).footprint("x") == {"ram": 1}


def test_combine_without_gpu_parts() -> None:
    estimate = combine(ModelParts({"weights": 10}, "t"), {"ram": 5}, gpus=2)
    assert estimate.devices == {"ram": 15} and estimate.parts == {"runtime": 5, "weights": 10}


async def test_a_configured_offload_puts_its_share_on_the_gpu(tmp_path: Path) -> None:
    """``n_gpu_layers`` in a model's options (issue 23): the estimate the planner places follows it."""
    offloaded = SMOLLM2.model_copy(update={"options": {"n_gpu_layers": -1, "quantize": "keep"}})
    estimator = Estimator(tmp_path, FootprintStore(tmp_path), _fake_probe([]), gpus=1)
    estimate = await estimator.estimate(offloaded)
    parts = estimate.parts
    assert estimate.devices["gpu0"] == parts["weights"] + parts["kv_cache"] + parts["compute"]
    assert estimate.devices["ram"] == parts["runtime"] + parts["output"]
    on_cpu = await estimator.estimate(SMOLLM2.model_copy(update={"options": {"quantize": "keep"}}))
    assert "gpu0" not in on_cpu.devices
