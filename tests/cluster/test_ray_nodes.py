"""A node that leaves the cluster: its streams end with an error event, its replica is marked
failed and started again on the node that is left (docs/cluster.md).

A cluster of its own (the test removes a node): a head node and a second node with more memory
declared, so the model is placed on the second one first.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gateway import Gateway, wait_until
from raycluster import actors, chat, cluster_config, local_cluster, model, node_args, node_name, status

HEAD = node_args(2, 1000, {})
SECOND = node_args(2, 2000, {})
MODELS = [
    {"id": "mobile", "engine": "mock", "threads": 1, "pinned": True, "options": {"tokens_per_second": 20}},
]


def stream(gw: Gateway, tokens: int, lines: list[str]) -> None:
    body = {"model": "mobile", "messages": [{"role": "user", "content": "go"}], "max_tokens": tokens}
    with (
        httpx.Client(base_url=gw.url, timeout=60) as http,
        http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as resp,
    ):
        lines.extend(line for line in resp.iter_lines() if line.startswith("data: "))


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Any, Any]]:
    with local_cluster(HEAD, SECOND) as (ray_cluster, nodes):
        yield ray_cluster, nodes[0]


@pytest.fixture(scope="module")
def gw(cluster: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("nodes"), cluster_config(cluster[0], MODELS), start_timeout=120)
    yield gateway
    gateway.stop()


def test_a_removed_nodes_replica_is_placed_again_on_the_other(gw: Gateway, cluster: tuple[Any, Any]) -> None:
    ray_cluster, second = cluster
    head_name, second_name = node_name(ray_cluster.head_node), node_name(second)
    with gw.client() as http:
        assert http.post("/models/load", json={"model": "mobile"}).status_code == 200
    assert model(gw, "mobile")["replicas"][0]["node"] == second_name  # the most memory free

    lines: list[str] = []
    reader = threading.Thread(target=stream, args=(gw, 400, lines))
    reader.start()
    assert wait_until(lambda: len(lines) >= 3, 20)
    ray_cluster.remove_node(second)
    reader.join(60)
    assert lines and '"error"' in lines[-1], lines[-3:]  # the stream ended with an error event
    assert json.loads(lines[-1][6:])["error"]["message"]

    # pinned: started again at once, on the node that is left
    assert wait_until(lambda: model(gw, "mobile")["crashes"] >= 1, 20), gw.log()
    assert wait_until(lambda: model(gw, "mobile")["state"] == "ready", 60), gw.log()
    replica = model(gw, "mobile")["replicas"][0]
    assert replica["node"] == head_name, replica
    assert [n["id"] for n in status(gw)["nodes"]] == [head_name]
    assert len(actors("mobile")) == 1
    answer = chat(gw, "mobile")
    assert answer.status_code == 200, answer.text


def test_sigterm_lets_a_stream_finish_then_its_actor_goes(gw: Gateway) -> None:
    lines: list[str] = []
    reader = threading.Thread(target=stream, args=(gw, 40, lines))
    reader.start()
    assert wait_until(lambda: len(lines) >= 3, 20)
    gw.proc.send_signal(signal.SIGTERM)  # Ray's own SIGTERM handler would exit at once
    reader.join(60)
    assert lines[-1] == "data: [DONE]", lines[-2:]
    assert gw.proc.wait(30) in (0, -signal.SIGTERM), gw.log()
    assert "SystemExit" not in gw.log()
    assert wait_until(lambda: not actors("mobile"), 20)
