"""The model registry: every model id, its aliases, and the Space that serves it."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from types import MappingProxyType

from .errors import InvalidRequest
from .spaces.base import ModelSpec, SpaceAdapter
from .spaces.qwen2_72b import Qwen2_72B
from .spaces.qwen3 import Qwen3
from .spaces.qwen25 import Qwen25
from .spaces.qwen25_1m import Qwen25_1M
from .spaces.qwen25_max import Qwen25Max

__all__ = ["Model", "MODELS", "ADAPTERS", "resolve_model"]

ADAPTERS: tuple[type[SpaceAdapter], ...] = (Qwen25Max, Qwen25, Qwen2_72B, Qwen25_1M, Qwen3)


@dataclass(frozen=True, slots=True)
class Model:
    """A model id and what its Space can do."""

    id: str
    label: str
    space_id: str
    space_label: str
    variant: str | None
    aliases: tuple[str, ...]
    supports_system: bool
    supports_history: bool
    supports_reasoning: bool
    adapter: type[SpaceAdapter]

    @property
    def spec(self) -> ModelSpec:
        return next(m for m in self.adapter.models if m.id == self.id)

    @property
    def url(self) -> str:
        return self.adapter.url()


def _build() -> tuple[dict[str, Model], dict[str, str]]:
    models: dict[str, Model] = {}
    names: dict[str, str] = {}
    for adapter in ADAPTERS:
        for spec in adapter.models:
            models[spec.id] = Model(
                id=spec.id, label=spec.label, space_id=adapter.space_id,
                space_label=adapter.label, variant=spec.variant, aliases=spec.aliases,
                supports_system=adapter.supports_system,
                supports_history=adapter.supports_history,
                supports_reasoning=adapter.supports_reasoning, adapter=adapter,
            )
            for name in (spec.id, *spec.aliases):
                names[name.lower()] = spec.id
        default = adapter.models[0].id
        for name in (adapter.seed_name, adapter.space_id, *adapter.space_aliases):
            names.setdefault(name.lower(), default)
    return models, names


_models, _names = _build()
MODELS: MappingProxyType[str, Model] = MappingProxyType(_models)


def resolve_model(name: str | Model) -> Model:
    """A canonical id, an alias, a seed class name or a Space id -> :class:`Model`.
    Unknown names raise :class:`InvalidRequest` naming the closest ids."""
    if isinstance(name, Model):
        return name
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest(f"model must be a model id string, got {name!r}")
    key = name.strip().lower()
    if key in _names:
        return _models[_names[key]]
    close = difflib.get_close_matches(key, list(_names), n=3, cutoff=0.6)
    hint = ", ".join(dict.fromkeys(_names[c] for c in close)) if close else ""
    suggestion = f"; did you mean {hint}?" if hint else ""
    raise InvalidRequest(
        f"unknown model {name!r}{suggestion} (python -m qwen_core --list shows every model)"
    )
