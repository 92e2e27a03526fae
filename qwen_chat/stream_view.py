"""An answer as it streams, on the page: a progress line (queue position, ETA, the
Space's status), a collapsed "Thinking" expander (reasoning and status lines) and the
answer, written with ``st.write_stream`` from coalesced deltas."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import qwen_core

from .blocks import stream_blocks
from .display import display_markdown, queue_line
from .draft import Change, Draft, coalesce

__all__ = ["TurnView", "MAX_SHOWN_CHARS", "thinking_markdown"]

MAX_SHOWN_CHARS = 200_000  # more is stored and downloadable, not drawn


class TurnView:
    """Draws one streaming answer. ``on_event`` is called after every event (the page
    stores the answer from there at most every 2 s)."""

    def __init__(self, *, images: bool = False,
                 on_event: Callable[[Draft], None] | None = None) -> None:
        self.progress = st.empty()
        self.thinking = st.empty()
        self.answer = st.empty()
        self.note = st.empty()
        self._images = images
        self._on_event = on_event
        self._inner: DeltaGenerator | None = None
        self._shown_at = 0.0
        self._answering = False
        self._capped = False

    def run(self, events: Iterator[qwen_core.Event], draft: Draft) -> None:
        self.progress.caption(":material/hourglass_top: " + queue_line(None))
        batches = coalesce(self._chunks(events, draft))
        while True:
            restart: list[bool] = []
            with self.answer.container(key="answer-live"):
                st.write_stream(stream_blocks(batches, draft, restart, images=self._images,
                                              cap=MAX_SHOWN_CHARS, draw=st.markdown))
            if not restart:
                break  # else: the Space rewrote its answer: draw it anew
        self._show_thinking(draft, final=True)
        self.progress.empty()

    def _chunks(self, events: Iterator[qwen_core.Event], draft: Draft) -> Iterator[str]:
        """Raw text deltas for the coalescer (``""`` is a tick that lets a due batch go)."""
        for event in events:
            change = draft.apply(event)
            if self._on_event is not None:
                self._on_event(draft)
            if change & (Change.REASONING | Change.STATUS):
                self._show_thinking(draft)
            if change & (Change.TEXT | Change.REWRITE):
                if not self._answering:
                    self._answering = True
                    self.progress.empty()
                if draft.size > MAX_SHOWN_CHARS and not self._capped:
                    self._capped = True
                    self.note.caption(
                        f":material/info: This answer is longer than {MAX_SHOWN_CHARS:,} "
                        "characters; the rest is kept and offered as a download."
                    )
                if change & Change.REWRITE:
                    yield " "  # any text makes the coalescer flush: the view redraws
                elif not self._capped or draft.size - len(draft.delta) < MAX_SHOWN_CHARS:
                    yield draft.delta
                else:
                    yield ""
                continue
            if not self._answering and change & (Change.QUEUE | Change.STATUS):
                line = draft.status or queue_line(draft.queue, draft.started)
                self.progress.caption(":material/hourglass_top: " + line)
            yield ""

    def _show_thinking(self, draft: Draft, final: bool = False) -> None:
        if not (draft.reasoning_size or draft.statuses):
            return
        if self._inner is None:
            with self.thinking.expander("Thinking", icon=":material/psychology:"):
                self._inner = st.empty()
        now = time.monotonic()  # re-drawn whole, so at most every 0.1 s (longer when long)
        if not final and now - self._shown_at < max(0.1, draft.reasoning_size / 2e6):
            return
        self._shown_at = now
        self._inner.markdown(thinking_markdown(draft, images=self._images))


def thinking_markdown(draft: Draft, *, images: bool = False) -> str:
    """What the Thinking section shows: the last 50 status lines (in italics) and the
    reasoning (its last :data:`MAX_SHOWN_CHARS` when longer)."""
    lines = [f"_{line}_" for line in draft.statuses[-50:]]
    reasoning = draft.reasoning
    if len(reasoning) > MAX_SHOWN_CHARS:
        reasoning = "…" + reasoning[-MAX_SHOWN_CHARS:]
    return display_markdown("\n\n".join([*lines, reasoning]).strip(), images=images)
