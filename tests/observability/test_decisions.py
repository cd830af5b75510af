"""Pure parts of observability, by tables: merging expositions, rejection reasons, usage in a
stream's tail, request ids, restart policy, log formats."""

from __future__ import annotations

import json
import logging

import pytest
from prom import parse, value

from nanoserve import errors as e
from nanoserve.engines.stats import BucketCounts
from nanoserve.observability.exposition import merge_expositions
from nanoserve.observability.logging import JsonFormatter, TextFormatter
from nanoserve.observability.metrics import unload_label
from nanoserve.observability.middleware import request_id_from
from nanoserve.observability.requests import rejection_reason, usage_from_tail
from nanoserve.orchestrator.supervisor import failed_after, restart_now

GATEWAY = """# HELP nanoserve_requests_total Requests
# TYPE nanoserve_requests_total counter
nanoserve_requests_total{route="/x",model="a",status="200"} 3.0
"""
WORKER_A = """# HELP nanoserve_prompt_tokens_total Prompt tokens
# TYPE nanoserve_prompt_tokens_total counter
nanoserve_prompt_tokens_total{model="a"} 10.0
# HELP nanoserve_batch_size Sequences per step
# TYPE nanoserve_batch_size histogram
nanoserve_batch_size_bucket{le="1.0",model="a"} 1.0
nanoserve_batch_size_bucket{le="+Inf",model="a"} 2.0
nanoserve_batch_size_count{model="a"} 2.0
nanoserve_batch_size_sum{model="a"} 3.0
"""
WORKER_B = WORKER_A.replace('model="a"', 'model="b"').replace("10.0", "7.0")


def test_merge_keeps_one_header_per_family_and_every_sample() -> None:
    merged = merge_expositions([GATEWAY, WORKER_A, WORKER_B])
    assert merged.count("# TYPE nanoserve_prompt_tokens_total counter") == 1
    assert merged.count("# HELP nanoserve_batch_size ") == 1
    samples = parse(merged)
    assert value(samples, "nanoserve_prompt_tokens_total") == 17
    assert value(samples, "nanoserve_batch_size_count", model="b") == 2
    assert value(samples, "nanoserve_requests_total", model="a") == 3


def test_merge_drops_a_family_whose_type_conflicts() -> None:
    clash = '# HELP nanoserve_prompt_tokens_total x\n# TYPE nanoserve_prompt_tokens_total gauge\nnanoserve_prompt_tokens_total{model="c"} 1.0\n'
    samples = parse(merge_expositions([WORKER_A, clash, WORKER_B]))
    assert value(samples, "nanoserve_prompt_tokens_total") == 17  # c's gauge left out, b still merged


def test_merge_of_nothing_is_an_empty_exposition() -> None:
    assert parse(merge_expositions(["", GATEWAY])) == parse(GATEWAY)


@pytest.mark.parametrize(
    ("exc", "accepting", "reason"),
    [
        (e.QueueFull("full"), True, "queue_full"),
        (e.ServerBusy("at limits.max_concurrent_requests"), True, "concurrency_limit"),
        (e.RequestTimeout("waited past limits.request_timeout"), True, "timeout"),
        (e.InsufficientMemory("never fits"), True, "no_memory"),
        (e.Unavailable("no room right now"), True, "no_memory"),
        (e.Unavailable("shutting down"), False, "shutting_down"),
        (e.BadRequest("bad"), True, "bad_request"),
        (e.ContextLengthExceeded(10, 20, 16), True, "bad_request"),
        (e.PayloadTooLarge("big"), True, "bad_request"),
        (e.ModelNotFound("nope"), True, "bad_request"),
        (e.NotFound("No route GET /x"), True, None),
        (e.WorkerUnavailable("worker died"), True, None),
        (e.EngineError("load failed"), True, None),
        (RuntimeError("bug"), True, None),
    ],
)
def test_rejection_reasons(exc: BaseException, accepting: bool, reason: str | None) -> None:
    assert rejection_reason(exc, accepting=accepting) == reason


@pytest.mark.parametrize(
    ("tail", "usage"),
    [
        (b'{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4},"timings":{"prompt_n":3}}', 3),
        (b'data: {"choices":[],"usage":{"prompt_tokens":5,"total_tokens":9}}\n\ndata: [DONE]\n\n', 5),
        (b'data: {"choices":[{"delta":{"content":"\\"usage\\": {}"}}]}\n\ndata: [DONE]\n\n', None),
        (b"data: [DONE]\n\n", None),
        (b'{"usage": {"prompt_tok', None),  # cut off
        (b'{"usage": 3}', None),
    ],
)
def test_usage_is_read_from_the_tail_only(tail: bytes, usage: int | None) -> None:
    found = usage_from_tail(tail)
    assert (found or {}).get("prompt_tokens") == usage


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("abc-123", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("", False),
        (None, False),
        ("caf\u00e9", False),
        ("trace:1/2=3", True),
    ],
)
def test_request_ids_from_clients(given: str | None, kept: bool) -> None:
    made = request_id_from(given)
    assert (made == given) is kept
    if not kept:
        assert len(made) == 32


@pytest.mark.parametrize(
    ("serving", "pinned", "accepting", "now"),
    [
        (True, False, True, True),
        (False, True, True, True),
        (False, False, True, False),  # idle: on next use
        (True, True, False, False),  # shutting down: never
    ],
)
def test_restart_policy(serving: bool, pinned: bool, accepting: bool, now: bool) -> None:
    assert restart_now(serving=serving, pinned=pinned, accepting=accepting) is now


def test_worker_fails_after_the_configured_misses() -> None:
    assert [failed_after(n, 3) for n in range(5)] == [False, False, False, True, True]


def test_bucket_counts_export_cumulative_buckets() -> None:
    counts = BucketCounts(bounds=(1, 4, 16))
    for size in (1, 3, 4, 20, 2):
        counts.observe(size)
    assert counts.export("batch_size") == {
        "batch_size_bucket": {"1": 1, "4": 4, "16": 4, "+Inf": 5},
        "batch_size_sum": 30.0,
    }
    assert counts.count == 5


def _record(**fields: object) -> logging.LogRecord:
    record = logging.LogRecord("nanoserve.access", logging.INFO, __file__, 1, "POST /x %d", (200,), None)
    record.fields = fields
    record.in_message = ("status",)
    return record


def test_json_and_text_log_lines() -> None:
    line = json.loads(JsonFormatter().format(_record(request_id="r1", model="m", status=200, error=None)))
    assert line["msg"] == "POST /x 200" and line["level"] == "info" and line["logger"] == "nanoserve.access"
    assert line["request_id"] == "r1" and line["status"] == 200 and "error" not in line
    assert line["ts"].endswith("Z")
    text = TextFormatter().format(_record(request_id="r1", status=200, error="two words"))
    assert text.endswith('nanoserve.access: POST /x 200 request_id=r1 error="two words"')


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("idle", "idle"),
        ("memory", "memory"),
        ("manual", "manual"),
        (None, "manual"),
        ("keep_alive=0", "manual"),
        ("crash", "crash"),
        ("shutdown", "shutdown"),
        ("something new", "other"),
    ],
)
def test_unload_reasons_become_a_bounded_label(reason: str | None, label: str) -> None:
    assert unload_label(reason) == label
