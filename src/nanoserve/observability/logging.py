"""Logs: readable text by default, JSON lines with ``--log-format json``.

Structured fields travel in ``extra={"fields": {...}}``: the JSON formatter makes them keys of
the line, the text formatter appends them as ``key=value`` (except those named in
``extra={"in_message": (...)}``, which the message already says). Two loggers carry the operator's
story:

* ``nanoserve.access``: one line per request (request id, route, model, status, tokens, queue
  wait, time to first token, total time, error);
* ``nanoserve.lifecycle``: model loads, unloads with their reason, crashes and restarts.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nanoserve.observability.requests import RequestRecord, Timings
    from nanoserve.orchestrator.instance import ModelInstance

access_log = logging.getLogger("nanoserve.access")
lifecycle_log = logging.getLogger("nanoserve.lifecycle")

# Requests logged at DEBUG only: probes and scrapes would drown the interesting lines.
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})
QUIET_PREFIXES = ("/dashboard/", "/ui")  # the dashboard polls: an open page would flood the log


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update((k, v) for k, v in fields.items() if v is not None and k not in line)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``2025-01-01T12:00:00.123Z INFO nanoserve.access: message key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            said = getattr(record, "in_message", ())  # already in the message: not repeated
            text += "".join(
                f" {k}={_text_value(v)}" for k, v in fields.items() if v is not None and k not in said
            )
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if (not text or " " in text or '"' in text) else text


def setup_logging(log_format: str = "text", level: str | int = "INFO") -> None:
    """Send every log record (nanoserve's, uvicorn's, libraries') to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # Neither format shows the caller, thread or process: not collecting them for every record
    # (the "Optimization" section of the logging docs) makes each access line cheaper.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # propagate to our handler
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def log_request(record: RequestRecord, timings: Timings) -> None:
    """The request's line in ``nanoserve.access``."""
    quiet = record.path in QUIET_PATHS or record.path.startswith(QUIET_PREFIXES)
    level = logging.DEBUG if quiet else logging.INFO
    if record.status >= 500 or record.stream_error:
        level = logging.WARNING
    if not access_log.isEnabledFor(level):
        return
    fields = {
        "request_id": record.request_id,
        "method": record.method,
        "route": record.route or record.path,
        "model": record.model or None,
        "status": record.status,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cached_tokens": record.cached_tokens,
        "queue_ms": _ms(timings.queue),
        "cold_start": record.cold_start or None,
        "ttft_ms": _ms(timings.ttft),
        "duration_ms": _ms(timings.duration),
        "rejection": record.rejection,
        "error": record.error,
    }
    access_log.log(
        level,
        "%s %s %d",
        record.method,
        record.path,
        record.status,
        extra={"fields": fields, "in_message": ("method", "route", "status")},
    )


class LifecycleLog:
    """The orchestrator's listener that writes model lifecycle events to ``nanoserve.lifecycle``."""

    def __init__(self) -> None:
        self._crashed: set[str] = set()

    def on_event(self, event: str, instance: ModelInstance, details: dict[str, Any]) -> None:
        model = instance.id
        previous = details.get("previous")
        fields: dict[str, Any] = {"event": None, "model": model}
        if event == "starting":
            restart = model in self._crashed
            fields["event"] = "restart" if restart else "load"
            lifecycle_log.info(
                "%s %s", "restarting worker for" if restart else "loading", model, extra={"fields": fields}
            )
        elif event == "ready":
            self._crashed.discard(model)
            fields.update(
                event="loaded", load_seconds=_round(details.get("load_seconds")), pid=details.get("pid")
            )
            lifecycle_log.info("model %s loaded", model, extra={"fields": fields})
        elif event == "failed" and details.get("reason") == "crash":
            self._crashed.add(model)
            fields.update(
                event="crash", reason="crash", error=details.get("error"), in_flight=details.get("in_flight")
            )
            lifecycle_log.warning("worker for %s crashed", model, extra={"fields": fields})
        elif event == "failed":
            fields.update(event="load_failed", error=details.get("error"))
            lifecycle_log.error("model %s failed to load", model, extra={"fields": fields})
        elif event == "draining":
            fields.update(event="draining", reason=details.get("reason"))
            lifecycle_log.info("draining %s before unloading it", model, extra={"fields": fields})
        elif event == "stopped" and previous == "stopping":
            fields.update(event="unload", reason=details.get("reason"))
            lifecycle_log.info("model %s unloaded", model, extra={"fields": fields})
        elif event == "stopped":
            self._crashed.discard(model)


def _round(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value
