"""The JSON shapes of model status and load plans (sizes in MiB, times in ISO 8601 UTC).

Shared by the admin API (``/models/status``, ``/models/load`` dry runs) and the MCP
model-management tools, so both say the same thing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nanoserve.orchestrator.devices import node_of
from nanoserve.orchestrator.instance import InstanceStats, ModelView, ReplicaView
from nanoserve.orchestrator.memory import DeviceMemory
from nanoserve.orchestrator.planner import MIB, Plan

if TYPE_CHECKING:
    from nanoserve.orchestrator.replicas import ReplicaGroup


def mib(size: int | None) -> int | None:
    """Bytes to MiB, rounded up (a need is never understated)."""
    return None if size is None else -(-size // MIB)


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def device_status(device: DeviceMemory, budget: int, held: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": device.name,
        "total_mib": device.total // MIB,
        "used_mib": device.used // MIB,
        "free_mib": device.free // MIB,
        "budget_mib": budget // MIB,
        "models_mib": mib(held),  # what loaded models hold by the planner's count
    }
    if device.label:
        body["label"] = device.label
    return body


def model_status(view: ModelView, stats: InstanceStats) -> dict[str, Any]:
    return {
        "id": view.id,
        "state": view.state,
        "kind": view.kind,
        "engine": view.engine,
        "estimated_mib": mib(view.estimated_bytes),
        "measured_mib": mib(view.measured_bytes),
        "vram_mib": mib(view.vram_bytes),
        "loaded_at": iso(view.loaded_at),
        "last_used": iso(view.last_used),
        "expires_at": iso(view.expires_at),
        "keep_alive": view.keep_alive,
        "in_flight": view.in_flight,
        "queued": view.queued,
        "priority": view.priority,
        "pinned": view.pinned,
        "pid": view.pid,
        "error": view.error,
        "loads": stats.loads,
        "crashes": stats.crashes,  # exits, failed heartbeats and stalls
        "unloads": dict(stats.unloads),
    }


def replica_status(view: ReplicaView) -> dict[str, Any]:
    """One replica; ``node``: the cluster node it runs on (None: this machine)."""
    return {
        "id": view.id,
        "replica": view.replica,
        "state": view.state,
        "device": view.device.partition("@")[0],
        "node": node_of(view.device),
        "address": view.address,
        "in_flight": view.in_flight,
        "queued": view.queued,
        "requests_total": view.requests_total,
        "measured_mib": mib(view.measured_bytes),
        "pid": view.pid,
    }


def group_status(group: ReplicaGroup) -> dict[str, Any]:
    """A model as one (its replicas aggregated: state, in flight, memory summed), with each
    replica under ``replicas``."""
    stats = InstanceStats(
        loads=sum(r.stats.loads for r in group.replicas),
        requests=sum(r.stats.requests for r in group.replicas),
        crashes=sum(r.stats.crashes for r in group.replicas),
        unloads=sum((r.stats.unloads for r in group.replicas), Counter()),
    )
    settings = group.config.replicas
    scaling = {"min": settings.min, "max": settings.max, "target": group.target}
    replicas = [replica_status(v) for v in group.replica_views()]
    return {**model_status(group.view(), stats), "scaling": scaling, "replicas": replicas}


def plan_status(plan: Plan) -> dict[str, Any]:
    """The answer to a dry-run load."""
    device = plan.device or "ram"
    return {
        "model": plan.model,
        "fits": plan.fits,
        "would_evict": list(plan.evict),
        "free_after_mib": _signed_mib(plan.free_after.get("ram", 0)),
        "needed_mib": mib(sum(plan.need.values())),
        "devices": {
            d: {
                "needed_mib": mib(plan.need.get(d, 0)),
                "budget_mib": b // MIB,
                "free_after_mib": _signed_mib(plan.free_after.get(d, 0)),
            }
            for d, b in plan.budgets.items()
        },
        "blocked_by": list(plan.blocked_by),
        "never_fits": plan.never,
        **({"short_device": device} if not plan.fits else {}),
    }


def _signed_mib(size: int) -> int:
    return size // MIB if size >= 0 else -mib(-size)  # type: ignore[operator]


def counters(evictions: int, drains: int, rejections: Mapping[str, int]) -> dict[str, Any]:
    return {"evictions": evictions, "drains": drains, "rejections": dict(rejections)}


# -- seed 002's orchestrator summary (its n8n workflow reads free_mb) ---------------------------
LOADED_STATUS = {"starting": "loading", "ready": "loaded", "draining": "unloading", "stopping": "unloading"}


def memory_summary(devices: list[dict[str, Any]]) -> dict[str, Any]:
    """``total_mb``, ``used_mb``, ``free_mb`` and ``utilization_percent`` (MiB, as NVML counts
    them) of the GPUs summed, each GPU beside it under ``gpus``; of RAM when there is no GPU
    (``memory_device`` says which)."""
    gpus = [_memory(d) for d in devices if d["name"] != "ram"]
    chosen = gpus or [_memory(d) for d in devices if d["name"] == "ram"]
    total, used, free = (sum(d[k] for d in chosen) for k in ("total_mb", "used_mb", "free_mb"))
    return {
        "memory_device": "gpu" if gpus else "ram",
        "total_mb": total,
        "used_mb": used,
        "free_mb": free,
        "utilization_percent": _percent(used, total),
        "gpus": gpus,
    }


def _memory(device: dict[str, Any]) -> dict[str, Any]:
    total, used = device["total_mib"], device["used_mib"]
    return {
        "name": device["name"],
        "total_mb": total,
        "used_mb": used,
        "free_mb": device["free_mib"],
        "utilization_percent": _percent(used, total),
    }


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def loaded_models(models: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The models holding a worker, by id: ``{model, service (the engine), loaded_at, status}``
    (``loaded``, or ``loading`` / ``unloading`` on the way)."""
    return {
        m["id"]: {
            "model": m["id"],
            "service": m["engine"],
            "loaded_at": m["loaded_at"],
            "status": LOADED_STATUS[m["state"]],
        }
        for m in models
        if m["state"] in LOADED_STATUS
    }
