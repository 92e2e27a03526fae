"""Two answers streaming side by side (compare mode): one column each, drawn from one
loop over a :class:`~qwen_chat.duo.Duo`.

Writes to the browser are coalesced for both columns together: at most one element is
written every :data:`FRAME` seconds (the side that waited longest goes first), so the
frames sent are bounded by time, not by the tokens of two answers. Each answer is drawn
as a single answer is (:mod:`qwen_chat.blocks`): a finished block becomes an element of
its own, sent once, and only the open block after it is re-written."""

from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import qwen_core

from .blocks import BlockSplitter
from .display import (
    display_markdown,
    escape_markdown,
    queue_line,
    redact,
    stable_prefix_length,
)
from .draft import Change, Draft
from .duo import Duo, Ended
from .stream_view import MAX_SHOWN_CHARS, thinking_markdown

__all__ = ["SideView", "DuoView", "FRAME"]

# seconds between two writes to the browser, for both columns together (each column,
# written in turn, updates every 2 x FRAME while both stream). 60 ms, not one answer's
# 50: the page's own two runs (question, final rerun) send ~130 messages, and a
# comparison must stay within duration / 50 ms + 60 messages in all (bench/ui.py).
FRAME = 0.06
IDLE = 0.25  # while nothing changes, how often Stop is looked for


class SideView:
    """One column's streaming answer: queue line, Thinking, the answer, its error."""

    def __init__(self, draft: Draft, *, images: bool = False,
                 on_event: Callable[[Draft], None] | None = None) -> None:
        self.draft = draft
        self.progress = st.empty()
        self.thinking = st.empty()
        self.body = st.empty()
        self.images = images
        self.on_event = on_event
        self.ended: Ended | None = None
        self.drawn_at = 0.0
        self._inner: DeltaGenerator | None = None
        self._blocks: DeltaGenerator | None = None
        self._tail: DeltaGenerator | None = None
        self._splitter = BlockSplitter()
        self._done = 0  # raw offset where the open block starts
        self._shown = ""  # display text of the open block on the page
        self._rewrites = 0
        self._answering = False
        self._dirty = Change.QUEUE  # what is not on the page yet

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    def apply(self, item: qwen_core.Event | Ended) -> None:
        if isinstance(item, Ended):
            self.ended = item
            self._dirty |= Change.DONE | Change.TEXT
            return
        change = self.draft.apply(item)
        if self.on_event is not None:
            self.on_event(self.draft)
        self._dirty |= change

    def draw(self) -> None:
        """Write one element that is behind: the answer first, then Thinking, then the
        queue line."""
        self.drawn_at = time.monotonic()
        draft = self.draft
        if draft.size and not self._answering:
            self._answering = True
            self.progress.empty()
            self._dirty &= ~Change.QUEUE
            return
        if self._dirty & (Change.TEXT | Change.REWRITE | Change.DONE) and self._draw_text():
            return
        self._dirty &= ~(Change.TEXT | Change.REWRITE)
        if self._dirty & (Change.REASONING | Change.STATUS):
            self._dirty &= ~(Change.REASONING | Change.STATUS)
            if draft.reasoning_size or draft.statuses:
                self._draw_thinking()
                return
        if self._dirty & Change.QUEUE:
            self._dirty &= ~Change.QUEUE
            if not self._answering and self.ended is None:
                line = draft.status or queue_line(draft.queue, draft.started)
                self.progress.caption(":material/hourglass_top: " + line)
                return
        if self._dirty & Change.DONE:
            self._dirty = Change.NONE
            error = self.ended.error if self.ended is not None else None
            if isinstance(error, qwen_core.SpaceError):  # the page shows it with Retry next
                self.progress.error(escape_markdown(redact(str(error)), 2000),
                                    icon=":material/error:")
            else:
                self.progress.empty()

    def _draw_text(self) -> bool:
        """Write the next finished blocks or the open block; False: nothing to write."""
        draft = self.draft
        final = self.ended is not None
        if self._blocks is None or draft.rewrites != self._rewrites:  # (re)start
            self._rewrites = draft.rewrites
            self._splitter, self._done, self._shown = BlockSplitter(), 0, ""
            self._blocks, self._tail = self.body.container(), None
            return True
        text = draft.text if draft.size <= MAX_SHOWN_CHARS else draft.text[:MAX_SHOWN_CHARS]
        cuts = self._splitter.feed(text, final=final)
        if cuts:  # the finished blocks, as one element (each cut renders as the whole):
            block = display_markdown(text[self._done:cuts[-1]], images=self.images)
            self._done, self._shown = cuts[-1], ""
            slot = self._tail if self._tail is not None else self._blocks
            slot.markdown(block)  # it takes the open block's place
            self._tail = None
            return True
        tail = text[self._done:]
        if not final:  # only what later text cannot change (as for one answer)
            pending = self._splitter.pending
            if pending is not None:
                tail = tail[:pending - self._done]
            tail = tail[:stable_prefix_length(tail)]
        shown = display_markdown(tail, images=self.images)
        if shown == self._shown:
            return False
        self._shown = shown
        if self._tail is None:
            self._tail = self._blocks.markdown(shown)
        else:
            self._tail.markdown(shown)
        return True

    def _draw_thinking(self) -> None:
        draft = self.draft
        if self._inner is None:
            with self.thinking.expander("Thinking", icon=":material/psychology:"):
                self._inner = st.empty()
        self._inner.markdown(thinking_markdown(draft, images=self.images))


class DuoView:
    """Draws the sides of a :class:`Duo` until every side ended."""

    def __init__(self, sides: list[SideView]) -> None:
        self.sides = sides

    def run(self, duo: Duo) -> None:
        last = 0.0
        while duo.open or any(side.dirty for side in self.sides):
            behind = [side for side in self.sides if side.dirty]
            now = time.monotonic()
            wait = max(0.0, last + FRAME - now) if behind else IDLE
            if duo.open:
                for index, item in duo.poll(wait):
                    self.sides[index].apply(item)
            elif wait:
                time.sleep(wait)
            now = time.monotonic()
            behind = [side for side in self.sides if side.dirty]
            if behind and now - last >= FRAME:
                min(behind, key=lambda side: side.drawn_at).draw()
                last = now
            elif not behind:
                st.session_state.get("_")  # a yield point: Stop is noticed here
