"""qwen_chat.store on SQLite and PostgreSQL 15: every method, ordering, concurrency, owner
isolation, stale streaming rows, search, migrations and faults (locked and corrupt SQLite,
PostgreSQL stopped and back, URLs with passwords)."""

from __future__ import annotations

import socket
import sqlite3
import string
import threading
import time
from dataclasses import replace
from datetime import UTC, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from qwen_chat import store as store_module
from qwen_chat.conversation import Chat, Message, Role, add_user, new_chat, title_of
from qwen_chat.store import (
    SCHEMA_VERSION,
    ChatStore,
    ChatSummary,
    StoredChat,
    StoreError,
)
from tests.pg import PgCluster, free_port, require_pg

from .conftest import FakeClock

ME, OTHER = "browser:me-0123456789abcdef0123456789ab", "user:someone@example.org"
MODEL = "qwen-2.5-max"
NOT_FOUND = "Chat history: that conversation does not exist (it may have been deleted)"


def user(text: str) -> Message:
    return Message(Role.USER, text)


def answer(text: str, **kw) -> Message:
    return Message(Role.ASSISTANT, text, model=MODEL, **kw)


def make(store: ChatStore, owner: str = ME, *texts: str, **kw) -> Chat:
    """A stored chat with alternating question/answer ``texts``."""
    msgs = tuple(user(t) if i % 2 == 0 else answer(t) for i, t in enumerate(texts))
    return store.create_chat(owner, Chat(messages=msgs, model=MODEL), **kw)


def count(store: ChatStore, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


# --- create / load ----------------------------------------------------------------------------


def test_create_and_load_round_trip(store: ChatStore):
    chat = add_user(new_chat(MODEL), "What is   the\ncapital of France?")
    chat = replace(chat, messages=(*chat.messages, answer("Paris.", reasoning="easy")))
    stored = store.create_chat(ME, chat, system="Be brief.")

    assert len(stored.id) == 22 and stored.id.replace("-", "").replace("_", "").isalnum()
    assert stored.title == "What is the capital of France?"
    ids = [m.id for m in stored.messages]
    assert all(isinstance(i, int) for i in ids) and ids == sorted(ids) and len(set(ids)) == 2
    assert [replace(m, id=None) for m in stored.messages] == list(chat.messages)

    loaded = store.load_chat(ME, stored.id)
    assert loaded == StoredChat(
        Chat(messages=stored.messages, model=MODEL, pending=False, id=stored.id,
             title="What is the capital of France?"),
        "Be brief.",
    )
    assert loaded.chat.messages[1] == Message(
        Role.ASSISTANT, "Paris.", model=MODEL, reasoning="easy", id=ids[1])


def test_titles(store: ChatStore):
    assert make(store, ME).title == "New chat"  # no question yet
    long_q = "word " * 40
    assert make(store, ME, long_q).title == title_of(long_q)
    given = make(store, ME, "q", title="  My\t title  ")
    assert given.title == "My title"
    assert store.load_chat(ME, given.id).chat.title == "My title"
    store.rename(ME, given.id, "x" * 250)
    assert store.load_chat(ME, given.id).chat.title == "x" * 200
    store.rename(ME, given.id, "   ")
    assert store.load_chat(ME, given.id).chat.title == "New chat"
    store.rename(ME, given.id, "Ünïcode 标题 🎉")
    assert store.list_chats(ME)[0].title == "Ünïcode 标题 🎉"


def test_ids_are_unguessable_and_distinct(store: ChatStore):
    ids = {make(store, ME, "q").id for _ in range(30)}
    assert len(ids) == 30
    assert all(len(i) == 22 for i in ids)


def test_load_missing_returns_none(store: ChatStore):
    assert store.load_chat(ME, "nope") is None
    assert store.load_chat(ME, "") is None


# --- messages ---------------------------------------------------------------------------------


def test_add_update_delete_messages_in_order(store: ChatStore, clock: FakeClock):
    chat = make(store, ME, "first")
    a = store.add_message(ME, chat.id, answer("", streaming=True))
    clock.advance(1)
    store.update_message(ME, chat.id, a, answer("Hel", reasoning="r1", streaming=True))
    b = store.add_message(ME, chat.id, user("second"))
    store.update_message(ME, chat.id, a, Message(
        Role.USER, "Hello", model="ignored", reasoning="r2", stopped=True, error="boom"))
    assert chat.messages[0].id < a < b

    got = store.load_chat(ME, chat.id).chat.messages
    assert got == (
        Message(Role.USER, "first", id=chat.messages[0].id),
        Message(Role.ASSISTANT, "Hello", model=MODEL, reasoning="r2", stopped=True,
                error="boom", id=a),  # role and model stay
        Message(Role.USER, "second", id=b),
    )

    other = make(store, ME, "other chat")
    store.delete_messages(ME, chat.id, [a, other.messages[0].id, 999_999])
    assert [m.id for m in store.load_chat(ME, chat.id).chat.messages] == [
        chat.messages[0].id, b]
    assert store.load_chat(ME, other.id).chat.messages == other.messages  # untouched
    store.delete_messages(ME, chat.id, [])
    c = store.add_message(ME, chat.id, user("third"))
    assert c > b  # ids are never reused, even after deletes
    with pytest.raises(StoreError, match="that message does not exist"):
        store.update_message(ME, chat.id, a, user("gone"))
    with pytest.raises(StoreError, match="that message does not exist"):
        store.update_message(ME, chat.id, other.messages[0].id, user("not in this chat"))
    assert store.load_chat(ME, other.id).chat.messages == other.messages


def test_updates_bump_updated_at_and_list_order(store: ChatStore, clock: FakeClock):
    a = make(store, ME, "a")
    clock.advance(1)
    b = make(store, ME, "b")
    clock.advance(1)
    c = make(store, ME, "c")
    assert [s.id for s in store.list_chats(ME)] == [c.id, b.id, a.id]

    clock.advance(1)
    store.add_message(ME, a.id, answer("x"))
    assert [s.id for s in store.list_chats(ME)] == [a.id, c.id, b.id]
    clock.advance(1)
    store.set_model(ME, b.id, "qwen3")
    assert [s.id for s in store.list_chats(ME)] == [b.id, a.id, c.id]
    clock.advance(1)
    store.update_message(ME, c.id, c.messages[0].id, user("c2"))
    assert [s.id for s in store.list_chats(ME)] == [c.id, b.id, a.id]

    first = store.list_chats(ME)[0]
    assert first == ChatSummary(c.id, "c", MODEL, first.created_at, clock.now)
    assert first.created_at == clock.now - timedelta(seconds=3)
    assert first.created_at.tzinfo is UTC or first.created_at.utcoffset() == timedelta(0)
    assert [s.id for s in store.list_chats(ME, limit=2)] == [c.id, b.id]
    assert store.list_chats(ME, limit=0) == []


def test_times_are_stored_alike_by_every_path(store: ChatStore, clock: FakeClock):
    """The streaming hot path binds times itself: they must be stored exactly as
    SQLAlchemy stores them elsewhere (SQLite text 'YYYY-MM-DD HH:MM:SS.ffffff', UTC)."""
    chat = make(store, ME, "q")
    mid = store.add_message(ME, chat.id, answer("", streaming=True))
    clock.advance(1)
    store.update_message(ME, chat.id, mid, answer("x", streaming=True))
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT m.created_at, m.updated_at, c.updated_at FROM messages m "
            "JOIN conversations c ON c.id = m.conversation_id ORDER BY m.id").all()
    created, updated, chat_updated = rows[-1]
    added = clock.now - timedelta(seconds=1, microseconds=-1)  # 1 µs after create_chat
    if store.backend == "sqlite":
        want = clock.now.replace(tzinfo=None).isoformat(" ", "microseconds")
        assert (updated, chat_updated) == (want, want)
        assert created == added.replace(tzinfo=None).isoformat(" ", "microseconds")
    else:
        assert (updated, chat_updated) == (clock.now, clock.now)
        assert created == added


def test_same_instant_writes_still_order(store: ChatStore):
    """The clock does not move (a coarse clock): updated_at still strictly increases."""
    chats = [make(store, ME, f"q{i}") for i in range(5)]
    assert [s.id for s in store.list_chats(ME)] == [c.id for c in reversed(chats)]


def test_model_and_system(store: ChatStore):
    chat = make(store, ME, "q", system="old")
    store.set_model(ME, chat.id, "qwen3-235b")
    store.set_system(ME, chat.id, "You are terse. 简洁")
    got = store.load_chat(ME, chat.id)
    assert (got.chat.model, got.system) == ("qwen3-235b", "You are terse. 简洁")
    assert store.list_chats(ME)[0].model == "qwen3-235b"
    store.set_system(ME, chat.id, None)
    assert store.load_chat(ME, chat.id).system is None
    store.set_system(ME, chat.id, "")
    assert store.load_chat(ME, chat.id).system == ""


# --- delete / restore / purge -------------------------------------------------------------------


def test_soft_delete_restore_and_purge(store: ChatStore, clock: FakeClock):
    keep = make(store, ME, "keep me")
    old = make(store, ME, "old one", "answer")
    recent = make(store, ME, "recent one")

    store.delete_chat(ME, old.id)
    assert store.load_chat(ME, old.id) is None
    assert [s.id for s in store.list_chats(ME)] == [recent.id, keep.id]
    assert store.list_chats(ME, "old one") == []
    with pytest.raises(StoreError, match="does not exist"):
        store.add_message(ME, old.id, user("into a deleted chat"))
    store.delete_chat(ME, old.id)  # deleting again: nothing happens

    store.restore_chat(ME, old.id)
    assert store.load_chat(ME, old.id).chat.messages == old.messages
    with pytest.raises(StoreError, match="cannot be restored"):
        store.restore_chat(ME, old.id)  # not deleted any more

    store.delete_chat(ME, old.id)
    clock.advance(23 * 3600)
    store.delete_chat(ME, recent.id)
    clock.advance(3600 + 1)  # old: deleted 24 h + 1 s ago; recent: 1 h + 1 s ago
    assert count(store, "messages") == 4
    assert store.purge_deleted() == 1
    assert count(store, "conversations") == 2
    assert count(store, "messages") == 2  # old's two messages went with it
    with pytest.raises(StoreError, match="cannot be restored"):
        store.restore_chat(ME, old.id)
    store.restore_chat(ME, recent.id)
    assert [s.id for s in store.list_chats(ME)] == [recent.id, keep.id]
    assert store.purge_deleted(timedelta(0)) == 0


def test_purge_other_owners_too(store: ChatStore, clock: FakeClock):
    mine, theirs = make(store, ME, "m"), make(store, OTHER, "t")
    store.delete_chat(ME, mine.id)
    store.delete_chat(OTHER, theirs.id)
    clock.advance(10)
    assert store.purge_deleted(timedelta(seconds=5)) == 2
    assert count(store, "conversations") == 0


# --- owners -----------------------------------------------------------------------------------


def test_another_owner_sees_nothing_and_changes_nothing(store: ChatStore):
    chat = make(store, ME, "secret question", "secret answer", system="sys", title="Mine")
    mid = chat.messages[0].id
    before = store.load_chat(ME, chat.id)

    assert store.load_chat(OTHER, chat.id) is None
    assert store.list_chats(OTHER) == []
    assert store.list_chats(OTHER, "secret") == []
    assert store.list_chats(OTHER, "Mine") == []
    for call in (
        lambda: store.add_message(OTHER, chat.id, user("hi")),
        lambda: store.update_message(OTHER, chat.id, mid, user("changed")),
        lambda: store.set_model(OTHER, chat.id, "x"),
        lambda: store.set_system(OTHER, chat.id, "x"),
        lambda: store.rename(OTHER, chat.id, "x"),
    ):
        with pytest.raises(StoreError) as wrong_owner:
            call()
        assert str(wrong_owner.value) == NOT_FOUND  # exactly as for a missing id
    with pytest.raises(StoreError) as missing:
        store.add_message(ME, "no-such-id", user("hi"))
    assert str(missing.value) == NOT_FOUND
    store.delete_messages(OTHER, chat.id, [mid])
    store.delete_chat(OTHER, chat.id)
    with pytest.raises(StoreError, match="cannot be restored"):
        store.restore_chat(OTHER, chat.id)
    assert store.load_chat(ME, chat.id) == before
    assert [s.id for s in store.list_chats(ME)] == [chat.id]

    store.delete_chat(ME, chat.id)
    with pytest.raises(StoreError, match="cannot be restored"):
        store.restore_chat(OTHER, chat.id)  # a deleted chat of mine: still not theirs
    store.restore_chat(ME, chat.id)


def test_owners_each_list_their_own(store: ChatStore):
    mine = [make(store, ME, f"apple {i}").id for i in range(3)]
    theirs = [make(store, OTHER, f"apple {i}").id for i in range(2)]
    assert [s.id for s in store.list_chats(ME, "apple")] == mine[::-1]
    assert [s.id for s in store.list_chats(OTHER, "APPLE")] == theirs[::-1]


# --- concurrency --------------------------------------------------------------------------------


def test_two_writers_to_one_chat_lose_nothing(store: ChatStore):
    chat = make(store, ME, "start")
    per_thread = 60
    got: dict[str, list[int]] = {"a": [], "b": []}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def write(tab: str) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                got[tab].append(store.add_message(ME, chat.id, user(f"{tab}{i}")))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(t,)) for t in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    msgs = store.load_chat(ME, chat.id).chat.messages
    assert len(msgs) == 1 + 2 * per_thread
    ids = [m.id for m in msgs]
    assert ids == sorted(ids)
    for tab, tab_ids in got.items():
        mine = [m for m in msgs if m.content.startswith(tab)]
        assert [m.content for m in mine] == [f"{tab}{i}" for i in range(per_thread)]
        assert [m.id for m in mine] == tab_ids


def test_many_threads_share_one_store(store: ChatStore):
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            owner = f"browser:owner{n}"
            chat = make(store, owner, f"hello {n}")
            mid = store.add_message(owner, chat.id, answer("", streaming=True))
            for k in range(5):
                store.update_message(owner, chat.id, mid, answer("x" * k, streaming=True))
            store.update_message(owner, chat.id, mid, answer(f"done {n}"))
            assert [s.id for s in store.list_chats(owner, f"done {n}")] == [chat.id]
            got = store.load_chat(owner, chat.id).chat.messages
            assert [m.content for m in got] == [f"hello {n}", f"done {n}"]
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert count(store, "conversations") == 12


# --- streaming rows -----------------------------------------------------------------------------


def test_stale_streaming_row_comes_back_stopped(store: ChatStore, clock: FakeClock):
    chat = make(store, ME, "q")
    mid = store.add_message(ME, chat.id, answer("partial", reasoning="thinking",
                                                streaming=True))
    clock.advance(29)
    assert store.load_chat(ME, chat.id).chat.messages[-1] == answer(
        "partial", reasoning="thinking", streaming=True, id=mid)
    store.update_message(ME, chat.id, mid, answer("partial more", reasoning="thinking",
                                                  streaming=True))
    clock.advance(29)  # 29 s after the last update: still being written
    assert store.load_chat(ME, chat.id).chat.messages[-1].streaming is True
    clock.advance(2)  # 31 s: its writer died
    assert store.load_chat(ME, chat.id).chat.messages[-1] == answer(
        "partial more", reasoning="thinking", stopped=True, streaming=False, id=mid)
    # reading does not write: the writer coming back still finishes it normally
    store.update_message(ME, chat.id, mid, answer("partial more, finished"))
    assert store.load_chat(ME, chat.id).chat.messages[-1] == answer(
        "partial more, finished", id=mid)


def test_finished_rows_never_go_stale(store: ChatStore, clock: FakeClock):
    chat = make(store, ME, "q", "a")
    clock.advance(3600)
    assert store.load_chat(ME, chat.id).chat.messages == chat.messages


# --- text ---------------------------------------------------------------------------------------

WEIRD = ("中文 日本語 한국어 emoji 🎉👩‍👩‍👧 \x00 NUL, \uffff0 \uffff1 \uffff and \\0 e\u0301 "
         "tab\tcr\r\nend \U0010ffff")


def test_unicode_and_nul_round_trip_exactly(store: ChatStore):
    chat = store.create_chat(
        ME, Chat(messages=(user(WEIRD), answer(WEIRD, reasoning=WEIRD, error=WEIRD)),
                 model=MODEL),
        system=WEIRD, title="t\x00itle \uffff",
    )
    loaded = store.load_chat(ME, chat.id)
    assert loaded.system == WEIRD
    assert loaded.chat.title == "t\x00itle \uffff"
    assert loaded.chat.messages == chat.messages
    assert loaded.chat.messages[1] == answer(WEIRD, reasoning=WEIRD, error=WEIRD,
                                             id=chat.messages[1].id)
    mid = store.add_message(ME, chat.id, user("\x00"))
    store.update_message(ME, chat.id, mid, user("\x00\x00\uffff0"))
    assert store.load_chat(ME, chat.id).chat.messages[-1].content == "\x00\x00\uffff0"
    assert [s.id for s in store.list_chats(ME, "\x00 NUL")] == [chat.id]
    assert [s.id for s in store.list_chats(ME, "👩‍👩‍👧")] == [chat.id]
    assert store.list_chats(ME, "\uffff0 \uffff0") == []


def test_lone_surrogates_become_replacement_characters(store: ChatStore):
    chat = make(store, ME, "bad \ud800 half")
    assert store.load_chat(ME, chat.id).chat.messages[0].content == "bad \ufffd half"


# --- search -------------------------------------------------------------------------------------


@pytest.fixture(params=["default", "walk", "no-trigram"])
def search_store(request: pytest.FixtureRequest, store: ChatStore,
                 monkeypatch: pytest.MonkeyPatch) -> ChatStore:
    """The store, with each PostgreSQL search strategy forced in turn (on SQLite the
    three are the same)."""
    if request.param == "walk":
        monkeypatch.setattr(store_module, "PROBE", 1)  # any hit: walk newest first
    elif request.param == "no-trigram":
        monkeypatch.setattr(store, "trigram", False)
    return store


def test_search_title_and_text_case_insensitive(search_store: ChatStore, clock: FakeClock):
    store = search_store
    by_title = make(store, ME, "body", title="Holiday PLANS")
    clock.advance(1)
    by_text = make(store, ME, "Where to go?", "Try the Alps: plans for skiing.")
    clock.advance(1)
    cyr = make(store, ME, "ПРИВЕТ мир", "École Ünïcode ΑΘΉΝΑ")
    clock.advance(1)
    cjk = make(store, ME, "北京的天气怎么样", "晴天 ☀️")
    clock.advance(1)
    last = make(store, ME, "nothing relevant")

    def ids(q: str) -> list[str]:
        return [s.id for s in store.list_chats(ME, q)]

    assert ids("plans") == [by_text.id, by_title.id]
    assert ids("PlAnS") == [by_text.id, by_title.id]
    assert ids("holiday") == [by_title.id]
    assert ids("alps: plans") == [by_text.id]
    assert ids("привет") == [cyr.id]
    assert ids("éCOLE") == [cyr.id]
    assert ids("ünïcode") == [cyr.id]
    assert ids("αθήνα") == [cyr.id]
    assert ids("天气") == [cjk.id]
    assert ids("☀️") == [cjk.id]
    assert ids("  alps  ") == [by_text.id]  # surrounding spaces ignored
    assert ids("zebra") == []
    assert ids("привет мир нет") == []
    assert len(store.list_chats(ME, "")) == 5
    assert len(store.list_chats(ME, None)) == 5
    assert ids("O") == [last.id, cyr.id, by_text.id, by_title.id]  # 1-2 characters
    assert ids("ΉΝ") == [cyr.id]


def test_search_escapes_like_wildcards(search_store: ChatStore, clock: FakeClock):
    store = search_store
    pct = make(store, ME, "growth of 100% this year")
    clock.advance(1)
    under = make(store, ME, "call my_function now")
    clock.advance(1)
    back = make(store, ME, r"path C:\temp\new")
    clock.advance(1)
    plain = make(store, ME, "100 percent, myXfunction, C:Xtemp")

    def ids(q: str) -> list[str]:
        return [s.id for s in store.list_chats(ME, q)]

    assert ids("100%") == [pct.id]
    assert ids("%") == [pct.id]
    assert ids("0% t") == [pct.id]
    assert ids("my_function") == [under.id]
    assert ids("_") == [under.id]
    assert ids(r"C:\temp") == [back.id]
    assert ids("\\") == [back.id]
    assert ids(r"\t") == [back.id]
    assert ids("%%") == []
    assert ids("__") == []
    assert ids("myxfunction") == [plain.id]


def test_search_every_punctuation_character_is_literal(search_store: ChatStore):
    store = search_store
    punct = make(store, ME, "all of " + string.punctuation + " here")
    letters = make(store, ME, "abc and axc and nothing special")
    regexy = make(store, ME, "a.c [x] (y|z) ^s$ d+ e* f?")

    def ids(q: str) -> list[str]:
        return [s.id for s in store.list_chats(ME, q)]

    for ch in string.punctuation:
        want = [regexy.id, punct.id] if ch in ".[]()|^$+*?" else [punct.id]
        assert ids(ch) == want, ch
        assert ids(f"x{ch}y") == []
    assert ids(string.punctuation) == [punct.id]
    assert ids("a.c") == [regexy.id]  # not "abc"
    assert ids("(y|z)") == [regexy.id]
    assert ids("y|z") == [regexy.id]
    assert ids("^s$") == [regexy.id]
    assert ids("e* f?") == [regexy.id]
    assert ids("a.*c") == []
    assert ids("abc") == [letters.id]


def test_search_limit_and_newest_first(search_store: ChatStore, clock: FakeClock):
    store = search_store
    made = []
    for i in range(12):
        made.append(make(store, ME, f"needle number {i}", "haystack"))
        clock.advance(1)
    assert [s.id for s in store.list_chats(ME, "needle", limit=5)] == [
        c.id for c in reversed(made)][:5]
    assert [s.id for s in store.list_chats(ME, "HAYSTACK")] == [c.id for c in reversed(made)]


def test_search_index_follows_every_change(search_store: ChatStore, clock: FakeClock):
    """Finished rows are found through the index, streaming ones without it; every
    update, finish, delete and purge shows at once."""
    store = search_store

    def ids(q: str) -> list[str]:
        return [s.id for s in store.list_chats(ME, q)]

    chat = make(store, ME, "alpha bravo charlie")
    assert ids("BRAVO") == [chat.id]
    mid = store.add_message(ME, chat.id, answer("delta echo", streaming=True))
    assert ids("echo") == [chat.id]
    store.update_message(ME, chat.id, mid, answer("delta foxtrot", streaming=True))
    assert (ids("echo"), ids("foxtrot")) == ([], [chat.id])
    store.update_message(ME, chat.id, mid, answer("delta golf"))  # finished
    assert (ids("foxtrot"), ids("golf")) == ([], [chat.id])
    store.update_message(ME, chat.id, mid, answer("delta hotel"))  # edited after
    assert (ids("golf"), ids("hotel")) == ([], [chat.id])
    store.update_message(ME, chat.id, mid, answer("delta india", streaming=True))  # again
    assert (ids("hotel"), ids("india")) == ([], [chat.id])
    store.update_message(ME, chat.id, mid, answer("delta juliett"))
    store.delete_messages(ME, chat.id, [mid])
    assert ids("juliett") == []
    assert ids("delta") == []
    other = make(store, ME, "kilo lima", "mike november")
    store.delete_chat(ME, other.id)
    assert ids("november") == []
    clock.advance(2 * 24 * 3600)
    assert store.purge_deleted() == 1
    assert ids("november") == []
    again = make(store, ME, "november rain")  # a new chat with the same words
    assert ids("november") == [again.id]
    assert ids("alpha") == [chat.id]
    if store.backend == "sqlite":
        with store.engine.begin() as conn:  # the index agrees with its own structure
            conn.exec_driver_sql(
                "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")


def test_search_quotes_and_index_syntax_are_literal(search_store: ChatStore):
    store = search_store
    quoted = make(store, ME, 'she said "hi there" twice')
    syntax = make(store, ME, "grep -E 'a* OR b^' NEAR(x) {col}: -y")

    def ids(q: str) -> list[str]:
        return [s.id for s in store.list_chats(ME, q)]

    assert ids('"hi there"') == [quoted.id]
    assert ids('said "hi') == [quoted.id]
    assert ids('"') == [quoted.id]
    assert ids("a* OR b^") == [syntax.id]
    assert ids("NEAR(x) {col}:") == [syntax.id]
    assert ids("a OR b") == []


def test_upgrade_from_version_1(db_url: str, backend: str, clock: FakeClock,
                                monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as old_app:  # the app as it was at schema version 1
        old_app.setattr(store_module, "SCHEMA_VERSION", 1)
        old = ChatStore(db_url, clock=clock)
        finished = make(old, ME, "papa quebec", "romeo sierra")
        live = make(old, ME, "tango")
        old.add_message(ME, live.id, answer("uniform victor", streaming=True))
        with old.engine.begin() as conn:
            assert conn.execute(sa.text("SELECT version FROM schema_version")).all() == [(1,)]
            # version 1's messages had no version columns (today's create_all makes them)
            conn.exec_driver_sql("ALTER TABLE messages DROP COLUMN turn")
            conn.exec_driver_sql("ALTER TABLE messages DROP COLUMN chosen")
            conn.exec_driver_sql("ALTER TABLE messages DROP COLUMN error_kind")
        old.close()
    new = ChatStore(db_url, clock=clock)
    try:
        with new.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version FROM schema_version")).all() == [(4,)]
            turns = conn.execute(sa.text(
                "SELECT role, turn, chosen FROM messages WHERE conversation_id = :c "
                "ORDER BY id"), {"c": finished.id}).all()
            assert [(r, t, bool(c)) for r, t, c in turns] == [
                ("user", 0, True), ("assistant", 0, True)]
        assert new.trigram is True
        assert [s.id for s in new.list_chats(ME, "romeo")] == [finished.id]
        assert [s.id for s in new.list_chats(ME, "VICTOR")] == [live.id]
        assert new.load_chat(ME, finished.id).chat.messages == finished.messages
    finally:
        new.close()


# --- schema -------------------------------------------------------------------------------------


def test_migration_from_empty_and_idempotent(db_url: str, backend: str, clock: FakeClock):
    first = ChatStore(db_url, clock=clock)
    try:
        inspector = sa.inspect(first.engine)
        assert set(inspector.get_table_names()) >= {
            "schema_version", "conversations", "messages"}
        assert [c["name"] for c in inspector.get_columns("conversations")] == [
            "id", "owner", "title", "model", "system", "created_at", "updated_at",
            "deleted_at"]
        assert [c["name"] for c in inspector.get_columns("messages")] == [
            "id", "conversation_id", "role", "content", "model", "reasoning", "stopped",
            "error", "streaming", "created_at", "updated_at", "turn", "chosen", "error_kind"]
        indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("conversations")}
        assert indexes["ix_conversations_owner"] == ["owner", "deleted_at", "updated_at"]
        assert ("ix_conversations_owner_live" in indexes) is (backend == "postgresql")
        assert ("ix_conversations_title_trgm" in indexes) is (backend == "postgresql")
        m_indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("messages")}
        assert m_indexes["ix_messages_conversation"] == ["conversation_id", "id"]
        assert first.trigram is True  # pg_trgm here; SQLite: FTS5 trigram (version 2)
        if backend == "sqlite":
            assert {"messages_fts"} <= set(inspector.get_table_names())
            assert "ix_messages_streaming" in m_indexes
        chat = make(first, ME, "survives", "re-migration")
        first.migrate()
        first.migrate()
        assert first.load_chat(ME, chat.id).chat.messages == chat.messages
    finally:
        first.close()
    again = ChatStore(db_url, clock=clock)
    try:
        assert again.load_chat(ME, chat.id).chat.messages == chat.messages
        with again.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version FROM schema_version")).all() == [
                (SCHEMA_VERSION,)]
    finally:
        again.close()


def test_schema_newer_than_code_is_refused_untouched(db_url: str, clock: FakeClock):
    opened = ChatStore(db_url, clock=clock)
    chat = make(opened, ME, "keep", "me")
    with opened.engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_version SET version = :v"),
                     {"v": SCHEMA_VERSION + 1})
    with pytest.raises(StoreError) as refused:
        opened.migrate()
    assert str(refused.value) == (
        f"Chat history: the database's schema is version {SCHEMA_VERSION + 1}, newer than "
        f"this app's ({SCHEMA_VERSION}); it was left untouched. Upgrade the app or use "
        "another database.")
    opened.close()
    with pytest.raises(StoreError, match="newer than this app's"):
        ChatStore(db_url, clock=clock)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version FROM schema_version")).all() == [
            (SCHEMA_VERSION + 1,)]
        assert conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one() == 2
        assert conn.execute(sa.text("SELECT title FROM conversations")).all() == [("keep",)]
    engine.dispose()
    assert chat.id


# --- errors are StoreErrors ---------------------------------------------------------------------


def test_errors_are_store_errors_without_driver_chain(store: ChatStore):
    with pytest.raises(StoreError) as raised:
        store.add_message(ME, "missing", user("x"))
    assert type(raised.value) is StoreError
    with store.engine.begin() as conn:  # a constraint the store did not expect
        conn.execute(sa.text("DROP TABLE messages"))
    with pytest.raises(StoreError) as broken:
        store.list_chats(ME, "anything")
    assert type(broken.value) is StoreError
    assert broken.value.__cause__ is None and broken.value.__suppress_context__
    assert str(broken.value).startswith("Chat history: could not list the conversations (")
    assert "anything" not in str(broken.value)  # no statement parameters


def test_bad_urls():
    with pytest.raises(StoreError) as bad:
        ChatStore("not a url with a s3cret")
    assert "s3cret" not in str(bad.value) and "not valid" in str(bad.value)
    with pytest.raises(StoreError, match="unsupported database 'mysql'"):
        ChatStore("mysql://u:s3cret@localhost/db")


def test_sqlite_in_memory_and_file_settings(tmp_path: Path):
    memory = ChatStore("sqlite://")
    chat = make(memory, ME, "in memory")
    assert memory.load_chat(ME, chat.id).chat.messages == chat.messages
    assert memory.where == "SQLite in memory"
    memory.close()

    path = tmp_path / "deep" / "er" / "chats.db"
    filed = ChatStore(f"sqlite:///{path}")
    try:
        assert path.exists() and filed.where == f"SQLite file {path}"
        with filed.engine.connect() as conn:
            pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("busy_timeout") == 5000
            assert pragma("foreign_keys") == 1
            assert pragma("synchronous") == 1  # NORMAL: safe with WAL
            assert pragma("mmap_size") == store_module.MMAP_BYTES
    finally:
        filed.close()


# --- SQLite faults ------------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [1.0, store_module.BUSY_TIMEOUT])
def test_sqlite_locked_fails_in_bounded_time_then_recovers(tmp_path: Path, timeout: float):
    path = tmp_path / "chats.db"
    opened = ChatStore(f"sqlite:///{path}", busy_timeout=timeout)
    chat = make(opened, ME, "q")
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        with pytest.raises(StoreError) as locked:
            opened.add_message(ME, chat.id, user("blocked"))
        waited = time.monotonic() - started
        assert timeout - 0.1 <= waited < timeout + 2.0
        assert str(locked.value) == (
            f"Chat history: could not save the message (SQLite file {path}): the database "
            f"is locked by another connection (waited {timeout:g} s); try again")
        started = time.monotonic()  # reading goes on meanwhile (WAL)
        assert [s.id for s in opened.list_chats(ME)] == [chat.id]
        assert time.monotonic() - started < 0.5
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    mid = opened.add_message(ME, chat.id, user("after"))
    assert [m.id for m in opened.load_chat(ME, chat.id).chat.messages][-1] == mid
    opened.close()


def test_sqlite_garbage_file_is_refused_quickly(tmp_path: Path):
    path = tmp_path / "chats.db"
    path.write_bytes(b"this is not a database \x00\xff" * 500)
    before = path.read_bytes()
    started = time.monotonic()
    with pytest.raises(StoreError) as corrupt:
        ChatStore(f"sqlite:///{path}")
    assert time.monotonic() - started < 2.0
    assert str(corrupt.value) == (
        f"Chat history: could not prepare the database (SQLite file {path}): the database "
        "file is damaged or is not an SQLite database; move it aside to start with an empty "
        "history")
    assert path.read_bytes() == before  # left as it was


def test_sqlite_damaged_store_file(tmp_path: Path):
    path = tmp_path / "chats.db"
    opened = ChatStore(f"sqlite:///{path}")
    make(opened, ME, "q", "a")
    opened.close()  # checkpoints the WAL into the file
    data = bytearray(path.read_bytes())
    data[:100] = b"\xde\xad\xbe\xef" * 25  # the header
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="damaged or is not an SQLite database"):
        ChatStore(f"sqlite:///{path}")


def test_sqlite_unusable_folder(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=r"^Chat history: could not open the database"):
        ChatStore(f"sqlite:///{blocker / 'sub' / 'chats.db'}")


# --- PostgreSQL faults --------------------------------------------------------------------------


def test_postgres_alias_urls(pg_cluster: PgCluster):
    url = pg_cluster.create_database("alias_db")
    bare = url.replace("postgresql+psycopg://", "postgres://")
    opened = ChatStore(bare)
    try:
        assert opened.engine.url.drivername == "postgresql+psycopg"
        assert opened.where == url
        chat = make(opened, ME, "via postgres://")
        assert opened.load_chat(ME, chat.id).chat.title == "via postgres://"
    finally:
        opened.close()


def test_postgres_writes_stay_atomic_after_autocommit_updates(pg_cluster: PgCluster):
    """update_message runs in autocommit; the pooled connection it used must be back in
    transactional mode for the next call (a failed create_chat leaves nothing)."""
    opened = ChatStore(pg_cluster.create_database("atomic_db"))
    try:
        chat = make(opened, ME, "q", "a")
        opened.update_message(ME, chat.id, chat.messages[1].id, answer("a2"))
        too_long = Chat(messages=(user("x"), Message(Role.ASSISTANT, "y", model="m" * 101)),
                        model=MODEL)
        with pytest.raises(StoreError, match="StringDataRightTruncation"):
            opened.create_chat(ME, too_long)
        assert [s.id for s in opened.list_chats(ME)] == [chat.id]
        assert count(opened, "messages") == 2
    finally:
        opened.close()


def test_postgres_without_pg_trgm_rights_still_searches(pg_cluster: PgCluster,
                                                         caplog: pytest.LogCaptureFixture):
    """A role that may create tables but not extensions: no trigram index, a warning, and
    search gives the same answers by reading the chats."""
    import psycopg

    pg_cluster.create_database("limited_db")
    with psycopg.connect(host="127.0.0.1", port=pg_cluster.port, user="postgres",
                         dbname="limited_db", autocommit=True) as conn:
        conn.execute("CREATE ROLE limited LOGIN")
        conn.execute("GRANT USAGE, CREATE ON SCHEMA public TO limited")
    url = f"postgresql+psycopg://limited@127.0.0.1:{pg_cluster.port}/limited_db"
    with caplog.at_level("WARNING", logger="qwen_chat.store"):
        opened = ChatStore(url)
    try:
        assert opened.trigram is False
        assert any("no pg_trgm search index" in r.getMessage() for r in caplog.records)
        a = make(opened, ME, "Searching without an index", "still works: 100%")
        b = make(opened, ME, "other")
        assert [s.id for s in opened.list_chats(ME, "WITHOUT an")] == [a.id]
        assert [s.id for s in opened.list_chats(ME, "100%")] == [a.id]
        assert [s.id for s in opened.list_chats(ME, "er")] == [b.id]
    finally:
        opened.close()


def test_postgres_unreachable_is_quick_and_redacted():
    port = free_port()  # nothing listens there
    url = f"postgresql://chat:Sup3r%3Asecret%40pw@127.0.0.1:{port}/chats"
    started = time.monotonic()
    with pytest.raises(StoreError) as unreachable:
        ChatStore(url)
    assert time.monotonic() - started < 4.0
    text = str(unreachable.value)
    assert text.startswith(
        f"Chat history: could not prepare the database (postgresql+psycopg://chat:***@"
        f"127.0.0.1:{port}/chats): the database server cannot be reached")
    for secret in ("Sup3r", "secret", "%40pw", "@pw"):
        assert secret not in text


def test_postgres_silent_server_hits_the_connect_timeout():
    """A port that accepts TCP but never answers (a hung server): the 3 s connect timeout
    bounds the wait. (Loopback only: a socket that listens and never accepts.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(StoreError) as hung:
            ChatStore(f"postgresql://u:pw@127.0.0.1:{port}/db")
        waited = time.monotonic() - started
    assert 2.5 <= waited < 6.0
    assert "the database server cannot be reached" in str(hung.value)
    assert ":pw@" not in str(hung.value)


def test_postgres_stopped_then_back(clock: FakeClock):
    require_pg()
    with PgCluster("faults") as pg:
        opened = ChatStore(pg.url, clock=clock)
        try:
            chat = make(opened, ME, "before the restart")
            pg.stop()
            for call in (
                lambda: opened.list_chats(ME),
                lambda: opened.load_chat(ME, chat.id),
                lambda: opened.add_message(ME, chat.id, user("while down")),
                lambda: opened.list_chats(ME, "before"),
            ):
                started = time.monotonic()
                with pytest.raises(StoreError) as down:
                    call()
                assert time.monotonic() - started < 4.0
                assert "the database server cannot be reached" in str(down.value)
            pg.start()
            mid = opened.add_message(ME, chat.id, user("after"))  # the very next call works
            assert [m.content for m in opened.load_chat(ME, chat.id).chat.messages] == [
                "before the restart", "after"]
            assert opened.load_chat(ME, chat.id).chat.messages[-1].id == mid
            pg.restart()
            assert [s.id for s in opened.list_chats(ME)] == [chat.id]
        finally:
            opened.close()


def test_the_stamp_moves_with_every_change_and_is_private(store: ChatStore, clock: FakeClock):
    chat = make(store, ME, "q")
    first = store.stamp(ME, chat.id)
    assert first == clock.now
    assert store.stamp(ME, chat.id) == first  # nothing changed: the page skips the reload
    clock.advance(1)
    store.add_message(ME, chat.id, answer("a"))
    assert store.stamp(ME, chat.id) == first + timedelta(seconds=1)
    assert store.stamp(OTHER, chat.id) is None  # another owner learns nothing
    store.delete_chat(ME, chat.id)
    assert store.stamp(ME, chat.id) is None
