"""Keeping a session's conversation in the store as it happens (no Streamlit import).

:class:`Keeper` maps the page's transitions to :class:`~qwen_chat.store.ChatStore`
calls. A failing database never costs the page anything: the failure is remembered as a
warning for the page, storing pauses for a few seconds, and messages not yet stored
(``Message.id is None``) are stored in order once the database answers again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from .conversation import Chat, Message, Role, turn_of
from .draft import Draft

if TYPE_CHECKING:
    from .store import ChatStore

__all__ = ["Keeper", "SAVE_EVERY", "RETRY_AFTER"]

SAVE_EVERY = 2.0  # seconds between saves of a streaming answer
RETRY_AFTER = 10.0  # seconds a failing database is left alone


class Keeper:
    """Stores one session's chat for ``owner``. ``store`` None or ``owner`` None: storing
    is off (``reason`` says why, for the page)."""

    def __init__(
        self, store: ChatStore | None, owner: str | None, reason: str | None = None,
        *, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.owner = owner
        self.reason = reason
        self.problem: str | None = None  # the last database failure, while it lasts
        self._clock = clock
        self._failed_at: float | None = None
        self._lock = threading.Lock()
        self.orphans: list[tuple[str, int]] = []  # rows of answers whose end was not stored

    @property
    def enabled(self) -> bool:
        return self.store is not None and self.owner is not None

    def _ready(self) -> bool:
        if not self.enabled:
            return False
        return self._failed_at is None or self._clock() - self._failed_at >= RETRY_AFTER

    def _call(self, what: Callable[[ChatStore, str], object]) -> object | None:
        """Run one store call; a StoreError turns storing off for RETRY_AFTER seconds."""
        from .store import StoreError

        if not self._ready():
            return None
        assert self.store is not None and self.owner is not None
        try:
            with self._lock:
                result = what(self.store, self.owner)
        except StoreError as exc:
            self._failed_at = self._clock()
            self.problem = str(exc)
            return None
        self._failed_at, self.problem = None, None
        return result

    # --- whole chats ------------------------------------------------------------------

    def sync(self, chat: Chat, system: str | None) -> Chat:
        """Store whatever of ``chat`` is not stored yet (a new chat gets its id when it has
        a question); returns the chat with the ids it got."""
        if not self._ready() or not chat.messages:
            return chat
        if chat.id is None:
            if not any(m.role is Role.USER for m in chat.messages):
                return chat
            stored = self._call(lambda s, o: s.create_chat(o, chat, system))
            return replace(stored, pending=chat.pending) if isinstance(stored, Chat) else chat
        while self.orphans:
            chat_id, row = self.orphans[0]
            gone = self._call(lambda s, o, c=chat_id, r=row: s.delete_messages(o, c, [r]) or True)
            if gone is None:
                return chat
            self.orphans.pop(0)
        if all(m.id is not None for m in chat.messages):
            return chat
        messages = list(chat.messages)
        for i, message in enumerate(messages):
            if message.id is None:
                turn = turn_of(chat, i)
                asked = _question_row(messages[:i])
                row = self._call(lambda s, o, m=message, t=turn, q=asked:
                                 s.add_message(o, chat.id, m, t, question=q))
                if not isinstance(row, int):
                    break
                messages[i] = replace(message, id=row)
        return replace(chat, messages=tuple(messages))

    def load(self, chat_id: str) -> tuple[Chat, str | None] | None | bool:
        """The stored chat and its system prompt; None: not found (or not this owner's);
        False: the database cannot be asked now."""
        stored = self._call(lambda s, o: s.load_chat(o, chat_id))
        if stored is None:
            return False if self.problem or not self._ready() else None
        return stored.chat, stored.system  # type: ignore[attr-defined]

    def refresh(self, chat: Chat, known: object = None) -> tuple[Chat, object]:
        """``chat`` as stored now (other tabs' messages included), keeping what this
        session has not stored yet and its pending flag, and the stamp it was read at.
        ``known``: the stamp of the last read; an unchanged conversation is not read
        again (one small query instead of all its messages)."""
        if chat.id is None or not self._ready():
            return chat, known
        chat_id = chat.id
        stamp = self._call(lambda s, o: s.stamp(o, chat_id))
        if stamp is None or stamp == known:
            return chat, known
        found = self.load(chat_id)
        if not isinstance(found, tuple):
            return chat, known
        stored, _ = found
        unsynced = tuple(m for m in chat.messages if m.id is None)
        return replace(stored, messages=stored.messages + unsynced, pending=chat.pending,
                       model=chat.model), stamp

    def forget(self, chat: Chat, messages: tuple[Message, ...]) -> None:
        """The page dropped ``messages``: delete their rows."""
        ids = [m.id for m in messages if m.id is not None]
        if chat.id is not None and ids:
            self._call(lambda s, o: s.delete_messages(o, chat.id, ids))

    def choose(self, chat: Chat, index: int) -> None:
        """The person switched the turn whose question is ``chat.messages[index]`` to the
        version now shown: remember which (its question and answer) in the store."""
        question = chat.messages[index]
        after = chat.messages[index + 1] if index + 1 < len(chat.messages) else None
        ids = [question.id]
        if after is not None and after.role is Role.ASSISTANT:
            ids.append(after.id)
        if chat.id is None or None in ids:
            return
        turn = turn_of(chat, index)
        self._call(lambda s, o: s.choose(o, chat.id, turn, [i for i in ids if i]))

    def set_model(self, chat: Chat) -> None:
        if chat.id is not None:
            self._call(lambda s, o: s.set_model(o, chat.id, chat.model))

    def set_system(self, chat: Chat, system: str | None) -> None:
        if chat.id is not None:
            self._call(lambda s, o: s.set_system(o, chat.id, system))

    # --- one streaming answer ---------------------------------------------------------

    def begin_answer(self, chat: Chat, draft: Draft, show: bool = True) -> AnswerSaver:
        return AnswerSaver(self, chat, draft, show)


def _question_row(messages: tuple[Message, ...] | list[Message]) -> int | None:
    """The row of the last question in ``messages`` (the one a new answer answers)."""
    for message in reversed(messages):
        if message.role is Role.USER:
            return message.id
    return None


class AnswerSaver:
    """Saves one streaming answer: a row when it starts, its text at most every
    :data:`SAVE_EVERY` seconds while it streams, and the final message when it ends."""

    def __init__(self, keeper: Keeper, chat: Chat, draft: Draft, show: bool = True) -> None:
        self.keeper = keeper
        self.chat_id = chat.id
        self.draft = draft
        self.row: int | None = None
        self._saved_at = keeper._clock()
        if chat.id is not None:
            turn = turn_of(chat, len(chat.messages) - 1)
            asked = _question_row(chat.messages)
            row = keeper._call(lambda s, o: s.add_message(o, chat.id, self._message(True),
                                                         turn, show, question=asked))
            self.row = row if isinstance(row, int) else None

    def _message(self, streaming: bool) -> Message:
        return Message(Role.ASSISTANT, self.draft.text, model=self.draft.model,
                       reasoning=self.draft.reasoning, streaming=streaming)

    def progress(self, draft: Draft) -> None:
        """Called after every event; saves when SAVE_EVERY has passed."""
        if self.row is None or self.keeper._clock() - self._saved_at < SAVE_EVERY:
            return
        self._saved_at = self.keeper._clock()
        message = self._message(True)
        self.keeper._call(lambda s, o: s.update_message(o, self.chat_id, self.row, message))

    def end(self, message: Message) -> Message:
        """The answer ended (finished, stopped or failed): store it; returns it with its
        row id (None when the database is away: it is stored later by ``sync``)."""
        if self.row is None:
            return message
        final = replace(message, id=self.row, streaming=False)
        done = self.keeper._call(
            lambda s, o: s.update_message(o, self.chat_id, self.row, final) or True
        )
        if done:
            return final
        assert self.chat_id is not None
        self.keeper.orphans.append((self.chat_id, self.row))  # replaced by ``sync`` later
        return replace(message, id=None)
