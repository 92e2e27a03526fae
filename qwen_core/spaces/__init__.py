"""One seed-compatible class per Space (the names and attributes of the g4f-era
providers), each with a sync ``stream`` and an async ``create_async_generator`` that yield
the answer's text deltas. The adapters behind them live in this package's modules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

from ..errors import InvalidRequest
from .base import SpaceAdapter
from .qwen2_72b import Qwen2_72B
from .qwen3 import Qwen3
from .qwen25 import Qwen25
from .qwen25_1m import Qwen25_1M
from .qwen25_max import Qwen25Max

__all__ = [
    "SpaceProvider",
    "Qwen_Qwen_2_5_Max",
    "Qwen_Qwen_2_5",
    "Qwen_Qwen_2_72B",
    "Qwen_Qwen_2_5M",
    "Qwen_Qwen_3",
    "PROVIDERS",
]


class SpaceProvider:
    """Common behaviour of the per-Space classes; subclasses name their adapter."""

    adapter: ClassVar[type[SpaceAdapter]]
    label: ClassVar[str]
    url: ClassVar[str]
    space_id: ClassVar[str]
    supports_stream: ClassVar[bool] = True
    supports_system_message: ClassVar[bool]
    supports_message_history: ClassVar[bool]
    default_model: ClassVar[str]
    model_aliases: ClassVar[dict[str, str]]
    models: ClassVar[list[str]]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        a = cls.adapter
        cls.label, cls.url, cls.space_id = a.label, a.url(), a.space_id
        cls.supports_system_message = a.supports_system
        cls.supports_message_history = True  # native or flattened, history always reaches it
        cls.default_model = a.models[0].id
        cls.models = [m.id for m in a.models]
        cls.model_aliases = {alias: m.id for m in a.models for alias in m.aliases}

    @classmethod
    def get_model(cls, model: str | None) -> str:
        """This Space's canonical id for ``model`` (empty: the default model)."""
        if not model:
            return cls.default_model
        if model in cls.models:
            return model
        lowered = model.lower()
        for name in (*cls.models, *cls.model_aliases):
            if name.lower() == lowered:
                return cls.model_aliases.get(name, name)
        if lowered in (cls.adapter.seed_name.lower(), cls.space_id.lower()):
            return cls.default_model
        raise InvalidRequest(
            f"{cls.label} does not serve model {model!r}; it serves {', '.join(cls.models)}",
            space_id=cls.space_id,
        )

    @classmethod
    def stream(cls, model: str | None, messages: Any, **kwargs: Any) -> Iterator[str]:
        from ..client import stream_chat

        return stream_chat(cls.get_model(model), messages, **kwargs)

    @classmethod
    async def create_async_generator(
        cls, model: str | None, messages: Any, proxy: str | None = None, **kwargs: Any
    ) -> AsyncIterator[str]:
        from ..client import astream_chat

        async for text in astream_chat(cls.get_model(model), messages, proxy=proxy, **kwargs):
            yield text


class Qwen_Qwen_2_5_Max(SpaceProvider):
    adapter = Qwen25Max


class Qwen_Qwen_2_5(SpaceProvider):
    adapter = Qwen25


class Qwen_Qwen_2_72B(SpaceProvider):
    adapter = Qwen2_72B


class Qwen_Qwen_2_5M(SpaceProvider):
    adapter = Qwen25_1M


class Qwen_Qwen_3(SpaceProvider):
    adapter = Qwen3


PROVIDERS: tuple[type[SpaceProvider], ...] = (
    Qwen_Qwen_2_5_Max, Qwen_Qwen_2_5, Qwen_Qwen_2_72B, Qwen_Qwen_2_5M, Qwen_Qwen_3,
)
