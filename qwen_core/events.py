"""Typed events yielded by :func:`qwen_core.stream_events`.

Small frozen dataclasses named as nouns. Answer text and reasoning never share an event:
``TextDelta``/``TextReplaced`` carry only answer text, ``ReasoningDelta``/``ReasoningReplaced``
only the model's thinking, ``Status`` the Space's progress lines and placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Event",
    "TextDelta",
    "TextReplaced",
    "ReasoningDelta",
    "ReasoningReplaced",
    "Status",
    "QueueStatus",
    "ProcessStarted",
    "Done",
]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """New answer text appended after what was already streamed."""

    text: str


@dataclass(frozen=True, slots=True)
class TextReplaced:
    """The Space rewrote the answer: ``text`` is the whole new answer so far."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """New reasoning (thinking) text, or a note the Space added outside the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningReplaced:
    """The Space rewrote the reasoning: ``text`` is the whole new reasoning so far."""

    text: str


@dataclass(frozen=True, slots=True)
class Status:
    """A progress line from the Space (placeholder such as "Qwen is thinking...", a log
    message, a status line); ``text`` is empty when the Space cleared it."""

    text: str
    level: str = "info"


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """Waiting in the Space's queue: ``rank`` 0 means next; ``eta`` is seconds, if known."""

    rank: int | None
    queue_size: int | None
    eta: float | None


@dataclass(frozen=True, slots=True)
class ProcessStarted:
    """The Space started working on this request (it left the queue)."""

    eta: float | None = None


@dataclass(frozen=True, slots=True)
class Done:
    """The Space finished: the full answer and reasoning as streamed."""

    text: str
    reasoning: str = ""


Event = (
    TextDelta
    | TextReplaced
    | ReasoningDelta
    | ReasoningReplaced
    | Status
    | QueueStatus
    | ProcessStarted
    | Done
)
