"""Ollama wire models (ollama/ollama ``api/types.go``). No heavy imports.

Requests ignore unknown fields, as Ollama's Go decoder does. ``options`` keep Ollama's names
and types; the ones nanoserve acts on are declared, the rest (runner and mirostat settings) are
accepted and ignored, as Ollama ignores options it does not know. Streamed lines are formatted
in ``stream.py``; the other responses are the models below.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from nanoserve.wire.protocol import MAX_EMBEDDING_INPUTS, MAX_MESSAGES, MAX_STOP, MAX_STOP_CHARS, MAX_TOOLS


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Options(BaseModel):
    """The ``options`` nanoserve maps to the engine; others are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    num_predict: int | None = None  # -1 (or -2, or 0): until the context is full
    temperature: float | None = Field(default=None, ge=0.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    seed: int | None = None  # -1: random
    stop: list[Annotated[str, Field(max_length=MAX_STOP_CHARS)]] | None = Field(
        default=None, max_length=MAX_STOP
    )
    num_ctx: int | None = Field(default=None, ge=1)
    repeat_penalty: float | None = Field(default=None, ge=0.0)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class _Lifecycle(_Request):
    model: str = Field(min_length=1)
    keep_alive: float | str | None = None
    priority: int | None = None  # nanoserve extension


class _Generation(_Lifecycle):
    stream: StrictBool | None = None  # None: true
    format: str | dict[str, Any] | None = None  # "json" or a JSON schema
    options: Options = Field(default_factory=Options)
    think: StrictBool | str | None = None
    truncate: StrictBool | None = None
    shift: StrictBool | None = None
    logprobs: StrictBool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    @field_validator("options", mode="before")
    @classmethod
    def _no_options(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def streaming(self) -> bool:
        return self.stream is None or self.stream


class GenerateRequest(_Generation):
    prompt: str = ""
    suffix: str = ""
    system: str = ""
    template: str = ""
    context: list[int] | None = None
    raw: StrictBool = False
    images: list[str] | None = None  # base64


class Message(_Request):
    role: str
    content: str = ""
    images: list[str] | None = None  # base64
    tool_calls: list[dict[str, Any]] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None
    thinking: str | None = None

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        role = value.lower()
        if role not in ("system", "user", "assistant", "tool"):
            raise ValueError("must be one of 'system', 'user', 'assistant', 'tool'")
        return role


class ChatRequest(_Generation):
    messages: list[Message] = Field(default_factory=list, max_length=MAX_MESSAGES)
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_TOOLS)


class EmbedRequest(_Lifecycle):
    input: str | list[str] | None = None
    truncate: StrictBool | None = None
    dimensions: int | None = Field(default=None, ge=1)
    options: Options = Field(default_factory=Options)

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, value: Any) -> Any:
        if (
            value is not None
            and not isinstance(value, str)
            and (not isinstance(value, list) or not all(isinstance(v, str) for v in value))
        ):
            raise ValueError("invalid input type")
        if isinstance(value, list) and len(value) > MAX_EMBEDDING_INPUTS:
            raise ValueError(f"at most {MAX_EMBEDDING_INPUTS} inputs per request")
        return value

    @property
    def texts(self) -> list[str]:
        if self.input is None:
            return []
        if isinstance(self.input, str):
            return [self.input] if self.input else []
        return list(self.input)


class EmbeddingsRequest(_Lifecycle):
    prompt: str = ""
    options: Options = Field(default_factory=Options)


class ShowRequest(_Request):
    model: str = ""
    name: str = ""  # deprecated spelling of model
    verbose: StrictBool = False

    @property
    def target(self) -> str:
        return self.model or self.name


class NamedRequest(_Request):
    """pull, push, delete: only the name matters to nanoserve."""

    model: str = ""
    name: str = ""  # deprecated spelling of model
    stream: StrictBool | None = None

    @property
    def target(self) -> str:
        return self.model or self.name


# -- responses ---------------------------------------------------------------------------------
class ModelDetails(BaseModel):
    parent_model: str = ""
    format: str = ""
    family: str = ""
    families: list[str] | None = None
    parameter_size: str = ""
    quantization_level: str = ""


class ListModel(BaseModel):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails


class ListResponse(BaseModel):
    models: list[ListModel]


class ProcessModel(BaseModel):
    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: str
    size_vram: int
    context_length: int


class ProcessResponse(BaseModel):
    models: list[ProcessModel]


class ShowResponse(BaseModel):
    modelfile: str
    parameters: str
    template: str
    details: ModelDetails
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str
    license: str = ""


class EmbedResponse(BaseModel):
    model: str
    embeddings: list[list[float]]
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None


class EmbeddingResponse(BaseModel):
    embedding: list[float]
