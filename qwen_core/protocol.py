"""The Gradio queue protocol, sans-IO: parsed queue messages in, typed events out.

:class:`TurnDecoder` follows one queued job (one ``event_id``): it keeps the Space's
outputs, applies diffs in place, asks the Space adapter where the answer, reasoning and
status texts live, and turns changes of those texts into :mod:`qwen_core.events`.

Cost per update does not grow with the answer: an update made only of string ``append``
edits to the leaves currently holding the answer or reasoning (the normal case for a
streaming chat) is routed straight to the caller without touching the outputs tree; the
appended pieces are kept aside and joined into the tree only when something structural
happens (a new message, a rewrite, the final result).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from .diff import DiffError, apply_edit
from .errors import GenerationError, QueueFull, SpaceAPIChanged, SpaceError, SpaceUnavailable
from .events import (
    Done,
    Event,
    ProcessStarted,
    QueueStatus,
    ReasoningDelta,
    ReasoningReplaced,
    Status,
    TextDelta,
    TextReplaced,
)
from .spaces.base import Path, Payload, Segment, SpaceAdapter

__all__ = ["Msg", "TurnDecoder", "DIFF_PROTOCOLS", "SUPPORTED_PROTOCOLS"]

SUPPORTED_PROTOCOLS = ("sse_v1", "sse_v2", "sse_v2.1", "sse_v3")
DIFF_PROTOCOLS = frozenset({"sse_v2", "sse_v2.1", "sse_v3"})
REASONING_SEPARATOR = "\n\n"


class Msg(StrEnum):
    """The ``msg`` values of Gradio's queue messages."""

    HEARTBEAT = "heartbeat"
    ESTIMATION = "estimation"
    PROCESS_STARTS = "process_starts"
    PROCESS_GENERATING = "process_generating"
    PROCESS_STREAMING = "process_streaming"
    PROCESS_COMPLETED = "process_completed"
    PROGRESS = "progress"
    LOG = "log"
    CLOSE_STREAM = "close_stream"
    UNEXPECTED_ERROR = "unexpected_error"
    QUEUE_FULL = "queue_full"
    SERVER_STOPPED = "Server stopped unexpectedly."


def _split_marker(text: str, marker: str | None, final: bool) -> tuple[str, str, str]:
    """``(answer, tail, held)``: text before the marker, the marker and what follows, and a
    trailing piece that might be the start of the marker (held back until it is clear)."""
    if marker is None:
        return text, "", ""
    found = text.find(marker)
    if found >= 0:
        return text[:found], text[found:], ""
    if final:
        return text, "", ""
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:k]):
            return text[:-k], "", text[-k:]
    return text, "", ""


class _Channel:
    """Text emitted so far on one channel (answer or reasoning), kept as chunks."""

    __slots__ = ("chunks",)

    def __init__(self) -> None:
        self.chunks: list[str] = []

    def text(self) -> str:
        if len(self.chunks) > 1:
            self.chunks = ["".join(self.chunks)]
        return self.chunks[0] if self.chunks else ""

    def update(self, new: str) -> str | None:
        """Make the channel hold ``new``; return the appended delta, or None if rewritten."""
        # compare chunk by chunk instead of joining them (no copy of the whole text), then
        # keep ``new`` itself: it already holds the text, so the chunks can be dropped
        pos = 0
        for chunk in self.chunks:
            if not new.startswith(chunk, pos):
                self.chunks = [new]
                return None
            pos += len(chunk)
        self.chunks = [new] if new else []
        return new[pos:]


class TurnDecoder:
    """Follows one job on a Space's queue stream. Feed it every parsed message of the data
    stream with :meth:`feed`; it returns the events for the caller and raises a
    :class:`~qwen_core.SpaceError` subclass when the Space fails. :attr:`finished` is set
    once the job completed successfully (the last event returned is :class:`Done`)."""

    def __init__(
        self,
        adapter: type[SpaceAdapter],
        payload: Payload,
        *,
        protocol: str = "sse_v3",
        event_id: str | None = None,
    ) -> None:
        self.adapter = adapter
        self.payload = payload
        self.protocol = protocol
        self.event_id = event_id
        self.finished = False
        self.started = False
        self._outputs: list[Any] | None = None
        self._pending: dict[Path, list[str]] = {}  # appends not yet joined into the tree
        self._segments: list[Segment] = []
        self._tails: dict[Path, str] = {}  # leaf path -> kind, for the fast path
        self._answer = _Channel()
        self._reasoning = _Channel()
        self._held = ""  # answer text that may be the start of the answer's marker
        self._marker_hit = False
        self._status = ""
        self._answer_marker: str | None = None  # marker of the fast-path answer leaf

    # -- public -----------------------------------------------------------------------

    @property
    def answer(self) -> str:
        """The answer text delivered to the caller so far."""
        return self._answer.text()

    @property
    def reasoning(self) -> str:
        return self._reasoning.text()

    def feed(self, message: Any) -> list[Event]:
        """Handle one queue message (a decoded JSON object)."""
        try:
            return self._feed(message)
        except SpaceError as exc:
            if not exc.space_id:
                exc.space_id = self.adapter.space_id
            if not exc.partial:
                exc.partial = self.answer
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, RecursionError,
                OverflowError) as exc:
            raise SpaceAPIChanged(
                f"the Space sent a queue message qwen_core cannot read ({exc!r})",
                space_id=self.adapter.space_id,
                partial=self.answer,
            ) from exc

    def stream_ended(self) -> None:
        """The data stream ended (cleanly or not) before the job completed."""
        if not self.finished:
            raise SpaceUnavailable(
                "the Space closed the stream before the answer was complete",
                space_id=self.adapter.space_id,
                partial=self.answer,
            )

    # -- message handling ----------------------------------------------------------------

    def _feed(self, message: Any) -> list[Event]:
        if not isinstance(message, Mapping) or not isinstance(message.get("msg"), str):
            raise SpaceAPIChanged(f"the Space sent a queue message without 'msg': {message!r:.200}")
        kind = message["msg"]
        if kind == Msg.HEARTBEAT:
            return []
        if kind == Msg.CLOSE_STREAM:
            self.stream_ended()
            return []
        if message.get("message") == Msg.SERVER_STOPPED:
            raise SpaceUnavailable("the Space's server stopped unexpectedly")
        if kind == Msg.UNEXPECTED_ERROR and message.get("event_id") is None:
            # session-level (Gradio sends these without an event id, then ends the stream)
            text = str(message.get("message") or "unexpected error")
            if message.get("session_not_found"):
                raise SpaceUnavailable(
                    f"the Space lost this request ({text}); it may have restarted — try again",
                    space_message=text,
                )
            raise GenerationError(f"the Space failed: {text}", space_message=text)
        if self.event_id is not None and message.get("event_id") != self.event_id:
            return []  # another job on the same session stream
        if self.finished:
            return []
        if kind == Msg.ESTIMATION:
            return [QueueStatus(
                rank=_int_or_none(message.get("rank")),
                queue_size=_int_or_none(message.get("queue_size")),
                eta=_float_or_none(message.get("rank_eta")),
            )]
        if kind == Msg.PROCESS_STARTS:
            self.started = True
            return [ProcessStarted(eta=_float_or_none(message.get("eta")))]
        if kind in (Msg.PROCESS_GENERATING, Msg.PROCESS_STREAMING):
            return self._generating(message)
        if kind == Msg.PROCESS_COMPLETED:
            return self._completed(message)
        if kind == Msg.UNEXPECTED_ERROR:
            text = str(message.get("message") or "unexpected error")
            raise GenerationError(f"the Space failed: {text}", space_message=text)
        if kind == Msg.QUEUE_FULL:
            raise QueueFull("the Space's queue is full; try again in a minute")
        if kind == Msg.LOG:
            level = str(message.get("level") or "info")
            return [Status(text=str(message.get("log") or ""), level=level)]
        if kind == Msg.PROGRESS:
            units = message.get("progress_data") or []
            desc = " · ".join(
                str(u.get("desc")) for u in units if isinstance(u, Mapping) and u.get("desc")
            )
            return [Status(text=desc)] if desc else []
        return []  # messages of newer Gradio versions that carry nothing for us

    def _output_data(self, message: Mapping[str, Any]) -> list[Any]:
        output = message.get("output")
        data = output.get("data") if isinstance(output, Mapping) else None
        if not isinstance(data, list):
            raise SpaceAPIChanged("the Space's update has no output data list")
        return data

    def _generating(self, message: Mapping[str, Any]) -> list[Event]:
        data = self._output_data(message)
        if self._outputs is None or self.protocol not in DIFF_PROTOCOLS:
            self._outputs = list(data)
            self._pending.clear()
            return self._recompute(final=False)
        return self._apply_diffs(data)

    def _completed(self, message: Mapping[str, Any]) -> list[Event]:
        if message.get("success") is False:
            output = message.get("output")
            said = output.get("error") if isinstance(output, Mapping) else None
            title = message.get("title") or (
                output.get("title") if isinstance(output, Mapping) else None
            )
            if said:
                text = _unquote(str(said))
                prefix = f"{title}: " if title and title != "Error" else ""
                raise GenerationError(f"the Space reported an error: {prefix}{text}",
                                      space_message=text)
            raise GenerationError(
                "the Space reported an error without details (it hides error messages)"
            )
        output = message.get("output")
        data = output.get("data") if isinstance(output, Mapping) else None
        events: list[Event] = []
        if isinstance(data, list) and data:
            self._outputs = list(data)
            self._pending.clear()
        if self._outputs is not None:
            events = self._recompute(final=True)
        else:
            events = self._release_held()
        self.finished = True
        events.append(Done(text=self.answer, reasoning=self.reasoning))
        return events

    # -- outputs and texts ---------------------------------------------------------------

    def _apply_diffs(self, diffs: list[Any]) -> list[Event]:
        assert self._outputs is not None
        outputs = self._outputs
        if len(diffs) > len(outputs):  # an output appeared mid-stream (hot reload)
            outputs.extend([None] * (len(diffs) - len(outputs)))
        fast: list[tuple[str, str]] = []  # (kind, appended text)
        tails = self._tails
        structural = False
        for index, edits in enumerate(diffs):
            if not isinstance(edits, list):
                raise DiffError(f"output {index}: expected a list of edits")
            for edit in edits:
                if not isinstance(edit, list) or len(edit) != 3:
                    raise DiffError(f"output {index}: malformed edit {edit!r:.200}")
                op, path, value = edit
                if (
                    op == "append" and isinstance(value, str) and isinstance(path, list)
                    and not structural
                ):
                    key = (index, *path)
                    kind = tails.get(key)
                    if kind is not None:
                        self._pending.setdefault(key, []).append(value)
                        fast.append((kind, value))
                        continue
                if not structural:
                    structural = True
                    self._flush()
                apply_edit(outputs, index, op, path, value)
        if structural:
            return self._recompute(final=False)
        return self._route(fast)

    def _route(self, pieces: list[tuple[str, str]]) -> list[Event]:
        """Fast path: appended text goes straight to its channel."""
        events: list[Event] = []
        for kind, text in pieces:
            if not text:
                continue
            if kind == "reasoning":
                self._reasoning.chunks.append(text)
                events.append(ReasoningDelta(text))
                continue
            if self._marker_hit:
                self._reasoning.chunks.append(text)
                events.append(ReasoningDelta(text))
                continue
            answer, tail, self._held = _split_marker(
                self._held + text, self._answer_marker, False
            )
            if answer:
                self._answer.chunks.append(answer)
                events.append(TextDelta(answer))
            if tail:
                self._marker_hit = True
                self._reasoning.chunks.append(tail)
                events.append(ReasoningDelta(tail))
        return events

    def _flush(self) -> None:
        """Join appended pieces kept aside into the outputs tree."""
        if not self._pending:
            return
        assert self._outputs is not None
        for path, pieces in self._pending.items():
            container: Any = self._outputs
            for key in path[:-1]:
                container = container[key]
            container[path[-1]] = container[path[-1]] + "".join(pieces)
        self._pending.clear()

    def _text(self, path: Path) -> str:
        value: Any = self._outputs
        for key in path:
            if isinstance(value, list) and type(key) is int and -len(value) <= key < len(value):
                value = value[key]
            elif isinstance(value, Mapping) and key in value:
                value = value[key]
            else:
                return ""
        return value if isinstance(value, str) else ""

    def _recompute(self, final: bool) -> list[Event]:
        """Slow path: read every text from the outputs and compare with what was sent."""
        assert self._outputs is not None
        self._flush()
        segments = self.adapter.segments(self._outputs, self.payload)
        answer_parts: list[str] = []
        reasoning_parts: list[str] = []
        status_parts: list[str] = []
        tail = ""
        held = ""
        marker_hit = False
        last_answer = next((s for s in reversed(segments) if s.kind == "answer"), None)
        last_reasoning = next((s for s in reversed(segments) if s.kind == "reasoning"), None)
        for seg in segments:
            text = self._text(seg.path)
            if seg.kind == "answer":
                answer, seg_tail, seg_held = _split_marker(
                    text, seg.marker, final or seg is not last_answer
                )
                held = seg_held or held
                answer_parts.append(answer)
                if seg_tail:
                    marker_hit = True
                    tail += seg_tail
            elif seg.kind == "reasoning":
                reasoning_parts.append(text)
            elif text:
                status_parts.append(text)
        self._segments = segments
        self._held, self._marker_hit = held, marker_hit
        # the fast path may only take the last leaf of the answer and of the reasoning
        self._tails = {}
        if last_answer is not None:
            self._tails[last_answer.path] = "answer"
            self._answer_marker = last_answer.marker
        if last_reasoning is not None and not tail:
            self._tails[last_reasoning.path] = "reasoning"

        events: list[Event] = []
        status = " · ".join(status_parts)
        if status != self._status:
            self._status = status
            events.append(Status(status))
        reasoning = REASONING_SEPARATOR.join(reasoning_parts) + tail
        delta = self._reasoning.update(reasoning)
        if delta is None:
            events.append(ReasoningReplaced(reasoning))
        elif delta:
            events.append(ReasoningDelta(delta))
        answer = "".join(answer_parts)
        delta = self._answer.update(answer)
        if delta is None:
            events.append(TextReplaced(answer))
        elif delta:
            events.append(TextDelta(delta))
        return events

    def _release_held(self) -> list[Event]:
        held, self._held = self._held, ""
        if held:
            self._answer.chunks.append(held)
            return [TextDelta(held)]
        return []


def _unquote(text: str) -> str:
    """Gradio 4's ``gr.Error`` arrives as ``repr(message)``: show the message itself."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        inner = text[1:-1]
        if "\\" not in inner and text[0] not in inner:
            return inner  # the common case, without the parser
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError, SystemError):
            # SystemError: CPython 3.11's parser is not thread-safe (a Streamlit server
            # may decode two errors at once); the quoted text is still readable
            return text
        if isinstance(value, str):
            return value
    return text


MAX_COUNT = 10**12  # queue positions and sizes beyond this are nonsense, not numbers to show


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_COUNT:
        return value
    return None


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an integer with hundreds of digits
            return None
    return None
