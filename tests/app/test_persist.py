"""Keeping a session's chat in the store as it happens (persist.Keeper) on a real SQLite
file: a new chat gets its id with its first question, a streaming answer is saved at
most every 2 s and finally with its mark, a failing database costs nothing on the page
and what it missed is stored once it is back."""

from __future__ import annotations

from pathlib import Path

from qwen_chat import conversation as conv
from qwen_chat.persist import RETRY_AFTER, SAVE_EVERY, Keeper
from qwen_chat.store import ChatStore, StoreError
from qwen_core.events import TextDelta

OWNER = "browser:" + "k" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keeper(tmp_path: Path, clock: Clock) -> tuple[Keeper, ChatStore]:
    store = ChatStore(f"sqlite:///{tmp_path / 'chats.db'}")
    return Keeper(store, OWNER, clock=clock), store


def test_a_question_creates_the_chat_and_an_answer_is_saved_as_it_streams(tmp_path):
    clock = Clock()
    k, store = keeper(tmp_path, clock)
    chat = k.sync(conv.add_user(conv.new_chat(), "first question"), "sys")
    assert chat.id and chat.pending and chat.messages[0].id is not None
    stored = store.load_chat(OWNER, chat.id)
    assert stored.chat.title == "first question" and stored.system == "sys"

    chat, draft = conv.begin_answer(chat)
    saver = k.begin_answer(chat, draft)
    draft.apply(TextDelta("part one"))
    saver.progress(draft)  # too soon: nothing written yet
    assert store.load_chat(OWNER, chat.id).chat.messages[-1].content == ""
    clock.now += SAVE_EVERY
    saver.progress(draft)
    row = store.load_chat(OWNER, chat.id).chat.messages[-1]
    assert (row.content, row.streaming) == ("part one", True)

    draft.apply(TextDelta(" and two"))
    ended = conv.stop(chat, draft)
    last = saver.end(ended.messages[-1])
    assert last.id == row.id
    final = store.load_chat(OWNER, chat.id).chat.messages[-1]
    assert (final.content, final.stopped, final.streaming) == ("part one and two", True, False)


def test_a_failing_database_pauses_storing_and_what_was_missed_is_stored_later(tmp_path):
    clock = Clock()
    k, store = keeper(tmp_path, clock)
    chat = k.sync(conv.add_user(conv.new_chat(), "q1"), None)
    real_add = store.add_message

    def broken(*args, **kwargs):
        raise StoreError("Chat history: the database is locked")

    store.add_message = broken  # type: ignore[method-assign]
    chat, draft = conv.begin_answer(chat)
    draft.apply(TextDelta("answer"))
    chat = conv.finish(chat, draft)
    assert k.sync(chat, None).messages[-1].id is None  # not stored, no exception
    assert k.problem == "Chat history: the database is locked"

    store.add_message = real_add  # type: ignore[method-assign]
    assert k.sync(chat, None).messages[-1].id is None  # left alone for RETRY_AFTER
    clock.now += RETRY_AFTER
    synced = k.sync(chat, None)
    assert synced.messages[-1].id is not None and k.problem is None
    assert [m.content for m in store.load_chat(OWNER, chat.id).chat.messages] == ["q1", "answer"]


def test_refresh_reads_other_tabs_messages_only_when_the_chat_changed(tmp_path):
    clock = Clock()
    k, store = keeper(tmp_path, clock)
    chat = k.sync(conv.add_user(conv.new_chat(), "mine"), None)
    chat, stamp = k.refresh(chat)
    same, again = k.refresh(chat, stamp)
    assert same is chat and again == stamp  # unchanged: not read again
    store.add_message(OWNER, chat.id, conv.Message(conv.Role.USER, "from another tab"))
    newer, moved = k.refresh(chat, stamp)
    assert [m.content for m in newer.messages] == ["mine", "from another tab"]
    assert moved != stamp and newer.pending == chat.pending


def test_without_a_store_nothing_is_stored_and_the_reason_is_kept():
    k = Keeper(None, None, "Conversations are not stored on this server.")
    chat = conv.add_user(conv.new_chat(), "q")
    assert not k.enabled and k.sync(chat, None) is chat
    assert k.reason == "Conversations are not stored on this server."
