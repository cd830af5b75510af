"""Model names → configs: ids, aliases, and Ollama's implicit ``:latest`` tag."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from nanoserve.config import ModelConfig
from nanoserve.errors import ModelNotFound

LATEST = ":latest"


class Registry:
    def __init__(self, models: Iterable[ModelConfig]):
        self._by_id: dict[str, ModelConfig] = {}
        self._names: dict[str, ModelConfig] = {}
        for model in models:
            self._by_id[model.id] = model
            for name in model.names:
                self._names[name] = model

    def __iter__(self) -> Iterator[ModelConfig]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def find(self, name: str) -> ModelConfig | None:
        """The model a client's name refers to: exact, or with/without ``:latest``."""
        if (model := self._names.get(name)) is not None:
            return model
        if name.endswith(LATEST):
            return self._names.get(name[: -len(LATEST)])
        return self._names.get(name + LATEST)

    def get(self, name: str) -> ModelConfig:
        model = self.find(name)
        if model is None:
            raise ModelNotFound(name)
        return model
