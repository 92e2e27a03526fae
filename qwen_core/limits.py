"""Bounds on what one chat turn may cost: answer size, time, and the size of what a Space
sends in one piece. A Space is a stranger's server: whatever it sends, a turn ends within
these bounds with :class:`~qwen_core.LimitExceeded` (the partial answer kept, the Space's
job cancelled) instead of eating the caller's memory or hanging forever."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidRequest, LimitExceeded

__all__ = ["Limits", "DEFAULT_LIMITS", "limit_exceeded"]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-turn bounds, passed as ``limits=`` to :func:`~qwen_core.stream_events`,
    :func:`~qwen_core.stream_chat` and their async twins. Each one ends the turn with
    :class:`~qwen_core.LimitExceeded` naming the limit and its value.

    ``max_answer_chars`` (default 10,000,000): the longest answer, and separately the longest
    reasoning, in characters. The largest answers the Spaces give are far below it (the 1M
    demo's output is a few thousand tokens); an answer growing past it is a Space appending
    forever. Counted with one addition per delta (no re-scan of the text).

    ``max_turn_seconds`` (default 1800.0, half an hour): the longest a whole turn may take,
    from the first request to the last message, queue wait included, on the monotonic clock
    checked at every chunk received. It cuts off a Space that drips bytes or sends only
    heartbeats (each of which resets the read timeout, which bounds silence only).

    ``max_config_bytes`` (default 8 MiB): the largest ``GET /config`` (and queue join answer)
    read; the body is read in chunks and reading stops past the cap. The largest recorded
    config (Qwen3-Demo's page, ``tests/replicas/transcripts/qwen3_g5.config.json``) is 87 kB,
    so this leaves ~100x room.

    ``max_line_bytes`` (default 64 MiB): the longest event-stream line (and the longest
    event, which may span several ``data:`` lines) accepted from the queue stream, in bytes.
    Gradio sends every message as one ``data:`` line, and the last one (``process_completed``)
    carries the full outputs: on Qwen2.5-1M the whole chat history, i.e. up to 10,000,000
    input characters, plus the answer. 10M characters are at most 30 MB as UTF-8 for CJK
    text (Gradio's orjson writes UTF-8, 3 bytes per CJK character), or up to 60 MB for input
    that JSON escapes as ``\\uXXXX`` (control or lone surrogate characters, 6 bytes each, an
    unrealistic worst case). 64 MiB admits that message while stopping a line that grows
    without end before it costs more than ~64 MiB (the line is held as bytes while it
    arrives; nothing is decoded until it is complete).
    """

    max_answer_chars: int = 10_000_000
    max_turn_seconds: float = 1800.0
    max_config_bytes: int = 8 * MiB
    max_line_bytes: int = 64 * MiB

    def __post_init__(self) -> None:
        for name in ("max_answer_chars", "max_turn_seconds", "max_config_bytes",
                     "max_line_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidRequest(f"Limits.{name} must be a positive number, got {value!r}")


DEFAULT_LIMITS = Limits()

_UNITS = {
    "max_answer_chars": "characters",
    "max_turn_seconds": "s",
    "max_config_bytes": "bytes",
    "max_line_bytes": "bytes",
}


def limit_exceeded(what: str, name: str, value: float, *, job: bool = True) -> LimitExceeded:
    """The error for ``what`` (e.g. "the answer grew") passing the limit ``name``."""
    shown = f"{value:g}" if isinstance(value, float) else f"{value:,}"
    tail = "; stopped here, and the Space's job cancelled" if job else ""
    return LimitExceeded(
        f"{what} past the limit {name}={shown} {_UNITS.get(name, '')}".rstrip() + tail,
        limit=name, value=value,
    )
