"""The conversation model and its pure transitions (no Streamlit, no SQL).

A :class:`Chat` is an immutable value: the messages so far, the model the next answer
comes from, and whether an answer is wanted (``pending``). Every user action is a small
function from one ``Chat`` to the next, so pytest can drive them without a page and the
page only wires them to widgets. A stored chat also carries its id (``Chat.id``) and each
stored message its row id (``Message.id``); both are None until the store assigns them.
The one mutable piece is the :class:`ChatBox` the page keeps its current chat in.
"""

from __future__ import annotations

import contextlib
import enum
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import qwen_core

from .draft import Draft

__all__ = [
    "Role",
    "Message",
    "Chat",
    "ChatBox",
    "ChatError",
    "DEFAULT_MODEL",
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
    "title_of",
]

DEFAULT_MODEL = next(iter(qwen_core.MODELS))
TITLE_CHARS = 60


class Role(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class ChatError(ValueError):
    """A transition was asked of a chat that cannot take it (the caller's mistake)."""


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
    id: int | None = None  # the store's row id, once stored
    streaming: bool = False  # stored while it streams (another tab may be writing it)


@dataclass(frozen=True, slots=True)
class Chat:
    """The conversation. ``pending``: the last user message awaits an answer."""

    messages: tuple[Message, ...] = ()
    model: str = DEFAULT_MODEL
    pending: bool = False
    id: str | None = None  # the store's conversation id, once stored
    title: str = ""


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
    stamp: object = None  # when the stored chat was last read (see persist.Keeper.refresh)
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


def fail(
    chat: Chat, draft: Draft, error: BaseException | str, partial: str | None = None
) -> Chat:
    """The Space failed: keep the partial answer (the draft's, else ``partial`` or the
    error's ``partial``) marked with the error's readable text."""
    if partial is None:
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




def title_of(text: str, limit: int = TITLE_CHARS) -> str:
    """A conversation's title from its first question: whitespace collapsed, cut at a word
    boundary near ``limit`` characters (with an ellipsis when cut)."""
    words = " ".join(text[: limit * 4].split())
    if len(words) <= limit:
        return words or "New chat"
    cut = words[:limit].rsplit(" ", 1)[0] if " " in words[: limit] else words[:limit]
    return (cut if len(cut) >= limit // 2 else words[:limit]).rstrip(" .,;:") + "…"
