"""One scrape of the gateway shows everything: its own metrics plus every running worker's.

At scrape time the gateway reads each ready worker's ``/metrics`` concurrently, with a short
timeout, and merges the texts family by family: one ``# HELP``/``# TYPE`` header per family,
followed by the samples of every source (two workers expose the same families with different
``model`` labels). A worker that does not answer in time is left out of that scrape and counted
in ``nanoserve_worker_scrape_errors_total``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from nanoserve.observability.metrics import GatewayMetrics
    from nanoserve.orchestrator.instance import ModelInstance
    from nanoserve.orchestrator.orchestrator import Orchestrator

log = logging.getLogger("nanoserve.observability")

SCRAPED_STATES = ("ready", "draining")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?(\s.*)$")
_MODEL_LABEL = re.compile(r"(^|,)\s*model=")


@dataclass
class _Family:
    help: str | None = None
    type: str | None = None
    samples: list[str] = field(default_factory=list)


def merge_expositions(texts: Iterable[str]) -> str:
    """Prometheus text expositions merged into one, families keyed by the name in ``# TYPE``.

    A family whose type differs from the first source's is dropped from the later source
    (Prometheus would reject the whole scrape otherwise).
    """
    families: dict[str, _Family] = {}
    for text in texts:
        family: _Family | None = None
        skipping = False
        for line in text.splitlines():
            if not line:
                continue
            if line.startswith(("# HELP ", "# TYPE ")):
                name = line.split(" ", 3)[2]
                family = families.setdefault(name, _Family())
                if line.startswith("# HELP "):
                    family.help = family.help or line
                    skipping = False
                elif family.type is None or family.type == line:
                    family.type = line
                    skipping = False
                else:
                    log.warning(
                        "metric %s: %r conflicts with %r; dropped from one source", name, line, family.type
                    )
                    skipping = True
            elif line.startswith("#") or skipping:
                continue
            else:
                if family is None:  # a sample without a header: its own untyped family
                    family = families.setdefault(line.split("{", 1)[0].split(" ", 1)[0], _Family())
                family.samples.append(line)
    out: list[str] = []
    for family in families.values():
        if family.help:
            out.append(family.help)
        if family.type:
            out.append(family.type)
        out.extend(family.samples)
    return "\n".join(out) + "\n"


def _quoted(value: str) -> str:
    return '"{}"'.format(value.replace("\\", "\\\\").replace('"', '\\"'))


def with_labels(text: str, labels: dict[str, str], *, own_model_as_upstream: bool = False) -> str:
    """``text`` with ``labels`` put first on every sample. ``own_model_as_upstream``: for a foreign
    server's exposition (vLLM's, llama-server's), a ``model`` label of its own is kept as
    ``upstream_model`` so the sample merges under our model's label."""
    prefix = ",".join(f"{name}={_quoted(value)}" for name, value in labels.items())
    if not prefix:
        return text
    out = []
    for line in text.splitlines():
        sample = _SAMPLE.match(line)
        if sample is None or line.startswith("#"):
            out.append(line)
            continue
        name, own, rest = sample.groups()
        if own and own_model_as_upstream:
            own = _MODEL_LABEL.sub(r"\1upstream_model=", own)
        out.append(f"{name}{{{prefix},{own}}}{rest}" if own else f"{name}{{{prefix}}}{rest}")
    return "\n".join(out) + "\n"


async def fetch_worker_metrics(instance: ModelInstance, timeout: float) -> str | None:
    """A backend's metrics text, or None if it did not answer in time. Our workers label their
    samples with the model; a foreign server's are labelled here; a replica after the first adds
    ``replica="<n>"`` (two replicas of one model would otherwise expose the same series)."""
    worker = instance.worker
    if worker is None or worker.metrics_path is None:
        return None
    try:
        async with worker.client.session.get(
            worker.metrics_path, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            if resp.status != 200:
                return None
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError) as exc:
        log.warning(
            "could not read the metrics of the backend of %s: %s", instance.key, exc or type(exc).__name__
        )
        return None
    labels = {} if worker.speaks_nanoserve else {"model": instance.id}
    if instance.replica:
        labels["replica"] = str(instance.replica)
    return with_labels(text, labels, own_model_as_upstream=not worker.speaks_nanoserve)


async def gather_metrics(metrics: GatewayMetrics, orchestrator: Orchestrator, timeout: float) -> str:
    """The gateway's metrics followed by those of every ready backend that has some, merged."""
    instances = [
        instance
        for instance in orchestrator.instances.values()
        if instance.state in SCRAPED_STATES
        and instance.worker is not None
        and instance.worker.alive
        and instance.worker.metrics_path is not None
    ]
    texts = await asyncio.gather(*(fetch_worker_metrics(i, timeout) for i in instances))
    for instance, text in zip(instances, texts, strict=True):
        if text is None:
            metrics.worker_scrape_errors.labels(instance.id).inc()
    own = metrics.render().decode()
    return merge_expositions([own, *(t for t in texts if t is not None)])
