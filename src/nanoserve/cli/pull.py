"""``nanoserve pull MODEL``: download a hub model's weights through a running gateway (its
``/api/pull``), with a progress bar, as ``ollama pull`` does."""

from __future__ import annotations

import json
from typing import Any

import click

from nanoserve.cli.models import url_option
from nanoserve.cli.options import auth_headers


@click.command()
@click.argument("model")
@url_option
def pull(model: str, url: str) -> None:
    """Download MODEL's weights: a configured model with an hf: source, or (with allow_pull) any
    hf:<org>/<repo>[/<file>][@<revision>]."""
    import httpx
    from tqdm import tqdm

    bars: dict[str, Any] = {}
    try:
        with httpx.stream(
            "POST",
            url.rstrip("/") + "/api/pull",
            json={"model": model, "stream": True},
            timeout=httpx.Timeout(30, read=None),
            trust_env=False,
            headers=auth_headers(),
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise click.ClickException(f"{_error(response.text)} [HTTP {response.status_code}]")
            for line in response.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                if "error" in event:
                    raise click.ClickException(event["error"])
                digest = event.get("digest")
                if digest and event.get("total"):
                    bar = bars.get(digest)
                    if bar is None:
                        bar = bars[digest] = tqdm(
                            total=event["total"], unit="B", unit_scale=True, desc=event["status"]
                        )
                    bar.update(event.get("completed", 0) - bar.n)
                else:
                    click.echo(event["status"], err=True)
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach the gateway at {url}: {exc}") from exc
    finally:
        for bar in bars.values():
            bar.close()


def _error(text: str) -> str:
    try:
        error = json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        return text
    return error["message"] if isinstance(error, dict) else str(error)
