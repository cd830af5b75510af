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
    from nanoserve.orchestrator.handles import WorkerHandle
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


def with_model_label(text: str, model: str) -> str:
    """A foreign server's exposition (vLLM's, llama-server's) with ``model="<id>"`` on every
    sample, so it merges under the model's label; a ``model`` label of its own is kept as
    ``upstream_model``."""
    label = 'model="{}"'.format(model.replace("\\", "\\\\").replace('"', '\\"'))
    out = []
    for line in text.splitlines():
        sample = _SAMPLE.match(line)
        if sample is None or line.startswith("#"):
            out.append(line)
            continue
        name, labels, rest = sample.groups()
        if labels:
            labels = _MODEL_LABEL.sub(r"\1upstream_model=", labels)
            out.append(f"{name}{{{label},{labels}}}{rest}")
        else:
            out.append(f"{name}{{{label}}}{rest}")
    return "\n".join(out) + "\n"


async def fetch_worker_metrics(worker: WorkerHandle, timeout: float) -> str | None:
    """A backend's metrics text (relabelled if it is not ours), or None if it did not answer in time."""
    if worker.metrics_path is None:
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
            "could not read the metrics of the backend of %s: %s", worker.model, exc or type(exc).__name__
        )
        return None
    return text if worker.speaks_nanoserve else with_model_label(text, worker.model)


async def gather_metrics(metrics: GatewayMetrics, orchestrator: Orchestrator, timeout: float) -> str:
    """The gateway's metrics followed by those of every ready backend that has some, merged."""
    workers = [
        instance.worker
        for instance in orchestrator.instances.values()
        if instance.state in SCRAPED_STATES
        and instance.worker is not None
        and instance.worker.alive
        and instance.worker.metrics_path is not None
    ]
    texts = await asyncio.gather(*(fetch_worker_metrics(w, timeout) for w in workers))
    for worker, text in zip(workers, texts):
        if text is None:
            metrics.worker_scrape_errors.labels(worker.model).inc()
    own = metrics.render().decode()
    return merge_expositions([own, *(t for t in texts if t is not None)])
