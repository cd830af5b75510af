"""``nanoserve models``: status, load and unload on a running gateway (over its admin API)."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from nanoserve.cli.options import api_key_option, auth_headers

DEFAULT_URL = "http://127.0.0.1:8000"

_url = click.option(
    "--url",
    default=lambda: os.environ.get("NANOSERVE_URL", DEFAULT_URL),
    show_default=f"$NANOSERVE_URL or {DEFAULT_URL}",
    help="The gateway's address.",
)


def url_option(f: Any) -> Any:
    return _url(api_key_option(f))


json_option = click.option("--json", "as_json", is_flag=True, help="Print the gateway's JSON answer.")


def _call(url: str, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 600) -> Any:
    import httpx

    try:
        response = httpx.request(
            method,
            url.rstrip("/") + path,
            json=body,
            timeout=timeout,
            trust_env=False,
            headers=auth_headers(),
        )
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach the gateway at {url}: {exc}") from exc
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code >= 400:
        message = response.text
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            message = payload["error"].get("message") or message
        retry = response.headers.get("retry-after")
        hint = f" (retry after {retry}s)" if retry else ""
        raise click.ClickException(f"{message} [HTTP {response.status_code}]{hint}")
    return payload


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value} MiB"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def format_status(status: dict[str, Any]) -> str:
    devices = [["DEVICE", "TOTAL", "USED", "FREE", "BUDGET", "MODELS"]] + [
        [
            d["name"],
            _mib(d["total_mib"]),
            _mib(d["used_mib"]),
            _mib(d["free_mib"]),
            _mib(d["budget_mib"]),
            _mib(d.get("models_mib")),
        ]
        for d in status["devices"]
    ]
    models = [["MODEL", "STATE", "ESTIMATED", "MEASURED", "IN FLIGHT", "QUEUED", "PRIORITY", "EXPIRES"]]
    for m in status["models"]:
        models.append(
            [
                m["id"] + (" (pinned)" if m["pinned"] else ""),
                m["state"],
                _mib(m["estimated_mib"]),
                _mib(m["measured_mib"]),
                str(m["in_flight"]),
                str(m["queued"]),
                str(m["priority"]),
                m["expires_at"] or ("never" if m["state"] == "ready" and m.get("keep_alive", 0) < 0 else "-"),
            ]
        )
        replicas = m.get("replicas") or []
        if len(replicas) > 1:  # one row per replica under its model
            for r in replicas:
                where = f"pid {r['pid']}" if r.get("pid") else (r.get("address") or "-")
                models.append(
                    [
                        f"  #{r['replica']} {r['device']} {where}",
                        r["state"],
                        "",
                        _mib(r["measured_mib"]),
                        str(r["in_flight"]),
                        str(r["queued"]),
                        "",
                        f"{r['requests_total']} served",
                    ]
                )
    counters = status.get("counters", {})
    rejections = ", ".join(f"{k} {v}" for k, v in sorted(counters.get("rejections", {}).items())) or "none"
    footer = f"evictions: {counters.get('evictions', 0)}   rejections: {rejections}"
    return f"{_table(devices)}\n\n{_table(models)}\n\n{footer}"


@click.group()
def models() -> None:
    """Model status, load and unload on a running gateway."""


@models.command()
@url_option
@json_option
def status(url: str, as_json: bool) -> None:
    """Memory per device and the state of every model."""
    result = _call(url, "GET", "/models/status")
    click.echo(json.dumps(result, indent=2) if as_json else format_status(result))


@models.command()
@click.argument("model")
@click.option("--priority", type=int, default=None, help="Higher is kept longer when memory is short.")
@click.option("--keep-alive", default=None, help="Idle time before unloading: seconds or '5m'; -1 forever.")
@click.option("--pin/--no-pin", "pinned", default=None, help="Never evict this model while it is loaded.")
@click.option("--dry-run", is_flag=True, help="Only say what loading would evict and leave free.")
@url_option
@json_option
def load(
    model: str,
    priority: int | None,
    keep_alive: str | None,
    pinned: bool | None,
    dry_run: bool,
    url: str,
    as_json: bool,
) -> None:
    """Load MODEL (evicting others if the memory budget needs it)."""
    body: dict[str, Any] = {"model": model, "dry_run": dry_run}
    if priority is not None:
        body["priority"] = priority
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    if pinned is not None:
        body["pinned"] = pinned
    result = _call(url, "POST", "/models/load", body)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif dry_run:
        evict = ", ".join(result["would_evict"]) or "nothing"
        if result["fits"]:
            click.echo(f"{model}: fits; would evict {evict} and leave {result['free_after_mib']} MiB free")
        elif result["never_fits"]:
            click.echo(f"{model}: can never fit the budget (needs {result['needed_mib']} MiB)")
        else:
            click.echo(
                f"{model}: no room now; would evict {evict}, and must wait for "
                f"{', '.join(result['blocked_by'])}"
            )
    else:
        click.echo(
            f"{result['id']}: {result['state']} (estimated {_mib(result['estimated_mib'])}, "
            f"measured {_mib(result['measured_mib'])})"
        )


@models.command()
@click.argument("model")
@click.argument("replicas")
@url_option
@json_option
def scale(model: str, replicas: str, url: str, as_json: bool) -> None:
    """Run REPLICAS replicas of MODEL (a number; 'auto' returns to its configured min/max)."""
    if replicas != "auto" and not replicas.isdigit():
        raise click.BadParameter("a number of replicas, or 'auto'", param_hint="REPLICAS")
    count = None if replicas == "auto" else int(replicas)
    result = _call(url, "POST", "/models/scale", {"model": model, "replicas": count})
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    states = ", ".join(f"#{r['replica']} {r['state']}" for r in result["replicas"])
    click.echo(f"{result['id']}: {states}")


@models.command()
@click.argument("model")
@click.option("--force", is_flag=True, help="Cut off requests in flight (their streams end with an error).")
@url_option
@json_option
def unload(model: str, force: bool, url: str, as_json: bool) -> None:
    """Unload MODEL and confirm its memory is released."""
    result = _call(url, "POST", "/models/unload", {"model": model, "force": force})
    click.echo(json.dumps(result, indent=2) if as_json else f"{result['id']}: {result['state']}")
