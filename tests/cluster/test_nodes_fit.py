"""Which nodes may take a replica: what they declare to Ray beyond what other replicas reserve
(a table over ``Node.offers``), and the 503 that says why when none may."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from nanoserve.config import ClusterSettings, ModelConfig, Settings
from nanoserve.errors import Unavailable
from nanoserve.orchestrator.cluster import Node, RayCluster

SMALL = {"CPU": 1.0, "memory": 300.0}
BIG = {"CPU": 4.0, "GPU": 1.0, "big": 100.0, "memory": 2000.0}


def model(**fields: object) -> ModelConfig:
    return ModelConfig.model_validate({"id": "m", "engine": "mock", "threads": 1, **fields})


@pytest.mark.parametrize(
    ("resources", "config", "held", "expected"),
    [
        (SMALL, model(), {}, True),
        (SMALL, model(threads=2), {}, False),  # threads are CPUs
        (SMALL, model(), {"CPU": 1}, False),  # held by another replica there
        (BIG, model(threads=2), {"CPU": 2}, True),
        (BIG, model(placement={"resources": {"big": 1}}), {}, True),
        (SMALL, model(placement={"resources": {"big": 1}}), {}, False),  # not declared
        (BIG, model(placement={"resources": {"big": 1}}), {"big": 99.5}, False),
        (BIG, model(placement={"num_gpus": 1}), {}, True),
        (SMALL, model(placement={"num_gpus": 0.5}), {}, False),
    ],
)
def test_offers(
    resources: dict[str, float], config: ModelConfig, held: dict[str, float], expected: bool
) -> None:
    assert Node("ab" * 28, "127.0.0.1", resources).offers(config, held) is expected


def cluster(*nodes: Node) -> RayCluster:
    result = RayCluster(Settings(cluster=ClusterSettings(address="127.0.0.1:6379"), models=[]))
    result.nodes = {node.name: node for node in nodes}
    return result


def test_fitting_says_why_none_may() -> None:
    small, big = Node("a" * 56, "10.0.0.1", SMALL), Node("b" * 56, "10.0.0.2", BIG)
    nodes = cluster(small, big)
    assert nodes.fitting(model(), {}) == [small, big]
    assert nodes.fitting(model(), {small.name: {"CPU": 1}}) == [big]
    with pytest.raises(Unavailable, match=r"\(bbbbbbbbbbbb\) have their resources \(CPU 4\) reserved"):
        nodes.fitting(model(threads=4), {big.name: {"CPU": 1}})
    with pytest.raises(
        Unavailable, match=r"no node of the cluster offers .* \(CPU 1, ssd 1\); 2 node\(s\) are up"
    ):
        nodes.fitting(model(placement={"resources": {"ssd": 1}}), {})
    big.alive = False  # left: no longer a candidate
    assert nodes.fitting(model(), {}) == [small]
