"""The answer being streamed, and the coalescing of its deltas (pure: no Streamlit).

A :class:`Draft` absorbs :mod:`qwen_core.events` at a cost that does not grow with the
answer (no re-joining of the whole text) and says what each event changed; the
:class:`Coalescer` keeps ``st.write_stream`` from re-sending the whole answer per token.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Iterator

import qwen_core
from qwen_core import events as ev

from .display import clean_text

__all__ = ["Change", "Draft", "Coalescer", "coalesce"]


class Change(enum.Flag):
    """What one event changed in a :class:`Draft`."""

    NONE = 0
    TEXT = enum.auto()  # answer text appended: ``draft.delta``
    REWRITE = enum.auto()  # the answer was rewritten (not an append): redraw ``draft.text``
    REASONING = enum.auto()
    STATUS = enum.auto()
    QUEUE = enum.auto()  # queue position changed or the Space started working
    DONE = enum.auto()


class Draft:
    """The answer being streamed. :meth:`apply` takes each event in O(size of the event)
    (parts are joined lazily), normalises rewrites that only extend the text into plain
    appends, and says what changed."""

    __slots__ = (
        "model", "delta", "queue", "started", "done", "statuses", "_seen", "rewrites",
        "_parts", "_text", "_size", "_rparts", "_reasoning", "_rsize",
    )

    def __init__(self, model: str) -> None:
        self.model = model
        self.delta = ""  # the text appended by the last TEXT change
        self.queue: ev.QueueStatus | None = None
        self.started = False
        self.done = False
        self.statuses: list[str] = []  # distinct status lines, in order
        self._seen: set[str] = set()  # the same lines, for an O(1) duplicate check
        self.rewrites = 0  # how often the Space rewrote the answer (not an append)
        self._parts: list[str] = []
        self._text: str | None = ""
        self._size = 0
        self._rparts: list[str] = []
        self._reasoning: str | None = ""
        self._rsize = 0

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "".join(self._parts)
            self._parts = [self._text]
        return self._text

    @property
    def reasoning(self) -> str:
        if self._reasoning is None:
            self._reasoning = "".join(self._rparts)
            self._rparts = [self._reasoning]
        return self._reasoning

    @property
    def size(self) -> int:
        """Length of the answer text (without joining it)."""
        return self._size

    @property
    def reasoning_size(self) -> int:
        """Length of the reasoning (without joining it)."""
        return self._rsize

    @property
    def status(self) -> str:
        return self.statuses[-1] if self.statuses else ""

    def _append(self, text: str) -> Change:
        if not text:
            return Change.NONE
        self._parts.append(text)
        self._text = None
        self._size += len(text)
        self.delta = text
        return Change.TEXT

    def _replace(self, text: str) -> Change:
        current = self.text
        if text == current:
            return Change.NONE
        if text.startswith(current):
            return self._append(text[len(current):])
        self._parts, self._text, self._size, self.delta = [text], text, len(text), ""
        self.rewrites += 1
        return Change.REWRITE

    def _set_reasoning(self, text: str) -> Change:
        if text == self.reasoning:
            return Change.NONE
        self._rparts, self._reasoning, self._rsize = [text], text, len(text)
        return Change.REASONING

    def apply(self, event: qwen_core.Event) -> Change:
        """Absorb one event; return what changed."""
        kind = type(event)
        if kind is ev.TextDelta:
            return self._append(clean_text(event.text))
        if kind is ev.TextReplaced:
            return self._replace(clean_text(event.text))
        if kind is ev.ReasoningDelta:
            if not event.text:
                return Change.NONE
            text = clean_text(event.text)
            self._rparts.append(text)
            self._reasoning = None
            self._rsize += len(text)
            return Change.REASONING
        if kind is ev.ReasoningReplaced:
            return self._set_reasoning(clean_text(event.text))
        if kind is ev.Status:
            text = clean_text(event.text.strip())
            if not text or text in self._seen:
                return Change.NONE
            self._seen.add(text)
            self.statuses.append(text)
            return Change.STATUS
        if kind is ev.QueueStatus:
            self.queue = event
            return Change.QUEUE
        if kind is ev.ProcessStarted:
            self.queue, self.started = None, True
            return Change.QUEUE
        if kind is ev.Done:
            change = self._replace(clean_text(event.text)) | Change.DONE
            if event.reasoning:
                change |= self._set_reasoning(clean_text(event.reasoning))
            self.done = True
            return change
        return Change.NONE


# --- coalescing deltas for st.write_stream -------------------------------------------------


class Coalescer:
    """Batches text deltas so a renderer that re-sends the whole text per chunk (as
    ``st.write_stream`` does) gets few, larger chunks: :meth:`add` text, :meth:`due`
    says a batch may go out, :meth:`take` returns it. A batch goes out at most every
    ``interval`` seconds. With ``chars_per_second`` the interval grows with the text
    already sent (``sent / chars_per_second``), for a renderer whose cost per flush grows
    with the answer; the page's renderer re-sends only the open block
    (:mod:`qwen_chat.blocks`), so it keeps the interval fixed: no back-off."""

    def __init__(
        self,
        interval: float = 0.05,
        *,
        clock: Callable[[], float] = time.monotonic,
        chars_per_second: float | None = None,
    ) -> None:
        self.interval = interval
        self.chars_per_second = chars_per_second
        self._clock = clock
        self._buffer: list[str] = []
        self._sent = 0
        self._last: float | None = None  # nothing sent yet: the first text goes at once

    @property
    def pending(self) -> bool:
        return bool(self._buffer)

    def add(self, text: str) -> None:
        if text:
            self._buffer.append(text)

    def due(self) -> bool:
        if not self._buffer:
            return False
        if self._last is None:
            return True
        wait = self.interval
        if self.chars_per_second:
            wait = max(wait, self._sent / self.chars_per_second)
        return self._clock() - self._last >= wait

    def take(self) -> str:
        text = "".join(self._buffer)
        self._buffer.clear()
        self._sent += len(text)
        self._last = self._clock()
        return text


def coalesce(
    chunks: Iterable[str],
    interval: float = 0.05,
    *,
    clock: Callable[[], float] = time.monotonic,
    chars_per_second: float | None = None,
) -> Iterator[str]:
    """Re-chunk ``chunks``: yield at most every ``interval`` seconds, plus a final flush.
    An empty chunk is a tick (no text, but a chance to flush a due batch), so a source can
    yield ``""`` on events that carry no answer text. Text is never delayed past the next
    chunk or tick that finds it due, nor past the end."""
    batcher = Coalescer(interval, clock=clock, chars_per_second=chars_per_second)
    for chunk in chunks:
        batcher.add(chunk)
        if batcher.due():
            yield batcher.take()
    if batcher.pending:
        yield batcher.take()


