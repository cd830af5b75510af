"""A few serving figures out of the gateway's Prometheus text (pure: text in, summary out).

The ``observability`` tool reads ``GET /metrics`` like any scraper and answers what a person asks
first: how many requests per model and how many failed, tokens in and out, latency (mean and
quantiles estimated from the histogram buckets, as PromQL's ``histogram_quantile`` does), time to
first token, each model's state and the memory in use. Names are those of docs/observability.md.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping

from prometheus_client.parser import text_string_to_metric_families

from nanoserve.mcp.protocol import ModelServing, ServingMetrics

MiB = 1024 * 1024

REQUESTS = "nanoserve_requests_total"
DURATION = "nanoserve_request_duration_seconds"
TTFT = "nanoserve_time_to_first_token_seconds"
PROMPT_TOKENS = "nanoserve_prompt_tokens_total"
GENERATED_TOKENS = "nanoserve_generated_tokens_total"
MODEL_STATE = "nanoserve_model_state"
MEMORY_USED = "nanoserve_memory_used_bytes"
MEMORY_BUDGET = "nanoserve_memory_budget_bytes"


class _Histogram:
    """Cumulative bucket counts (summed over the series merged into it), sum and count."""

    def __init__(self) -> None:
        self.buckets: dict[float, float] = defaultdict(float)
        self.sum = 0.0
        self.count = 0.0

    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        return histogram_quantile(q, self.buckets.items())


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative ``(upper bound, count)`` buckets, interpolated linearly inside
    its bucket; an observation in the +Inf bucket is reported at the highest finite bound."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for bound, cumulative in ordered:
        if cumulative >= rank:
            if math.isinf(bound):
                return lower
            if cumulative == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (cumulative - below)
        lower, below = bound, cumulative
    return lower


def summarize(text: str) -> ServingMetrics:
    requests: dict[str, int] = defaultdict(int)
    errors: dict[str, int] = defaultdict(int)
    prompt: dict[str, float] = defaultdict(float)
    generated: dict[str, float] = defaultdict(float)
    durations: dict[str, _Histogram] = defaultdict(_Histogram)
    ttft: dict[str, _Histogram] = defaultdict(_Histogram)
    states: dict[str, str] = {}
    memory: dict[str, dict[str, float]] = {"used": {}, "budget": {}}
    total_requests = total_errors = 0

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            model = labels.get("model", "")
            if name == REQUESTS:
                count = int(value)
                failed = _status(labels) >= 400
                total_requests += count
                total_errors += count if failed else 0
                if model:
                    requests[model] += count
                    errors[model] += count if failed else 0
            elif name.startswith(DURATION) and model:
                _add_histogram_sample(durations[model], name, DURATION, labels, value)
            elif name.startswith(TTFT) and model:
                _add_histogram_sample(ttft[model], name, TTFT, labels, value)
            elif name == PROMPT_TOKENS and model:
                prompt[model] += value
            elif name == GENERATED_TOKENS and model:
                generated[model] += value
            elif name == MODEL_STATE and model and value == 1:
                states[model] = labels.get("state", "")
            elif name in (MEMORY_USED, MEMORY_BUDGET):
                kind = "used" if name == MEMORY_USED else "budget"
                memory[kind][labels.get("device", "ram")] = value

    models = sorted(set(requests) | set(durations) | set(prompt) | set(generated) | set(states))
    return ServingMetrics(
        requests=total_requests,
        errors=total_errors,
        prompt_tokens=int(sum(prompt.values())),
        generated_tokens=int(sum(generated.values())),
        models=[
            ModelServing(
                model=m,
                requests=requests.get(m, 0),
                errors=errors.get(m, 0),
                prompt_tokens=int(prompt.get(m, 0)),
                generated_tokens=int(generated.get(m, 0)),
                latency_mean_s=_round(durations[m].mean()) if m in durations else None,
                latency_p50_s=_round(durations[m].quantile(0.5)) if m in durations else None,
                latency_p95_s=_round(durations[m].quantile(0.95)) if m in durations else None,
                ttft_mean_s=_round(ttft[m].mean()) if m in ttft else None,
                state=states.get(m),
            )
            for m in models
        ],
        memory_used_mib=_mib(memory["used"]),
        memory_budget_mib=_mib(memory["budget"]),
    )


def _add_histogram_sample(
    histogram: _Histogram, name: str, base: str, labels: Mapping[str, str], value: float
) -> None:
    suffix = name[len(base) :]
    if suffix == "_bucket":
        histogram.buckets[float(labels["le"])] += value
    elif suffix == "_sum":
        histogram.sum += value
    elif suffix == "_count":
        histogram.count += value


def _status(labels: Mapping[str, str]) -> int:
    try:
        return int(labels.get("status", "0"))
    except ValueError:
        return 0


def _mib(by_device: Mapping[str, float]) -> float | None:
    value = by_device.get("ram")
    return None if value is None else round(value / MiB, 1)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
