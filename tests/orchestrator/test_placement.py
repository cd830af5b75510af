"""Placement over devices: the pure choice by tables, and replicas spread over simulated GPUs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gateway import Gateway

from nanoserve.orchestrator.devices import evict_on, place, relocate

MIB = 1 << 20
FOUR = {"gpu0": 4000, "gpu1": 4000, "gpu2": 4000, "gpu3": 4000}


@pytest.mark.parametrize(
    ("need", "free", "replicas_on", "expected"),
    [
        (1000, FOUR, {}, "gpu0"),  # all equal: by name
        (1000, {**FOUR, "gpu2": 6000}, {}, "gpu2"),  # the most free
        (1000, FOUR, {"gpu0": 1}, "gpu1"),  # spread a model's replicas first
        (1000, FOUR, {"gpu0": 1, "gpu1": 1, "gpu2": 1}, "gpu3"),
        (1000, {**FOUR, "gpu3": 500}, {"gpu0": 1, "gpu1": 1, "gpu2": 1}, "gpu0"),  # gpu3 has no room
        (1000, FOUR, {"gpu0": 2, "gpu1": 1, "gpu2": 1, "gpu3": 1}, "gpu1"),  # fewest, then name
        (5000, FOUR, {}, None),  # nowhere: the planner says why or evicts
        (1000, {}, {}, None),  # RAM only: no GPU to place on
    ],
)
def test_place(need: int, free: dict[str, int], replicas_on: dict[str, int], expected: str | None) -> None:
    assert place(need, free, replicas_on) == expected


@pytest.mark.parametrize(
    ("need", "free", "budgets", "expected"),
    [
        # a 1200 MiB GPU holding 1000 beats an emptier 300 MiB one an 800 MiB model never fits on
        (800, {"gpu0": 200, "gpu1": 300}, {"gpu0": 1200, "gpu1": 300}, "gpu0"),
        (800, {"gpu0": 200, "gpu1": 500}, {"gpu0": 1200, "gpu1": 900}, "gpu1"),  # both could: most free
        (2000, {"gpu0": 200, "gpu1": 300}, {"gpu0": 1200, "gpu1": 300}, None),  # neither ever could
    ],
)
def test_evict_on(need: int, free: dict[str, int], budgets: dict[str, int], expected: str | None) -> None:
    assert evict_on(need, free, budgets) == expected


@pytest.mark.parametrize(
    ("footprint", "device", "expected"),
    [
        ({"ram": 5, "gpu0": 7}, "gpu2", {"ram": 5, "gpu2": 7}),
        ({"ram": 5, "gpu0": 3, "gpu1": 4}, "gpu3", {"ram": 5, "gpu3": 7}),
        ({"ram": 5}, "gpu1", {"ram": 5}),
        ({"ram": 5, "gpu0": 7}, None, {"ram": 5, "gpu0": 7}),
        # on a cluster node (docs/cluster.md): every part on that node
        ({"ram": 5}, "ram@n1", {"ram@n1": 5}),
        ({"ram": 5, "gpu0": 7}, "ram@n1", {"ram@n1": 5, "gpu0@n1": 7}),
        ({"ram": 5, "gpu0": 7}, "gpu1@n1", {"ram@n1": 5, "gpu1@n1": 7}),
    ],
)
def test_relocate(footprint: dict[str, int], device: str | None, expected: dict[str, int]) -> None:
    assert relocate(footprint, device) == expected


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = {
        "devices": [{"name": f"gpu{i}", "total_mib": 1500} for i in range(4)],
        "memory": {"gpu_margin_mib": 0},
        "models": [
            {
                "id": "gpu-model",
                "engine": "mock",
                "options": {"vram_mib": 1000, "tokens_per_second": 500},
                "replicas": {"max": 4},
            }
        ],
    }
    gateway = Gateway(tmp_path_factory.mktemp("placement"), config)
    yield gateway
    gateway.stop()


def status(gw: Gateway) -> dict[str, Any]:
    with gw.client(timeout=120) as http:
        return http.get("/models/status").json()


def scale(gw: Gateway, replicas: int) -> dict[str, Any]:
    with gw.client(timeout=120) as http:
        answer = http.post("/models/scale", json={"model": "gpu-model", "replicas": replicas})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_replicas_spread_over_four_simulated_gpus(gw: Gateway) -> None:
    devices = {d["name"]: d for d in status(gw)["devices"]}
    assert {"ram", "gpu0", "gpu1", "gpu2", "gpu3"} <= set(devices)
    assert devices["gpu1"]["total_mib"] == 1500 and devices["gpu1"]["used_mib"] == 0
    model = scale(gw, 4)
    assert sorted(r["device"] for r in model["replicas"]) == ["gpu0", "gpu1", "gpu2", "gpu3"]
    used = {d["name"]: d["used_mib"] for d in status(gw)["devices"]}
    assert all(used[f"gpu{i}"] == 1000 for i in range(4)), used  # what each worker holds
    scale(gw, 1)
    used = {d["name"]: d["used_mib"] for d in status(gw)["devices"]}
    assert sorted(used[f"gpu{i}"] for i in range(4)) == [0, 0, 0, 1000], used


def test_a_fifth_replica_is_not_started_at_its_siblings_expense(gw: Gateway) -> None:
    pids = sorted(r["pid"] for r in scale(gw, 4)["replicas"])
    model = scale(gw, 5)  # no GPU has 1000 MiB left: the four keep running, no fifth
    ready = [r for r in model["replicas"] if r["state"] == "ready"]
    assert sorted(r["pid"] for r in ready) == pids
    assert model["unloads"].get("memory", 0) == 0
    scale(gw, 1)


def test_a_model_too_big_for_the_emptier_gpu_evicts_on_the_one_it_fits(tmp_path: Any) -> None:
    """GPUs of 1200 and 300 MiB, 1000 MiB in use on the first: an 800 MiB model evicts there
    (it could never fit the second, however empty), instead of a 507."""
    model = {"engine": "mock", "options": {"tokens_per_second": 500}}
    config = {
        "devices": [{"name": "gpu0", "total_mib": 1200}, {"name": "gpu1", "total_mib": 300}],
        "memory": {"gpu_margin_mib": 0},
        "models": [
            {"id": "big", **model, "options": {**model["options"], "vram_mib": 1000}},
            {"id": "second", **model, "options": {**model["options"], "vram_mib": 800}},
        ],
    }
    gateway = Gateway(tmp_path, config)
    try:
        with gateway.client(timeout=120) as http:
            assert http.post("/models/load", json={"model": "big"}).status_code == 200
            answer = http.post("/models/load", json={"model": "second"})
            assert answer.status_code == 200, answer.text
            models = {m["id"]: m for m in http.get("/models/status").json()["models"]}
        assert models["second"]["state"] == "ready" and models["second"]["replicas"][0]["device"] == "gpu0"
        assert models["big"]["state"] == "stopped" and models["big"]["unloads"] == {"memory": 1}
    finally:
        gateway.stop()
