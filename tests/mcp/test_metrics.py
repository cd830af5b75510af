"""The serving summary of the observability tool, from Prometheus text (pure, by tables)."""

from __future__ import annotations

import math

import pytest

from nanoserve.mcp.metrics import histogram_quantile, summarize

INF = math.inf


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, [], None),
        (0.5, [(1.0, 0), (INF, 0)], None),
        # 10 observations, all in (0.1, 0.5]: the median is half way through that bucket
        (0.5, [(0.1, 0), (0.5, 10), (INF, 10)], 0.3),
        (0.5, [(0.1, 4), (0.5, 8), (1.0, 10), (INF, 10)], 0.1 + 0.4 * (5 - 4) / 4),
        (0.95, [(0.1, 4), (0.5, 8), (1.0, 10), (INF, 10)], 0.5 + 0.5 * (9.5 - 8) / 2),
        (0.5, [(0.25, 2), (INF, 2)], 0.125),  # the first bucket starts at 0
        (0.99, [(1.0, 5), (INF, 10)], 1.0),  # in the +Inf bucket: the highest finite bound
        (0.5, [(INF, 3), (0.5, 3), (0.1, 0)], 0.3),  # order of the buckets does not matter
    ],
)
def test_histogram_quantile(q: float, buckets: list[tuple[float, float]], expected: float | None) -> None:
    result = histogram_quantile(q, buckets)
    assert result == (None if expected is None else pytest.approx(expected))


EXPOSITION = """\
# HELP nanoserve_requests_total Requests answered, by route, model and HTTP status
# TYPE nanoserve_requests_total counter
nanoserve_requests_total{model="smollm2:135m",route="/v1/chat/completions",status="200"} 8.0
nanoserve_requests_total{model="smollm2:135m",route="/api/chat",status="200"} 2.0
nanoserve_requests_total{model="smollm2:135m",route="/v1/chat/completions",status="429"} 1.0
nanoserve_requests_total{model="all-minilm:l6-v2",route="/v1/embeddings",status="200"} 5.0
nanoserve_requests_total{model="",route="/v1/rag/query",status="200"} 3.0
nanoserve_requests_total{model="",route="/v1/rag/query",status="404"} 1.0
# HELP nanoserve_request_duration_seconds Arrival at the gateway to the last byte sent
# TYPE nanoserve_request_duration_seconds histogram
nanoserve_request_duration_seconds_bucket{le="0.5",model="smollm2:135m",route="/v1/chat/completions"} 2.0
nanoserve_request_duration_seconds_bucket{le="1.0",model="smollm2:135m",route="/v1/chat/completions"} 6.0
nanoserve_request_duration_seconds_bucket{le="+Inf",model="smollm2:135m",route="/v1/chat/completions"} 9.0
nanoserve_request_duration_seconds_sum{model="smollm2:135m",route="/v1/chat/completions"} 9.0
nanoserve_request_duration_seconds_count{model="smollm2:135m",route="/v1/chat/completions"} 9.0
nanoserve_request_duration_seconds_bucket{le="0.5",model="smollm2:135m",route="/api/chat"} 0.0
nanoserve_request_duration_seconds_bucket{le="1.0",model="smollm2:135m",route="/api/chat"} 0.0
nanoserve_request_duration_seconds_bucket{le="+Inf",model="smollm2:135m",route="/api/chat"} 2.0
nanoserve_request_duration_seconds_sum{model="smollm2:135m",route="/api/chat"} 5.0
nanoserve_request_duration_seconds_count{model="smollm2:135m",route="/api/chat"} 2.0
# HELP nanoserve_time_to_first_token_seconds arrival at the worker to the first token
# TYPE nanoserve_time_to_first_token_seconds histogram
nanoserve_time_to_first_token_seconds_bucket{le="0.1",model="smollm2:135m"} 6.0
nanoserve_time_to_first_token_seconds_bucket{le="+Inf",model="smollm2:135m"} 10.0
nanoserve_time_to_first_token_seconds_sum{model="smollm2:135m"} 1.5
nanoserve_time_to_first_token_seconds_count{model="smollm2:135m"} 10.0
# HELP nanoserve_prompt_tokens_total prompt tokens
# TYPE nanoserve_prompt_tokens_total counter
nanoserve_prompt_tokens_total{model="smollm2:135m"} 400.0
nanoserve_prompt_tokens_total{model="all-minilm:l6-v2"} 120.0
# HELP nanoserve_generated_tokens_total tokens generated
# TYPE nanoserve_generated_tokens_total counter
nanoserve_generated_tokens_total{model="smollm2:135m"} 250.0
# HELP nanoserve_model_state 1 for the state each model is in
# TYPE nanoserve_model_state gauge
nanoserve_model_state{model="smollm2:135m",state="stopped"} 0.0
nanoserve_model_state{model="smollm2:135m",state="ready"} 1.0
nanoserve_model_state{model="all-minilm:l6-v2",state="ready"} 0.0
nanoserve_model_state{model="all-minilm:l6-v2",state="stopped"} 1.0
nanoserve_model_state{model="idle-model",state="stopped"} 1.0
# HELP nanoserve_memory_used_bytes memory used by models per device
# TYPE nanoserve_memory_used_bytes gauge
nanoserve_memory_used_bytes{device="ram"} 2.62144e+08
# HELP nanoserve_memory_budget_bytes memory models may use per device
# TYPE nanoserve_memory_budget_bytes gauge
nanoserve_memory_budget_bytes{device="ram"} 1.073741824e+09
"""


def test_summarize_per_model() -> None:
    summary = summarize(EXPOSITION)
    assert (summary.requests, summary.errors) == (20, 2)  # every route, model or not
    assert (summary.prompt_tokens, summary.generated_tokens) == (520, 250)
    assert (summary.memory_used_mib, summary.memory_budget_mib) == (250.0, 1024.0)
    models = {m.model: m for m in summary.models}
    assert list(models) == ["all-minilm:l6-v2", "idle-model", "smollm2:135m"]

    chat = models["smollm2:135m"]
    assert (chat.requests, chat.errors, chat.state) == (11, 1, "ready")
    assert (chat.prompt_tokens, chat.generated_tokens) == (400, 250)
    assert chat.latency_mean_s == pytest.approx(14.0 / 11, abs=1e-4)  # both routes merged
    # merged buckets: 2 <= 0.5 s, 6 <= 1 s, 11 in all; the median (5.5th) lies in (0.5, 1]
    assert chat.latency_p50_s == pytest.approx(0.5 + 0.5 * (5.5 - 2) / 4, abs=1e-4)
    assert chat.latency_p95_s == 1.0  # beyond the last finite bound
    assert chat.ttft_mean_s == pytest.approx(0.15)

    embedder = models["all-minilm:l6-v2"]
    assert (embedder.requests, embedder.errors, embedder.state, embedder.prompt_tokens) == (
        5,
        0,
        "stopped",
        120,
    )
    assert embedder.latency_mean_s is None and embedder.ttft_mean_s is None
    idle = models["idle-model"]
    assert (idle.requests, idle.state, idle.latency_p50_s) == (0, "stopped", None)


def test_summarize_empty_scrape() -> None:
    summary = summarize("")
    assert (summary.requests, summary.errors, summary.models) == (0, 0, [])
    assert summary.memory_used_mib is None
