"""The docs list every metric the gateway and workers expose; the dashboard uses only real ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from nanoserve.engines.stats import BucketCounts
from nanoserve.observability.metrics import GatewayMetrics
from nanoserve.worker.metrics import EngineStatsCollector, WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md").read_text()  # the metric tables live in the README (#metrics)
DASHBOARD = json.loads((ROOT / "monitoring" / "grafana-dashboard.json").read_text())
SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")


def exposed_families() -> set[str]:
    """Family names (counters with ``_total``) of the gateway, a worker, and engine histograms."""
    engine = CollectorRegistry()
    stats = {**BucketCounts().export("batch_size"), **BucketCounts().export("embedding_batch_size")}
    engine.register(EngineStatsCollector("m", lambda: stats))
    texts = [GatewayMetrics(["m"]).render(), WorkerMetrics("m").render(), generate_latest(engine)]
    names = set()
    for text in texts:
        for family in text_string_to_metric_families(text.decode()):
            if family.name.endswith("_created"):
                continue
            names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


def test_every_exposed_metric_is_documented() -> None:
    documented = set(re.findall(r"`(nanoserve_[a-z_]+)`", DOCS))
    missing = sorted(exposed_families() - documented)
    assert not missing, f"add to the README's metric tables: {missing}"


def test_the_metrics_the_issue_asks_for_are_exposed() -> None:
    asked = [
        "nanoserve_requests_total",
        "nanoserve_request_duration_seconds",
        "nanoserve_time_to_first_token_seconds",
        "nanoserve_time_per_output_token_seconds",
        "nanoserve_queue_wait_seconds",
        "nanoserve_prompt_tokens_total",
        "nanoserve_generated_tokens_total",
        "nanoserve_requests_running",
        "nanoserve_requests_waiting",
        "nanoserve_batch_size",
        "nanoserve_prefix_cache_hit_tokens_total",
        "nanoserve_model_loads_total",
        "nanoserve_model_load_duration_seconds",
        "nanoserve_model_unloads_total",
        "nanoserve_rejections_total",
        "nanoserve_worker_restarts_total",
        "nanoserve_memory_used_bytes",
        "nanoserve_memory_budget_bytes",
        "nanoserve_embedding_batch_size",
    ]
    scrape_time = {"nanoserve_memory_used_bytes", "nanoserve_memory_budget_bytes"}  # need an orchestrator
    assert set(asked) - scrape_time <= exposed_families()
    assert scrape_time <= set(re.findall(r"`(nanoserve_[a-z_]+)`", DOCS))


def test_dashboard_queries_only_exposed_metrics() -> None:
    exprs = [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 20
    known = exposed_families() | {
        "nanoserve_model_state",
        "nanoserve_model_memory_bytes",
        "nanoserve_memory_used_bytes",
        "nanoserve_memory_budget_bytes",
    }
    used = {name for expr in exprs for name in re.findall(r"nanoserve_[a-z_]+", expr)}
    unknown = {n for n in used if n not in known and not any(n.removesuffix(s) in known for s in SUFFIXES)}
    assert not unknown, unknown
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
