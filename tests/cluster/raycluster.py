"""A local Ray cluster of simulated nodes for the cluster tests (``ray.cluster_utils.Cluster``).

Every node is on 127.0.0.1 and differs from the others by what it declares to Ray (CPUs,
``memory``, custom resources), as machines of a real cluster do. Token authentication is on,
with a token made for the run (conftest.py); usage stats and the dashboard are off. The test process joins as
a driver too (to find and kill actors); ``stop`` removes every node it started, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from gateway import Gateway

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster

MIB = 1 << 20
NAMESPACE = "nanoserve-test"


def node_args(cpus: int, memory_mib: int, resources: dict[str, float]) -> dict[str, Any]:
    return {
        "num_cpus": cpus,
        "memory": memory_mib * MIB,
        "resources": resources,
        "node_ip_address": "127.0.0.1",
        "include_dashboard": False,
        "object_store_memory": 80 * MIB,
    }


@contextmanager
def local_cluster(head: dict[str, Any], *others: dict[str, Any]) -> Iterator[tuple[Cluster, list[Any]]]:
    """A head node and ``others``, with the test process joined; everything removed after."""
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        nodes = [cluster.add_node(**args) for args in others]
        cluster.wait_for_nodes()
        cluster.connect(namespace=NAMESPACE)
        yield cluster, nodes
    finally:
        ray.shutdown()
        cluster.shutdown()


def cluster_config(cluster: Cluster, models: list[dict[str, Any]]) -> dict[str, Any]:
    return {"cluster": {"address": cluster.address, "namespace": NAMESPACE}, "models": models}


def node_name(node: Any) -> str:
    """The name nanoserve gives a node: the first 12 hex digits of Ray's node id."""
    return str(node.node_id)[:12]


def actors(model: str) -> list[str]:
    """Names of the live actors of ``model`` (``nanoserve:<model>:<hex>``)."""
    names = ray.util.list_named_actors(all_namespaces=False)
    return [n for n in names if n.startswith(f"nanoserve:{model}:")]


# -- the gateway's answers -----------------------------------------------------------------
def status(gw: Gateway) -> dict[str, Any]:
    with gw.client() as http:
        answer = http.get("/models/status")
    assert answer.status_code == 200, answer.text
    return answer.json()


def model(gw: Gateway, model_id: str) -> dict[str, Any]:
    return next(m for m in status(gw)["models"] if m["id"] == model_id)


def load(gw: Gateway, model_id: str) -> dict[str, Any]:
    with gw.client() as http:
        answer = http.post("/models/load", json={"model": model_id})
    assert answer.status_code == 200, answer.text + gw.log()
    return model(gw, model_id)


def chat(gw: Gateway, model_id: str, **extra: Any) -> httpx.Response:
    body = {"model": model_id, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, **extra}
    with gw.client() as http:
        return http.post("/v1/chat/completions", json=body)
