"""The one exception tree of nanoserve.

Everything below the API layer raises these; each API dialect renders them once, at the edge:
OpenAI routes and workers as ``{"error": {"message", "type", "param", "code"}}``
(``wire/errors.py``), Ollama routes as ``{"error": "..."}`` (``api/errors.py``). An exception that
is not a ``NanoserveError`` is a bug: it is logged and rendered as a 500.

    NanoserveError                       500 unless a subclass says otherwise
    ├── BadRequest                       400 invalid_request_error
    │   ├── ContextLengthExceeded        400 (prompt tokens vs. context)
    │   └── UnsupportedFeature           400 (a capability the model or engine lacks)
    ├── Unauthorized                     401 (no API key, or an unknown or revoked one)
    ├── Forbidden                        403 (the key lacks the scope or model; a foreign Origin)
    ├── NotFound                         404
    │   └── ModelNotFound                404
    ├── RequestTimeout                   408 (waited past limits.request_timeout)
    ├── Conflict                         409 (e.g. unload with a stream in flight)
    ├── PayloadTooLarge                  413
    ├── MisdirectedRequest               421 (a Host header that does not name this server)
    ├── QueueFull                        429 + Retry-After
    │   └── ServerBusy                   429 (limits.max_concurrent_requests over all models)
    ├── RateLimited                      429 + Retry-After (a key's rpm, tpm or concurrency limit)
    ├── PullFailed                       502 (the model hub failed, or a download's checksum)
    ├── Unavailable                      503 + Retry-After (no room right now, shutting down)
    ├── InsufficientMemory               507 (the model can never fit the budget)
    ├── ConfigError                      500 (a config value is invalid; names the field)
    │   └── NotPulled                    404 (a hub model's weights are not downloaded yet)
    └── EngineError                      500 (the engine or worker failed)
        └── WorkerUnavailable            503 (the worker died or stopped answering)
"""

from __future__ import annotations

from typing import ClassVar


class NanoserveError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after


class BadRequest(NanoserveError):
    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(BadRequest):
    code = "context_length_exceeded"

    def __init__(self, prompt_tokens: int, max_tokens: int, context_length: int):
        super().__init__(
            f"This model's maximum context length is {context_length} tokens per sequence. "
            f"However, you requested {prompt_tokens + max_tokens} tokens "
            f"({prompt_tokens} in the prompt, {max_tokens} for the completion). "
            "Please reduce the prompt or max_tokens.",
            param="messages",
        )
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context_length = context_length


class UnsupportedFeature(BadRequest):
    code = "unsupported_feature"


class Unauthorized(NanoserveError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(NanoserveError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class MisdirectedRequest(NanoserveError):
    status = 421
    type = "invalid_request_error"
    code = "host_not_allowed"


class NotFound(NanoserveError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"

    def __init__(self, model: str):
        super().__init__(f"The model '{model}' does not exist.", param="model")
        self.model = model


class Conflict(NanoserveError):
    status = 409
    type = "conflict_error"
    code = "conflict"


class PayloadTooLarge(NanoserveError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RequestTimeout(NanoserveError):
    status = 408
    type = "timeout_error"
    code = "request_timeout"


class QueueFull(NanoserveError):
    status = 429
    type = "rate_limit_error"
    code = "queue_full"


class ServerBusy(QueueFull):
    code = "concurrency_limit"


class RateLimited(NanoserveError):
    """A key's limit is reached; ``limit`` names it (``rpm``, ``tpm`` or ``concurrency``)."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, limit: str, retry_after: float):
        super().__init__(message, retry_after=retry_after)
        self.limit = limit


class QuotaExceeded(NanoserveError):
    """A configured quota is reached (collections, documents, store size): the message names it."""

    status = 429
    type = "quota_error"
    code = "quota_exceeded"


class PullFailed(NanoserveError):
    status = 502
    type = "pull_failed"


class Unavailable(NanoserveError):
    status = 503
    type = "service_unavailable"
    code = "unavailable"


class InsufficientMemory(NanoserveError):
    status = 507
    type = "insufficient_storage"
    code = "insufficient_memory"


class EngineError(NanoserveError):
    status = 500
    type = "server_error"
    code = "engine_error"


class WorkerUnavailable(EngineError):
    status = 503
    type = "service_unavailable"
    code = "worker_unavailable"


class ConfigError(NanoserveError):
    """A configuration file or value is invalid; the message names the field path."""

    code = "config_error"


class NotPulled(ConfigError):
    """A hub model (``hf:`` source) whose weights are not downloaded yet: pull it first."""

    status = 404
    type = "not_found_error"
    code = "model_not_pulled"
