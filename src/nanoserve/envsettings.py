"""Settings from ``NANOSERVE_*`` environment variables (pure: a model class and a mapping in, data out).

Every setting has a variable: its path in upper case under ``NANOSERVE_``, sections joined by
``__`` (``memory.margin_mib`` is ``NANOSERVE_MEMORY__MARGIN_MIB``). Lists and mappings
(``models``, ``devices``, ``cors.allow_origins``, a model's ``options``...) take JSON; an empty
value means null where a setting allows it. The variables are derived from the settings model,
so a setting added later has its variable at once.

A few ``NANOSERVE_*`` variables are not setting paths and keep their own meaning (``OTHER_VARIABLES``);
``NANOSERVE_HOME`` is the older name of ``NANOSERVE_DATA_DIR``. Any other ``NANOSERVE_*`` variable
is reported as unknown (a typo would otherwise be silently ignored), with the closest name.

pydantic-settings' ``EnvSettingsSource`` parses the same variables, but it ignores unknown names
at the top level, hands unknown nested ones to validation (an error, not a warning), cannot tell
where each value came from and would read ``NANOSERVE_ALLOWED_HOSTS`` (comma-separated) as JSON;
the model walk below does what we need in less code than adapting it.
"""

from __future__ import annotations

import difflib
import json
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from nanoserve.errors import ConfigError

PREFIX = "NANOSERVE_"
DELIMITER = "__"
HOME_VARIABLE = "NANOSERVE_HOME"  # the data dir, as before this module (NANOSERVE_DATA_DIR wins)

# NANOSERVE_* variables that are not setting paths: what each one is for.
OTHER_VARIABLES: dict[str, str] = {
    HOME_VARIABLE: "the data dir (data_dir), its older name; `nanoserve keys` reads it too",
    "NANOSERVE_URL": "the gateway the client commands talk to (models, rag, mcp)",
    "NANOSERVE_API_KEY": "the API key the client commands send",
    "NANOSERVE_ALLOWED_HOSTS": "Host names added to allowed_hosts, comma-separated",
    "NANOSERVE_BOOTSTRAP_KEY": "an admin API key (the variable auth.bootstrap_key_env names)",
    "NANOSERVE_OTLP_ENDPOINT": "set by the gateway for its workers (observability.otlp_endpoint)",
    "NANOSERVE_SIMGPU_DIR": "set by the gateway for its workers (simulated GPUs)",
    "NANOSERVE_DEVICE": "set by the gateway for its workers (the device a worker runs on)",
}

Path_ = tuple[str, ...]
_COMPOUND = (list, tuple, set, frozenset, dict)


def variable_name(path: Path_) -> str:
    return PREFIX + DELIMITER.join(part.upper() for part in path)


def _unwrap(annotation: Any) -> tuple[list[Any], bool]:
    """The members of a union (Annotated and None stripped) and whether None is allowed."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        members: list[Any] = []
        nullable = False
        for arg in get_args(annotation):
            inner, none = _unwrap(arg)
            members += inner
            nullable = nullable or none
        return members, nullable
    if annotation is type(None):
        return [], True
    return [annotation], False


def _section(members: list[Any]) -> type[BaseModel] | None:
    if len(members) == 1 and isinstance(members[0], type) and issubclass(members[0], BaseModel):
        return members[0]
    return None


@dataclass(frozen=True)
class Leaf:
    path: Path_
    json: bool  # a list, mapping or model: the value is JSON
    nullable: bool


def settings_variables(model: type[BaseModel], path: Path_ = ()) -> dict[str, Leaf]:
    """Every variable of ``model``'s settings, sections descended, by name (but those with a
    meaning of their own)."""
    out: dict[str, Leaf] = {}
    for name, info in model.model_fields.items():
        members, nullable = _unwrap(info.annotation)
        section = _section(members)
        here = (*path, name)
        if section is not None:
            out.update(settings_variables(section, here))
            continue
        compound = any(get_origin(m) in _COMPOUND or m in _COMPOUND for m in members)
        if variable_name(here) not in OTHER_VARIABLES:  # NANOSERVE_ALLOWED_HOSTS: comma-separated
            out[variable_name(here)] = Leaf(here, compound, nullable)
    return out


@dataclass
class EnvLayer:
    """The settings the environment sets: nested data, the variable behind each path, warnings."""

    data: dict[str, Any] = field(default_factory=dict)
    origins: dict[Path_, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def read_environment(model: type[BaseModel], environ: Mapping[str, str]) -> EnvLayer:
    """The ``NANOSERVE_*`` settings in ``environ``. Raises ``ConfigError`` naming the variable when
    a JSON value does not parse."""
    variables = settings_variables(model)
    layer = EnvLayer()
    names = {name.upper(): name for name in environ if name.upper().startswith(PREFIX)}
    for upper in sorted(names):
        name, value = names[upper], environ[names[upper]]
        if upper == HOME_VARIABLE:
            data_dir = variable_name(("data_dir",))
            if data_dir in names:
                if environ[names[data_dir]] != value:
                    layer.warnings.append(f"{name} is ignored: {names[data_dir]} is set too")
                continue
            upper = data_dir
        leaf = variables.get(upper)
        if leaf is None:
            if upper not in OTHER_VARIABLES:
                close = difflib.get_close_matches(upper, [*variables, *OTHER_VARIABLES], n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                layer.warnings.append(f"unknown variable {name} ignored{hint}")
            continue
        _set(layer.data, leaf.path, _value(name, value, leaf))
        layer.origins[leaf.path] = f"env {name}"
    return layer


def _value(name: str, text: str, leaf: Leaf) -> Any:
    if text.strip() == "" and leaf.nullable:
        return None
    if not leaf.json:
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid config: {name} must be JSON: {exc.msg} at character {exc.pos}") from exc


def _set(data: dict[str, Any], path: Path_, value: Any) -> None:
    for part in path[:-1]:
        data = data.setdefault(part, {})
    data[path[-1]] = value
