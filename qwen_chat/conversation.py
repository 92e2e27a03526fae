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
import time
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
    "Version",
    "versions_of",
    "choose",
    "turn_of",
    "ask_other",
    "add_answers",
    "answer_with",
    "keep_shown",
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
    # the failure's class (``SpaceUnavailable``...): the page offers other models after some
    error_kind: str | None = field(default=None, compare=False)
    streaming: bool = False  # stored while it streams (another tab may be writing it)
    # questions only: the turn's other versions (earlier answers, answers to an earlier
    # wording of the question) and where the shown one sits among them (see versions_of)
    others: tuple[Version, ...] = ()
    at: int = 0
    created: float | None = field(default=None, compare=False)  # when written (epoch s)


@dataclass(frozen=True, slots=True)
class Version:
    """One answer of a turn kept beside the one shown: the question it answered (its text
    differs when the question was edited since) and the answer (None: never answered)."""

    question: Message
    answer: Message | None


@dataclass(frozen=True, slots=True)
class Chat:
    """The conversation. ``pending``: the last user message awaits an answer."""

    messages: tuple[Message, ...] = ()
    model: str = DEFAULT_MODEL
    pending: bool = False
    id: str | None = None  # the store's conversation id, once stored
    title: str = ""
    asking: str | None = None  # the pending answer's model when not ``model`` (one side)


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
    question = Message(Role.USER, text, created=time.time())
    return replace(chat, messages=(*chat.messages, question), pending=True)


def switch_model(chat: Chat, model: str) -> Chat:
    """Later answers come from ``model``; the history carries over unchanged."""
    return replace(chat, model=_canonical(model))


def begin_answer(chat: Chat) -> tuple[Chat, Draft]:
    """Start streaming the pending answer: the chat no longer asks for one (so a crash
    mid-turn cannot make every later page load re-ask) and a fresh :class:`Draft`."""
    if not chat.pending:
        raise ChatError("no answer is pending")
    return replace(chat, pending=False, asking=None), Draft(chat.asking or chat.model)


def _answer(chat: Chat, draft: Draft, text: str | None = None, **marks: Any) -> Chat:
    message = Message(
        Role.ASSISTANT, draft.text if text is None else text, model=draft.model,
        reasoning=draft.reasoning, created=time.time(), **marks,
    )
    return replace(chat, messages=(*chat.messages, message), pending=False)


def finish(chat: Chat, draft: Draft) -> Chat:
    """The Space finished: store the answer."""
    return _answer(chat, draft)


def stop(chat: Chat, draft: Draft) -> Chat:
    """The person stopped the answer (or the page reran): keep what came, marked stopped."""
    return _answer(chat, draft, stopped=True)


def fail(
    chat: Chat, draft: Draft, error: BaseException | str, partial: str | None = None,
    kind: str | None = None,
) -> Chat:
    """The Space failed: keep the partial answer (the draft's, else ``partial`` or the
    error's ``partial``) marked with the error's readable text (``kind``: its class name,
    default the error's)."""
    if partial is None:
        partial = getattr(error, "partial", "") or ""
    text = partial if len(partial) > draft.size else draft.text
    if kind is None and isinstance(error, BaseException):
        kind = type(error).__name__
    return _answer(chat, draft, text, error=str(error) or type(error).__name__,
                   error_kind=kind)


def add_answers(chat: Chat, answers: tuple[Message, ...]) -> Chat:
    """Several answers to the pending question at once (compare mode): the first is
    shown, the others become the turn's newest versions."""
    if not answers:
        raise ChatError("no answers")
    index = len(chat.messages) - 1
    question = chat.messages[index]
    if question.role is not Role.USER:
        raise ChatError("the last message is not a question")
    extra = tuple(Version(_bare(question), a) for a in answers[1:])
    asked = replace(question, others=question.others + extra, at=len(question.others))
    return replace(chat, messages=(*chat.messages[:index], asked, answers[0]),
                   pending=False, asking=None)


def answer_with(chat: Chat, model: str) -> Chat:
    """Ask the last question again with ``model`` for a version only (one side of a
    comparison): the chat keeps its model and the answer it shows; the new answer becomes
    the turn's newest version (see :func:`keep_shown`)."""
    if chat.pending or _trailing_user(chat) is None:
        raise ChatError("there is no question to answer again")
    return replace(chat, pending=True, asking=_canonical(model))


def keep_shown(chat: Chat) -> Chat:
    """After :func:`answer_with` on an answered turn the chat ends question, shown answer,
    new answer: the new answer becomes the turn's newest version, the shown one stays."""
    msgs = chat.messages
    if len(msgs) < 3 or msgs[-3].role is not Role.USER or msgs[-2].role is not Role.ASSISTANT:
        return chat
    question, shown, new = msgs[-3], msgs[-2], msgs[-1]
    asked = replace(question, others=(*question.others, Version(_bare(question), new)))
    return replace(chat, messages=(*msgs[:-3], asked, shown))


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


def _bare(question: Message) -> Message:
    return replace(question, others=(), at=0)


def versions_of(chat: Chat, index: int) -> tuple[list[Version], int]:
    """All versions of the turn whose question is ``chat.messages[index]``, in the order
    they were written, and the position of the one shown (its answer is the message after
    the question, if that is an answer)."""
    question = chat.messages[index]
    if question.role is not Role.USER:
        raise ChatError("versions belong to a question")
    after = chat.messages[index + 1] if index + 1 < len(chat.messages) else None
    shown = Version(_bare(question), after if after and after.role is Role.ASSISTANT else None)
    others = list(question.others)
    at = min(max(question.at, 0), len(others))
    return [*others[:at], shown, *others[at:]], at


def _stash(chat: Chat, index: int, question: Message | None = None) -> Chat:
    """The turn at ``index`` gets a new version at the end: the shown one is kept among
    the others, and the turn ends with ``question`` (default: the same question) awaiting
    its answer."""
    kept = tuple(versions_of(chat, index)[0])
    base = chat.messages[index] if question is None else question
    asked = replace(_bare(base), others=kept, at=len(kept))
    return replace(chat, messages=(*chat.messages[:index], asked), pending=True)


def regenerate(chat: Chat) -> Chat:
    """Ask the last question again, with the chat's current model. The answer it had (if
    any) stays as a version of that turn."""
    index = _trailing_user(chat)
    if chat.pending or index is None:
        raise ChatError("there is no question to answer again")
    if index == len(chat.messages) - 1:  # unanswered: nothing to keep
        return replace(chat, pending=True)
    return _stash(chat, index)


retry = regenerate
"""Retry after an error: the failed answer stays as a version, a new one is asked for."""


def ask_other(chat: Chat, model: str) -> Chat:
    """Ask the last question again with ``model`` (a Space is down: another one answers);
    the chat continues with that model and the earlier answer stays as a version."""
    return regenerate(switch_model(chat, model))


def last_user_index(chat: Chat) -> int | None:
    """Index of the question that :func:`edit_last` would replace (None: nothing to edit)."""
    return None if chat.pending else _trailing_user(chat)


def last_user_text(chat: Chat) -> str | None:
    index = _trailing_user(chat)
    return None if index is None else chat.messages[index].content


def edit_last(chat: Chat, text: str) -> Chat:
    """Ask ``text`` instead of the last question: a new version of that turn (the
    question as it was, with its answer, stays among the versions)."""
    index = _trailing_user(chat)
    if chat.pending or index is None:
        raise ChatError("there is no question to edit")
    if not isinstance(text, str) or not text.strip():
        raise ChatError("a message needs some text")
    return _stash(chat, index, Message(Role.USER, text, created=time.time()))


def choose(chat: Chat, index: int, position: int) -> Chat:
    """Show version ``position`` of the turn whose question is at ``index``: its question
    and answer take the turn's place, so later questions send it as history."""
    if chat.pending:
        raise ChatError("an answer is being written")
    versions, at = versions_of(chat, index)
    if not 0 <= position < len(versions):
        raise ChatError(f"this turn has {len(versions)} versions")
    if position == at:
        return chat
    wanted = versions[position]
    others = tuple(v for i, v in enumerate(versions) if i != position)
    question = replace(wanted.question, others=others, at=position)
    answered = index + 1 < len(chat.messages) and chat.messages[index + 1].role is Role.ASSISTANT
    rest = chat.messages[index + (2 if answered else 1):]
    turn = (question,) if wanted.answer is None else (question, wanted.answer)
    return replace(chat, messages=(*chat.messages[:index], *turn, *rest))


def turn_of(chat: Chat, index: int) -> int:
    """The turn number (0 = first question) of ``chat.messages[index]``: the count of
    questions before it, plus one for a question itself, minus one."""
    turn = -1
    for message in chat.messages[: index + 1]:
        if message.role is Role.USER:
            turn += 1
    return max(turn, 0)


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
