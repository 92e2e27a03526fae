"""What every Space adapter declares, and the small value types adapters exchange with the
protocol core. Adapters never do I/O: they build the event's ``data`` and say where in the
outputs the answer, reasoning and status text live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ..conversation import Conversation

__all__ = ["Segment", "Layout", "Payload", "SpaceAdapter", "ModelSpec", "hf_space_url"]

Kind = Literal["answer", "reasoning", "status"]
Path = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Segment:
    """A string leaf of the outputs and what it holds. ``path`` starts with the output
    index. ``marker``: for an answer leaf, text from this marker on is not answer (it is
    reported as reasoning), e.g. the 1M demo's ``\\n<summary>`` tail."""

    kind: Kind
    path: Path
    marker: str | None = None


@dataclass(frozen=True, slots=True)
class Layout:
    """How the running Space is laid out, from ``GET /config`` (or the adapter's known
    values when discovery failed)."""

    protocol: str
    api_prefix: str
    fn_index: int
    version: str | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    input_props: tuple[Mapping[str, Any], ...] = ()
    discovered: bool = True

    @property
    def major(self) -> int | None:
        try:
            return int((self.version or "").split(".")[0])
        except ValueError:
            return None


@dataclass(slots=True)
class Payload:
    """The ``data`` for the queue join plus what the adapter needs to read the outputs."""

    data: list[Any]
    answer_index: int = 0  # e.g. which chatbot pair holds this turn's answer
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model id served by a Space: ``variant`` is what the Space's selector takes."""

    id: str
    label: str
    variant: str | None = None
    aliases: tuple[str, ...] = ()


def hf_space_url(space_id: str) -> str:
    """``Qwen/Qwen2.5-Max-Demo`` -> ``https://qwen-qwen2-5-max-demo.hf.space``."""
    sub = space_id.lower()
    for ch in "/._":
        sub = sub.replace(ch, "-")
    return f"https://{sub}.hf.space"


class SpaceAdapter:
    """Base of the per-Space adapters (one module each). Subclasses set the class
    attributes and implement :meth:`build` and :meth:`segments`."""

    space_id: ClassVar[str]
    label: ClassVar[str]
    seed_name: ClassVar[str]  # the g4f-era class name, e.g. "Qwen_Qwen_2_5_Max"
    fn_index: ClassVar[int]
    api_name: ClassVar[str | None] = None
    protocol: ClassVar[str] = "sse_v3"
    api_prefix: ClassVar[str] = ""
    # expected component types of the event's inputs/outputs (None: any type; the whole
    # tuple None: not checked)
    input_types: ClassVar[tuple[frozenset[str] | None, ...] | None] = None
    output_types: ClassVar[tuple[frozenset[str] | None, ...] | None] = None
    default_system: ClassVar[str] = ""
    models: ClassVar[tuple[ModelSpec, ...]] = ()
    space_aliases: ClassVar[tuple[str, ...]] = ()  # aliases of the default model
    supports_system: ClassVar[bool] = True
    supports_history: ClassVar[bool] = True  # native history in the event's inputs
    supports_reasoning: ClassVar[bool] = False
    max_input_chars: ClassVar[int] = 1_000_000
    options: ClassVar[Mapping[str, str]] = {}  # per-Space options: name -> description

    @classmethod
    def url(cls) -> str:
        return hf_space_url(cls.space_id)

    @classmethod
    def known_layout(cls) -> Layout:
        return Layout(
            protocol=cls.protocol, api_prefix=cls.api_prefix, fn_index=cls.fn_index,
            discovered=False,
        )

    @classmethod
    def system_text(cls, conv: Conversation) -> str:
        return cls.default_system if conv.system is None else conv.system

    @classmethod
    def build(
        cls, model: ModelSpec, conv: Conversation, layout: Layout, options: Mapping[str, Any]
    ) -> Payload:
        raise NotImplementedError

    @classmethod
    def segments(cls, outputs: list[Any], payload: Payload) -> list[Segment]:
        """Where this turn's texts are in ``outputs`` right now (may be empty early on)."""
        raise NotImplementedError


def text_of(value: Any) -> str | None:
    """A message side's text: a plain string, ``{"text": ...}`` or ``{"content": ...}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for key in ("text", "content"):
            text = value.get(key)
            if isinstance(text, str):
                return text
    return None
