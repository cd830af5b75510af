"""What a config reload changes (``POST /admin/reload`` or SIGHUP; ``Orchestrator.reload``).

The models are compared by id. A model whose config differs only in ``HOT_FIELDS`` is updated in
place: its backends keep running. Any other difference (source, engine, options, context,
parallel, ...) needs a new backend: the model is *replaced*, its old backends finish the
requests they hold and stop, and new requests go to the new config. Of the other settings, the
gateway-wide ``limits`` apply at once; the rest (host, port, memory budget, auth, ...) are bound
when the gateway starts, so a change there is reported under ``restart_required``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from nanoserve.config import ModelConfig, Settings

HOT_FIELDS = frozenset({"aliases", "priority", "pinned", "keep_alive", "max_queue", "replicas"})
RELOADED_SETTINGS = frozenset({"models", "limits"})


@dataclass
class ConfigChanges:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # a new backend on the next request
    updated: list[str] = field(default_factory=list)  # in place: backends keep running
    unchanged: list[str] = field(default_factory=list)
    restart_required: list[str] = field(default_factory=list)  # settings that apply after a restart

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _differing(old: ModelConfig, new: ModelConfig) -> set[str]:
    return {name for name in ModelConfig.model_fields if getattr(old, name) != getattr(new, name)}


def compare(old: Settings, new: Settings) -> ConfigChanges:
    changes = ConfigChanges()
    before = {m.id: m for m in old.models}
    after = {m.id: m for m in new.models}
    changes.removed = [model for model in before if model not in after]
    for model, config in after.items():
        if model not in before:
            changes.added.append(model)
        elif not (differing := _differing(before[model], config)):
            changes.unchanged.append(model)
        elif differing <= HOT_FIELDS:
            changes.updated.append(model)
        else:
            changes.replaced.append(model)
    changes.restart_required = [
        name
        for name in Settings.model_fields
        if name not in RELOADED_SETTINGS and getattr(old, name) != getattr(new, name)
    ]
    return changes
