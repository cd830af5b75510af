"""Workers on a Ray cluster of two simulated nodes, one gateway in front (docs/cluster.md).

The head node is small (1 CPU, 300 MiB declared, resource ``small``); the second is bigger
(6 CPUs, 2000 MiB, resource ``big``). CPUs and memory here are declarations: both nodes share
this machine's cores and RAM. The gateway places each replica on a node with room, runs
it in a Ray actor there, and relays to the worker's address on that node as to a local one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from click.testing import CliRunner
from gateway import Gateway, wait_until
from raycluster import (
    actors,
    chat,
    cluster_config,
    load,
    local_cluster,
    model,
    node_args,
    node_name,
    ray,
    status,
)

from nanoserve.cli.main import cli
from nanoserve.config import default_models
from nanoserve.wire.headers import WORKER_SECRET_HEADER

HEAD = node_args(1, 300, {"small": 100})
SECOND = node_args(6, 2000, {"big": 100})

MODELS: list[dict[str, Any]] = [
    # ~450 MiB with the runtime: only the second node has room
    {"id": "roomy", "engine": "mock", "threads": 1, "options": {"memory_mib": 350}, "pinned": True},
    # two of these do not fit the second node together: one evicts the other there
    {
        "id": "big-a",
        "engine": "mock",
        "threads": 1,
        "options": {"memory_mib": 800},
        "placement": {"resources": {"big": 1}},
    },
    {
        "id": "big-b",
        "engine": "mock",
        "threads": 1,
        "options": {"memory_mib": 800},
        "placement": {"resources": {"big": 1}},
    },
    # small, on the head node by its resource; unloaded 1 s after its last request
    {
        "id": "brief",
        "engine": "mock",
        "threads": 1,
        "keep_alive": 1,
        "placement": {"resources": {"small": 1}},
    },
    # two replicas: one per node (spread first)
    {"id": "duo", "engine": "mock", "threads": 1, "replicas": {"max": 2}},
    # the real default models (below), two threads each: only the second node has the CPUs
]

MODELS += [
    m.model_copy(update={"threads": 2}).model_dump(mode="json", exclude_defaults=True)
    for m in default_models()
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with local_cluster(HEAD, SECOND) as (ray_cluster, nodes):
        ray_cluster.names = {"head": node_name(ray_cluster.head_node), "second": node_name(nodes[0])}
        yield ray_cluster


@pytest.fixture(scope="module")
def gw(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("cluster"), cluster_config(cluster, MODELS), start_timeout=120)
    yield gateway
    gateway.stop()


def test_status_lists_both_nodes_and_their_declared_memory(gw: Gateway, cluster: Any) -> None:
    nodes = {n["id"]: n for n in status(gw)["nodes"]}
    assert set(nodes) == set(cluster.names.values())
    for name, declared in ((cluster.names["head"], 300), (cluster.names["second"], 2000)):
        ram = next(d for d in nodes[name]["devices"] if d["name"] == "ram")
        assert ram["total_mib"] == ram["budget_mib"] == declared
        assert ram["used_mib"] > 0  # measured on the node by its probe
        assert nodes[name]["address"] == "127.0.0.1"


def test_model_placed_on_the_node_with_room(gw: Gateway, cluster: Any) -> None:
    loaded = load(gw, "roomy")
    (replica,) = loaded["replicas"]
    assert replica["state"] == "ready"
    assert replica["node"] == cluster.names["second"]  # the head declares too little memory
    assert replica["device"] == "ram"
    answer = chat(gw, "roomy")
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"]
    nodes = {n["id"]: n for n in status(gw)["nodes"]}
    second_ram = next(d for d in nodes[cluster.names["second"]]["devices"] if d["name"] == "ram")
    assert second_ram["models_mib"] >= 350  # the planner counts it on that node


def test_worker_on_a_node_requires_the_gateways_secret(gw: Gateway) -> None:
    replica = load(gw, "roomy")["replicas"][0]
    assert replica["address"].startswith("http://127.0.0.1:")
    bare = httpx.get(replica["address"] + "/health", timeout=10)
    assert bare.status_code == 401
    assert bare.json()["error"]["code"] == "invalid_worker_secret"
    wrong = httpx.get(replica["address"] + "/health", headers={WORKER_SECRET_HEADER: "guess"}, timeout=10)
    assert wrong.status_code == 401
    with gw.client() as http:  # the gateway's own client has it: the worker's metrics are merged
        metrics = http.get("/metrics").text.splitlines()
    assert any(m.startswith("nanoserve_generation_requests_total{") and 'model="roomy"' in m for m in metrics)


def test_real_default_models_served_from_the_second_node(gw: Gateway, cluster: Any) -> None:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=300)
    hello = [{"role": "user", "content": "Say hello."}]
    stream = client.chat.completions.create(model="smollm2:135m", messages=hello, max_tokens=16, stream=True)
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len(pieces) > 1 and "".join(pieces).strip()
    embedded = client.embeddings.create(model="all-minilm:l6-v2", input=["a cat", "a dog"])
    assert len(embedded.data) == 2 and len(embedded.data[0].embedding) == 384
    for model_id in ("smollm2:135m", "all-minilm:l6-v2"):
        (replica,) = model(gw, model_id)["replicas"]
        assert replica["node"] == cluster.names["second"], replica
        # measured on its node after the warm-up, as a local worker is
        assert wait_until(lambda m=model_id: model(gw, m)["replicas"][0]["measured_mib"], timeout=60)


def test_eviction_is_per_node(gw: Gateway, cluster: Any) -> None:
    brief = load(gw, "brief")
    assert brief["replicas"][0]["node"] == cluster.names["head"]
    with gw.client() as http:
        http.post("/models/unload", json={"model": "smollm2:135m"})
        http.post("/models/unload", json={"model": "all-minilm:l6-v2"})
    a = load(gw, "big-a")
    assert a["replicas"][0]["node"] == cluster.names["second"]
    b = load(gw, "big-b")  # the second node has no room for both: big-a goes, nothing else
    assert b["replicas"][0]["node"] == cluster.names["second"]
    assert model(gw, "big-a")["state"] == "stopped"
    assert model(gw, "roomy")["state"] == "ready"  # pinned
    assert not actors("big-a") and len(actors("big-b")) == 1


def test_keep_alive_unloads_on_its_node(gw: Gateway, cluster: Any) -> None:
    idle = model(gw, "brief")["unloads"].get("idle", 0)
    assert chat(gw, "brief").status_code == 200
    assert len(actors("brief")) == 1
    assert wait_until(lambda: model(gw, "brief")["state"] == "stopped", timeout=20)
    assert wait_until(lambda: not actors("brief"), timeout=10)
    assert model(gw, "brief")["unloads"].get("idle") == idle + 1


def test_replicas_spread_over_the_nodes(gw: Gateway, cluster: Any) -> None:
    with gw.client() as http:
        answer = http.post("/models/scale", json={"model": "duo", "replicas": 2})
    assert answer.status_code == 200, answer.text
    replicas = model(gw, "duo")["replicas"]
    assert [r["state"] for r in replicas] == ["ready", "ready"]
    assert {r["node"] for r in replicas} == set(cluster.names.values())
    assert len(actors("duo")) == 2
    with gw.client() as http:
        assert http.post("/models/scale", json={"model": "duo", "replicas": 0}).status_code == 200
    assert wait_until(lambda: not actors("duo"), timeout=10)


def test_killed_actor_is_restarted_by_its_owner(gw: Gateway) -> None:
    before = load(gw, "roomy")
    (name,) = actors("roomy")
    ray.kill(ray.get_actor(name))
    # pinned: started again at once (after the back-off), in a new actor
    assert wait_until(lambda: model(gw, "roomy")["crashes"] == 1, timeout=20), gw.log()
    assert wait_until(lambda: model(gw, "roomy")["state"] == "ready", timeout=60), gw.log()
    after = model(gw, "roomy")
    assert after["replicas"][0]["address"] != before["replicas"][0]["address"]
    assert actors("roomy") and actors("roomy") != [name]
    assert chat(gw, "roomy").status_code == 200


def test_openapi_documents_nodes(gw: Gateway) -> None:
    with gw.client() as http:
        spec = http.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert "nodes" in schemas["AdminStatus"]["properties"]
    assert "node" in schemas["ReplicaStatus"]["properties"]


def test_cluster_status_command(gw: Gateway, cluster: Any) -> None:
    load(gw, "roomy")
    result = CliRunner().invoke(cli, ["cluster", "status", "--url", gw.url])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert set(rows) == set(cluster.names.values())
    assert "roomy (ready)" in rows[cluster.names["second"]]
    assert "2000 MiB" in rows[cluster.names["second"]]
