"""The chat app's conversation model and its pure transitions (no Streamlit import).

A :class:`Chat` is an immutable value: the messages so far, the model the next answer
comes from, and whether an answer is wanted (``pending``). Every user action is a small
function from one ``Chat`` to the next, so pytest can drive them without a page and
``streamlit_app.py`` only wires them to widgets. Two pieces are mutable: the
:class:`Draft`, the answer being streamed, which absorbs :mod:`qwen_core.events` at a cost
that does not grow with the answer (no re-joining of the whole text) and becomes a
:class:`Message` when the turn ends — finished, stopped or failed; the partial text is
kept in every case — and the :class:`ChatBox` the app keeps its current chat in.

Also here: conversion to ``qwen_core`` messages, export to Markdown and JSON, validated
import from JSON, the delta :class:`Coalescer` that keeps ``st.write_stream`` from
re-sending the whole answer for every token, and small display helpers.
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import qwen_core
from qwen_core import events as ev

__all__ = [
    "Role",
    "Message",
    "Chat",
    "ChatBox",
    "Change",
    "Draft",
    "ChatError",
    "ChatFileError",
    "Imported",
    "DEFAULT_MODEL",
    "FORMAT",
    "new_chat",
    "add_user",
    "switch_model",
    "begin_answer",
    "finish",
    "stop",
    "fail",
    "regenerate",
    "retry",
    "edit_last",
    "last_user_index",
    "last_user_text",
    "can_regenerate",
    "to_qwen_messages",
    "to_markdown",
    "to_json",
    "from_json",
    "Coalescer",
    "coalesce",
    "queue_line",
    "model_caption",
    "capabilities",
    "space_state",
    "override_state",
    "display_latex",
]

DEFAULT_MODEL = next(iter(qwen_core.MODELS))
FORMAT = "qwen-spaces-chat"
FORMAT_VERSION = 1
MAX_IMPORT_BYTES = 20_000_000


class Role(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class ChatError(ValueError):
    """A transition was asked of a chat that cannot take it (the caller's mistake)."""


class ChatFileError(ValueError):
    """An uploaded conversation file is not one this app can read; says what is wrong."""


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. For answers, ``model`` is the id of the model that wrote it,
    ``reasoning`` its thinking (shown apart, never sent back), ``stopped`` marks an
    answer cut short by the person, ``error`` the failure that ended it (its partial text
    stays in ``content``)."""

    role: Role
    content: str
    model: str | None = None
    reasoning: str = ""
    stopped: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Chat:
    """The conversation. ``pending``: the last user message awaits an answer."""

    messages: tuple[Message, ...] = ()
    model: str = DEFAULT_MODEL
    pending: bool = False


@dataclass(slots=True, eq=False)
class ChatBox:
    """The one mutable object the app keeps in ``st.session_state``: the current chat.

    Why a box: in Streamlit 1.67 every ``st.session_state`` read and write is a yield
    point — once Stop or a rerun is requested each raises StopException/RerunException —
    so the ``finally`` that stores a stopped answer cannot touch ``st.session_state``. It
    stores into this box, fetched before streaming. ``refresh``: a stopped answer was
    stored by a run that no rerun follows; the page should rerun once to show it.

    With Streamlit's ``runner.fastReruns`` (on by default; this app's config turns it
    off) a click starts the next run in a new thread while the old one is still
    streaming until its next Streamlit call. :meth:`turn` marks a streaming turn,
    :meth:`settle` lets the next run wait for it to store its answer, and :meth:`swap`
    stores only if nobody replaced the chat meanwhile."""

    chat: Chat
    refresh: bool = False
    _streaming: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        with self._streaming:
            yield

    def settle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a turn still streaming elsewhere; True if none is."""
        if self._streaming.acquire(timeout=timeout):
            self._streaming.release()
            return True
        return False

    def swap(self, expected: Chat, new: Chat) -> bool:
        """Store ``new`` if the chat is still ``expected``."""
        if self.chat is not expected:
            return False
        self.chat = new
        return True


# --- transitions --------------------------------------------------------------------------


def _canonical(model: str) -> str:
    return qwen_core.resolve_model(model).id  # InvalidRequest names the closest ids


def new_chat(model: str = DEFAULT_MODEL) -> Chat:
    """An empty conversation with ``model`` (an id or alias) selected."""
    return Chat(model=_canonical(model))


def add_user(chat: Chat, text: str) -> Chat:
    """The person sent ``text``: append it and ask for an answer."""
    if not isinstance(text, str) or not text.strip():
        raise ChatError("a message needs some text")
    if chat.pending:
        raise ChatError("an answer is already pending")
    return replace(chat, messages=(*chat.messages, Message(Role.USER, text)), pending=True)


def switch_model(chat: Chat, model: str) -> Chat:
    """Later answers come from ``model``; the history carries over unchanged."""
    return replace(chat, model=_canonical(model))


def begin_answer(chat: Chat) -> tuple[Chat, Draft]:
    """Start streaming the pending answer: the chat no longer asks for one (so a crash
    mid-turn cannot make every later page load re-ask) and a fresh :class:`Draft`."""
    if not chat.pending:
        raise ChatError("no answer is pending")
    return replace(chat, pending=False), Draft(chat.model)


def _answer(chat: Chat, draft: Draft, text: str | None = None, **marks: Any) -> Chat:
    message = Message(
        Role.ASSISTANT, draft.text if text is None else text, model=draft.model,
        reasoning=draft.reasoning, **marks,
    )
    return replace(chat, messages=(*chat.messages, message), pending=False)


def finish(chat: Chat, draft: Draft) -> Chat:
    """The Space finished: store the answer."""
    return _answer(chat, draft)


def stop(chat: Chat, draft: Draft) -> Chat:
    """The person stopped the answer (or the page reran): keep what came, marked stopped."""
    return _answer(chat, draft, stopped=True)


def fail(chat: Chat, draft: Draft, error: BaseException | str) -> Chat:
    """The Space failed: keep the partial answer (the draft's, else the error's
    ``partial``) marked with the error's readable text."""
    partial = getattr(error, "partial", "") or ""
    text = partial if len(partial) > draft.size else draft.text
    return _answer(chat, draft, text, error=str(error) or type(error).__name__)


def _trailing_user(chat: Chat) -> int | None:
    """Index of the last user message, if it is the last one or followed by one answer."""
    msgs = chat.messages
    if msgs and msgs[-1].role is Role.USER:
        return len(msgs) - 1
    if len(msgs) >= 2 and msgs[-1].role is Role.ASSISTANT and msgs[-2].role is Role.USER:
        return len(msgs) - 2
    return None


def can_regenerate(chat: Chat) -> bool:
    return not chat.pending and _trailing_user(chat) is not None


def regenerate(chat: Chat) -> Chat:
    """Drop the last answer (if any) and ask again, with the chat's current model."""
    index = _trailing_user(chat)
    if chat.pending or index is None:
        raise ChatError("there is no question to answer again")
    return replace(chat, messages=chat.messages[: index + 1], pending=True)


retry = regenerate
"""Retry after an error: the failed answer is replaced by a new one."""


def last_user_index(chat: Chat) -> int | None:
    """Index of the question that :func:`edit_last` would replace (None: nothing to edit)."""
    return None if chat.pending else _trailing_user(chat)


def last_user_text(chat: Chat) -> str | None:
    index = _trailing_user(chat)
    return None if index is None else chat.messages[index].content


def edit_last(chat: Chat, text: str) -> Chat:
    """Replace the last question (and its answer) by ``text`` and ask again."""
    index = _trailing_user(chat)
    if chat.pending or index is None:
        raise ChatError("there is no question to edit")
    return add_user(replace(chat, messages=chat.messages[:index]), text)


def to_qwen_messages(chat: Chat, system: str | None = None) -> list[dict[str, str]]:
    """OpenAI-style messages for ``qwen_core``: the system prompt (when given), then the
    turns. Answers keep what the person saw — stopped or failed partial text included —
    and empty answers are left out (qwen_core joins consecutive questions)."""
    out: list[dict[str, str]] = []
    if system is not None:
        out.append({"role": "system", "content": system})
    for message in chat.messages:
        if message.role is Role.ASSISTANT and not message.content.strip():
            continue
        out.append({"role": message.role.value, "content": message.content})
    return out


# --- the answer being streamed ------------------------------------------------------------


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
        "model", "delta", "queue", "started", "done", "statuses",
        "_parts", "_text", "_size", "_rparts", "_reasoning", "_rsize",
    )

    def __init__(self, model: str) -> None:
        self.model = model
        self.delta = ""  # the text appended by the last TEXT change
        self.queue: ev.QueueStatus | None = None
        self.started = False
        self.done = False
        self.statuses: list[str] = []  # distinct status lines, in order
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
            return self._append(event.text)
        if kind is ev.TextReplaced:
            return self._replace(event.text)
        if kind is ev.ReasoningDelta:
            if not event.text:
                return Change.NONE
            self._rparts.append(event.text)
            self._reasoning = None
            self._rsize += len(event.text)
            return Change.REASONING
        if kind is ev.ReasoningReplaced:
            return self._set_reasoning(event.text)
        if kind is ev.Status:
            text = event.text.strip()
            if not text or text in self.statuses:
                return Change.NONE
            self.statuses.append(text)
            return Change.STATUS
        if kind is ev.QueueStatus:
            self.queue = event
            return Change.QUEUE
        if kind is ev.ProcessStarted:
            self.queue, self.started = None, True
            return Change.QUEUE
        if kind is ev.Done:
            change = self._replace(event.text) | Change.DONE
            if event.reasoning:
                change |= self._set_reasoning(event.reasoning)
            self.done = True
            return change
        return Change.NONE


# --- coalescing deltas for st.write_stream -------------------------------------------------


class Coalescer:
    """Batches text deltas so a renderer that re-sends the whole text per chunk (as
    ``st.write_stream`` does) gets few, larger chunks: :meth:`add` text, :meth:`due`
    says a batch may go out, :meth:`take` returns it. A batch goes out at most every
    ``interval`` seconds; that interval grows with the text already sent
    (``sent / chars_per_second``) so very long answers cost bounded bytes per second."""

    def __init__(
        self,
        interval: float = 0.05,
        *,
        clock: Callable[[], float] = time.monotonic,
        chars_per_second: float = 200_000.0,
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
        wait = max(self.interval, self._sent / self.chars_per_second)
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
    chars_per_second: float = 200_000.0,
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


# --- export and import ----------------------------------------------------------------------


def _message_dict(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.role is Role.ASSISTANT:
        data.update(
            model=message.model, reasoning=message.reasoning,
            stopped=message.stopped, error=message.error,
        )
    return data


def to_json(chat: Chat, system: str | None = None) -> str:
    """The conversation as JSON (``from_json`` reads it back)."""
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": chat.model,
        "system": system,
        "messages": [_message_dict(m) for m in chat.messages],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def _model_label(model_id: str | None) -> str:
    model = qwen_core.MODELS.get(model_id or "")
    return model.label if model else (model_id or "unknown model")


def to_markdown(chat: Chat, system: str | None = None) -> str:
    """The conversation as a readable Markdown document."""
    lines = [
        "# Qwen Spaces Chat — conversation",
        "",
        f"- Model: {_model_label(chat.model)} (`{chat.model}`)",
    ]
    if system:
        lines.append(f"- System prompt: {' '.join(system.split())}")
    for message in chat.messages:
        lines += ["", "---", ""]
        if message.role is Role.USER:
            lines += ["**You**", "", message.content]
            continue
        lines += [f"**{_model_label(message.model)}** (`{message.model}`)", ""]
        if message.reasoning:
            lines += ["<details><summary>Thinking</summary>", "", message.reasoning, "",
                      "</details>", ""]
        lines.append(message.content or "_(no answer text)_")
        if message.stopped:
            lines += ["", "_(stopped)_"]
        if message.error:
            lines += ["", f"> **Error:** {message.error}"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Imported:
    """A conversation read from a file: the chat, its system prompt (None: not given)
    and notes about anything that was adjusted."""

    chat: Chat
    system: str | None = None
    notes: tuple[str, ...] = field(default=())


def _expect(value: Any, kinds: type | tuple[type, ...], where: str, what: str) -> Any:
    if not isinstance(value, kinds):
        raise ChatFileError(f"{where}: {what}, got {type(value).__name__}")
    return value


def from_json(data: bytes | str) -> Imported:
    """Read a conversation saved by :func:`to_json` (or a plain list of OpenAI-style
    ``{"role", "content"}`` messages). Raises :class:`ChatFileError` saying what is wrong."""
    if isinstance(data, bytes):
        if len(data) > MAX_IMPORT_BYTES:
            raise ChatFileError(f"file too large ({len(data):,} bytes; limit {MAX_IMPORT_BYTES:,})")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ChatFileError(f"not a UTF-8 text file ({exc.reason} at byte {exc.start})") \
                from None
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ChatFileError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    notes: list[str] = []
    model: str | None = None
    system: str | None = None
    if isinstance(doc, list):
        raw_messages = doc
    elif isinstance(doc, Mapping):
        if doc.get("format", FORMAT) != FORMAT:
            raise ChatFileError(f"not a {FORMAT} file (format is {doc.get('format')!r})")
        version = doc.get("version", FORMAT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
            raise ChatFileError(
                f"file version {version!r} is newer than this app reads ({FORMAT_VERSION})"
            )
        if "messages" not in doc:
            raise ChatFileError("no 'messages' list in the file")
        raw_messages = doc["messages"]
        model = _expect(doc.get("model"), (str, type(None)), "model", "expected a model id")
        system = _expect(doc.get("system"), (str, type(None)), "system", "expected text")
    else:
        raise ChatFileError(f"expected a JSON object or list, got {type(doc).__name__}")
    _expect(raw_messages, list, "messages", "expected a list")
    messages: list[Message] = []
    systems: list[str] = []
    for i, raw in enumerate(raw_messages):
        where = f"message {i + 1}"
        _expect(raw, Mapping, where, "expected an object with 'role' and 'content'")
        role = raw.get("role")
        content = _expect(raw.get("content"), str, f"{where} content", "expected text")
        if role == "system":
            systems.append(content)
            continue
        if role not in (Role.USER.value, Role.ASSISTANT.value):
            raise ChatFileError(f"{where}: role must be 'user' or 'assistant', got {role!r}")
        if role == Role.USER.value:
            messages.append(Message(Role.USER, content))
            continue
        messages.append(Message(
            Role.ASSISTANT, content,
            model=_expect(raw.get("model"), (str, type(None)), f"{where} model", "expected text"),
            reasoning=_expect(raw.get("reasoning", ""), str, f"{where} reasoning",
                              "expected text"),
            stopped=_expect(raw.get("stopped", False), bool, f"{where} stopped",
                            "expected true or false"),
            error=_expect(raw.get("error"), (str, type(None)), f"{where} error",
                          "expected text"),
        ))
    if systems and system is None:
        system = "\n\n".join(systems)
    chosen = DEFAULT_MODEL
    if model is not None:
        try:
            chosen = _canonical(model)
        except qwen_core.InvalidRequest as exc:
            notes.append(f"{exc.message}; using {DEFAULT_MODEL} instead")
    return Imported(Chat(messages=tuple(messages), model=chosen), system, tuple(notes))


# --- display helpers ----------------------------------------------------------------------


def queue_line(queue: ev.QueueStatus | None, started: bool = False) -> str:
    """The waiting line shown while the Space's queue holds the request."""
    if started:
        return "The Space is working on it…"
    if queue is None:
        return "Connecting to the Space…"
    parts = ["Waiting in the Space's queue"]
    if queue.rank is not None:
        where = f"position {queue.rank + 1}"
        if queue.queue_size:
            where += f" of {max(queue.queue_size, queue.rank + 1)}"
        parts.append(where)
    if queue.eta is not None and queue.eta >= 0.5:
        parts.append(f"about {queue.eta:.0f} s")
    return " · ".join(parts)


def model_caption(message: Message) -> str:
    """Caption under an answer: who wrote it, and how it ended."""
    parts = [f"{_model_label(message.model)} · {message.model}"]
    if message.stopped:
        parts.append(":material/stop_circle: stopped")
    if message.error:
        parts.append(":material/error: failed")
    return " · ".join(parts)


def capabilities(model: qwen_core.Model) -> str:
    """``System prompt ✓ · History ✓ · Reasoning ✗`` for one model."""
    def mark(ok: bool) -> str:
        return "✓" if ok else "✗"

    history = "native" if model.supports_history else "in the prompt"
    return (
        f"System prompt {mark(model.supports_system)} · History {history}"
        f" · Reasoning {mark(model.supports_reasoning)}"
    )


_STAGES = {
    "RUNNING": "running",
    "RUNNING_BUILDING": "running",
    "RUNNING_APP_STARTING": "running",
    "SLEEPING": "sleeping",
    "PAUSED": "sleeping",
    "STOPPED": "sleeping",
    "BUILDING": "building",
    "APP_STARTING": "building",
    "BUILD_ERROR": "error",
    "RUNTIME_ERROR": "error",
    "CONFIG_ERROR": "error",
    "NO_APP_FILE": "error",
}


def space_state(stage: Any) -> str:
    """The Hub's ``runtime.stage`` -> running / sleeping / building / error / unknown."""
    return _STAGES.get(stage.upper(), "unknown") if isinstance(stage, str) else "unknown"


def override_state(url: str) -> str:
    """State shown for a Space reached at a configured URL (the Hub is not asked):
    ``local`` for a loopback host, else ``custom URL``."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return "local"
    try:
        return "local" if ipaddress.ip_address(host).is_loopback else "custom URL"
    except ValueError:
        return "custom URL"


_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
_DISPLAY = re.compile(r"\\\[(.+?)\\\]", re.S)
_INLINE = re.compile(r"\\\((.+?)\\\)", re.S)


def _latex_prose(text: str) -> str:
    pieces = []
    last = 0
    for match in _INLINE_CODE.finditer(text):
        pieces.append(_latex_plain(text[last:match.start()]))
        pieces.append(match.group(0))
        last = match.end()
    pieces.append(_latex_plain(text[last:]))
    return "".join(pieces)


def _latex_plain(text: str) -> str:
    text = _DISPLAY.sub(lambda m: f"$${m.group(1)}$$", text)
    return _INLINE.sub(lambda m: f"${m.group(1).strip()}$", text)


def display_latex(text: str) -> str:
    """Qwen writes LaTeX as ``\\(...\\)`` and ``\\[...\\]``; Streamlit's Markdown renders
    ``$...$`` and ``$$...$$``. Convert outside code blocks and inline code; the stored
    answer is left untouched."""
    if "\\(" not in text and "\\[" not in text:
        return text
    out: list[str] = []
    prose: list[str] = []
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                out.append(_latex_prose("".join(prose)))
                prose = []
                fence = match.group(2)
                out.append(line)
            else:
                prose.append(line)
        else:
            out.append(line)
            if match and match.group(2)[0] == fence[0] and len(match.group(2)) >= len(fence):
                fence = None
    out.append(_latex_prose("".join(prose)))
    return "".join(out)
