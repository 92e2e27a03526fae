"""The one exception family of qwen_core.

Every failure reaches the caller as a :class:`SpaceError` subclass. Each carries the Space
it concerns, the Space's own words where it said something, and the answer text already
streamed before the failure (``partial``) so that nothing the user saw is lost.
"""

from __future__ import annotations

__all__ = [
    "SpaceError",
    "SpaceUnavailable",
    "QueueFull",
    "RateLimited",
    "SpaceAPIChanged",
    "GenerationError",
    "InvalidRequest",
    "LimitExceeded",
]


class SpaceError(Exception):
    """Base class: anything that went wrong while talking to a Space."""

    def __init__(
        self,
        message: str,
        *,
        space_id: str | None = None,
        space_message: str | None = None,
        partial: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.space_id = space_id
        self.space_message = space_message
        self.partial = partial

    def __str__(self) -> str:
        where = f"[{self.space_id}] " if self.space_id else ""
        return f"{where}{self.message}"


class SpaceUnavailable(SpaceError):
    """Cannot connect, 5xx, a sleeping or building Space, a stream cut, or silence too long."""


class QueueFull(SpaceError):
    """The Space's queue refused the job (HTTP 503 on join)."""


class RateLimited(SpaceError):
    """The Space kept answering 429; ``retry_after`` is its last hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class SpaceAPIChanged(SpaceError):
    """The Space no longer has the expected event or output shape (or speaks another protocol)."""


class GenerationError(SpaceError):
    """The Space reported a failure while generating; ``space_message`` holds its words."""


class InvalidRequest(SpaceError):
    """The caller's request is wrong: unknown model, malformed messages, oversized input."""


class LimitExceeded(SpaceError):
    """A bound of :class:`~qwen_core.Limits` ended the turn: the answer grew too long, the
    turn took too long, or the Space sent an oversized line or reply. ``limit`` names the
    setting (e.g. ``"max_answer_chars"``), ``value`` is its value; ``partial`` keeps the
    answer text received so far, and the Space's job (if one was running) is cancelled."""

    def __init__(
        self, message: str, *, limit: str = "", value: float = 0, **kw: object
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.limit = limit
        self.value = value
