"""``nanoserve cluster``: the nodes of a gateway's Ray cluster and what runs on each (docs/cluster.md)."""

from __future__ import annotations

import json
from typing import Any

import click

from nanoserve.cli.models import _call, _mib, _table, json_option, url_option


@click.group()
def cluster() -> None:
    """The Ray cluster a gateway places its workers on."""


def format_cluster(status: dict[str, Any]) -> str:
    nodes = status.get("nodes")
    if nodes is None:
        return "this gateway runs every worker on its own machine (no `cluster` in its config)"
    placed: dict[str, list[str]] = {}
    for model in status["models"]:
        for replica in model.get("replicas") or []:
            if replica.get("node") and replica["state"] != "stopped":
                placed.setdefault(replica["node"], []).append(f"{replica['id']} ({replica['state']})")
    rows = [["NODE", "ADDRESS", "CPUS", "RAM", "MEASURED USE", "MODELS", "REPLICAS"]]
    for node in nodes:
        ram = next((d for d in node["devices"] if d["name"] == "ram"), {})
        gpus = [d["name"] for d in node["devices"] if d["name"] != "ram"]
        rows.append(
            [
                node["id"],
                node["address"],
                f"{node.get('resources', {}).get('CPU', 0):g}" + (f" +{','.join(gpus)}" if gpus else ""),
                _mib(ram.get("budget_mib")),
                _mib(ram.get("used_mib")),
                _mib(ram.get("models_mib")),
                ", ".join(placed.get(node["id"], [])) or "-",
            ]
        )
    return _table(rows)


@cluster.command()
@url_option
@json_option
def status(url: str, as_json: bool) -> None:
    """Every node: its address, CPUs, declared RAM, what its probe measured, and the replicas on it."""
    result = _call(url, "GET", "/models/status")
    if as_json:
        click.echo(json.dumps({"nodes": result.get("nodes")}, indent=2))
    else:
        click.echo(format_cluster(result))
