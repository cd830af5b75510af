"""Settings data merged from layers, remembering which layer set each value (pure dict work).

Layers are added from the highest precedence down (command line, environment, file), so
``put`` never overrides what is already there, and ``fill`` sets only what no layer set: a
profile's presets and, last, the defaults. Mappings merge key by key; anything else (a number, a
string, a list such as ``models``) is one value, set whole by one layer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Path_ = tuple[str, ...]


def leaves(data: Mapping[str, Any], path: Path_ = (), *, lists: bool = False) -> Iterator[tuple[Path_, Any]]:
    """(path, value) of every value that is not a non-empty mapping (nor, with ``lists``, a
    non-empty list: its items' paths end in their index)."""
    for key, value in data.items():
        here = (*path, str(key))
        if isinstance(value, Mapping) and value:
            yield from leaves(value, here, lists=lists)
        elif lists and isinstance(value, list) and value:
            yield from leaves({str(i): item for i, item in enumerate(value)}, here, lists=lists)
        else:
            yield here, value


def dotted(path: Path_) -> str:
    return ".".join(path)


@dataclass
class Layers:
    data: dict[str, Any] = field(default_factory=dict)
    origins: dict[Path_, str] = field(default_factory=dict)

    def put(self, data: Mapping[str, Any], origin: str | Mapping[Path_, str]) -> None:
        """Add a lower layer: its values where no higher layer set one (or a parent of one)."""
        for path, value in leaves(data):
            if self._taken(path):
                continue
            self._set(path, value)
            self.origins[path] = origin if isinstance(origin, str) else origin.get(path, "?")

    def has(self, path: Path_) -> bool:
        return self._taken(path)

    def force(self, path: Path_, value: Any, origin: str) -> None:
        """Set ``path`` whatever lower layers said (a preset applied to default data)."""
        self._set(path, value)
        self.origins = {p: o for p, o in self.origins.items() if p[: len(path)] != path}
        self.origins[path] = origin

    def _taken(self, path: Path_) -> bool:
        """Whether ``path``, an ancestor of it or something under it was set."""
        return any(p[: len(path)] == path or path[: len(p)] == p for p in self.origins)

    def _set(self, path: Path_, value: Any) -> None:
        data = self.data
        for part in path[:-1]:
            data = data.setdefault(part, {})
        data[path[-1]] = value

    def given(self, path: Path_) -> bool:
        """Whether the merged data holds ``path`` (list items by index): a value a layer gave,
        not one the settings model defaults."""
        data: Any = self.data
        for part in path:
            if isinstance(data, Mapping) and part in data:
                data = data[part]
            elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
                data = data[int(part)]
            else:
                return False
        return True

    def origin_of(self, path: Path_) -> str | None:
        """The layer that set ``path`` or the nearest ancestor of it."""
        for n in range(len(path), 0, -1):
            if (origin := self.origins.get(path[:n])) is not None:
                return origin
        return None
