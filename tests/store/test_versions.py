"""Answer versions stored with the conversation, on SQLite and PostgreSQL: through
persist.Keeper and ChatStore in the order the page calls them (page.on_regenerate,
on_choose, on_edit_send, on_answer_with, on_upload, stream_answer, stream_pair), a
reloaded conversation has the same versions, shows the same one and sends the same
history; nothing is deleted to make a version."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa

from qwen_chat import conversation as conv
from qwen_chat import files
from qwen_chat.conversation import Chat, Role
from qwen_chat.draft import Draft
from qwen_chat.persist import Keeper
from qwen_chat.store import ChatStore
from qwen_core.events import TextDelta

ME = "browser:" + "v" * 32
MAX = "qwen-2.5-max"  # Qwen/Qwen2.5-Max-Demo
Q3 = "qwen3-32b"  # Qwen/Qwen3-Demo: another Space
SYSTEM = "Be brief."


@pytest.fixture
def keeper(store: ChatStore) -> Keeper:
    return Keeper(store, ME)


# --- the page's steps -----------------------------------------------------------------------


def ask(keeper: Keeper, chat: Chat, text: str) -> Chat:
    """page.first_turn: add the question and store it (a new chat gets its id)."""
    return keeper.sync(conv.add_user(chat, text), SYSTEM)


def stream(keeper: Keeper, chat: Chat, text: str, *, error: str | None = None) -> Chat:
    """page.stream_answer: begin, save a row, end (finished or failed), store the end;
    one side of a comparison asked again becomes a version (keep_shown)."""
    aside = chat.asking is not None and chat.messages[-1].role is Role.ASSISTANT
    chat, draft = conv.begin_answer(chat)
    saver = keeper.begin_answer(chat, draft, show=not aside)
    draft.apply(TextDelta(text=text))
    ended = conv.finish(chat, draft) if error is None else \
        conv.fail(chat, draft, error, kind="SpaceUnavailable")
    last = saver.end(ended.messages[-1])
    assert last.id is not None
    ended = replace(ended, messages=(*ended.messages[:-1], last))
    if aside:
        ended = conv.keep_shown(ended)
    return ended


def stream_pair(keeper: Keeper, chat: Chat, first: tuple[str, str],
                second: tuple[str, str]) -> Chat:
    """page.stream_pair: both answers saved at once, the second as a version only."""
    chat, _ = conv.begin_answer(chat)
    drafts = [Draft(first[0]), Draft(second[0])]
    savers = [keeper.begin_answer(chat, d, show=i == 0) for i, d in enumerate(drafts)]
    answers = []
    for draft, saver, (_, text) in zip(drafts, savers, (first, second), strict=True):
        draft.apply(TextDelta(text=text))
        answers.append(saver.end(conv.finish(chat, draft).messages[-1]))
    return conv.add_answers(chat, tuple(answers))


def choose(keeper: Keeper, chat: Chat, index: int, position: int) -> Chat:
    """page.on_choose."""
    chat = conv.choose(chat, index, position)
    keeper.choose(chat, index)
    return chat


def edit(keeper: Keeper, chat: Chat, text: str) -> Chat:
    """page.on_edit_send."""
    return keeper.sync(conv.edit_last(chat, text), SYSTEM)


def reload(keeper: Keeper, chat: Chat) -> Chat:
    found = keeper.load(chat.id)
    assert isinstance(found, tuple), found
    loaded, system = found
    assert system == SYSTEM
    return loaded


def texts(chat: Chat) -> list[tuple[str, str]]:
    return [(m.role.value, m.content) for m in chat.messages]


def versions(chat: Chat, index: int) -> tuple[list[tuple[str, str | None]], int]:
    found, at = conv.versions_of(chat, index)
    return [(v.question.content, None if v.answer is None else v.answer.content)
            for v in found], at


def rows(store: ChatStore, chat_id: str) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT role, content FROM messages WHERE conversation_id = :c ORDER BY id"),
            {"c": chat_id})]


# --- tests ----------------------------------------------------------------------------------


def test_a_regenerated_turn_reloads_with_both_answers_and_the_new_one_shown(
        keeper: Keeper, store: ChatStore):
    chat = stream(keeper, ask(keeper, conv.new_chat(MAX), "Capital of France?"), "Paris.")
    chat = stream(keeper, conv.regenerate(chat), "Paris, on the Seine.")  # on_regenerate
    chat = keeper.sync(chat, SYSTEM)  # the next page run
    assert versions(chat, 0) == ([("Capital of France?", "Paris."),
                                  ("Capital of France?", "Paris, on the Seine.")], 1)

    loaded = reload(keeper, chat)
    assert texts(loaded) == [("user", "Capital of France?"),
                             ("assistant", "Paris, on the Seine.")]
    assert versions(loaded, 0) == versions(chat, 0)
    assert loaded.messages == chat.messages
    assert conv.to_qwen_messages(loaded, SYSTEM) == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris, on the Seine."},
    ]
    # one question row, two answer rows: nothing deleted, nothing doubled
    assert rows(store, chat.id) == [("user", "Capital of France?"), ("assistant", "Paris."),
                                    ("assistant", "Paris, on the Seine.")]


def test_a_retried_failure_reloads_with_its_error_as_a_version(keeper: Keeper):
    chat = ask(keeper, conv.new_chat(MAX), "Capital of France?")
    chat = stream(keeper, chat, "Pa", error="The Space is asleep")
    chat = stream(keeper, conv.ask_other(chat, Q3), "Paris.")  # on_ask_other
    keeper.set_model(chat)
    loaded = reload(keeper, chat)
    assert loaded.model == Q3
    found, at = conv.versions_of(loaded, 0)
    assert at == 1
    assert [(v.answer.content, v.answer.model, v.answer.error, v.answer.error_kind)
            for v in found] == [
        ("Pa", MAX, "The Space is asleep", "SpaceUnavailable"), ("Paris.", Q3, None, None)]


def test_a_failure_reloads_with_its_kind_so_the_page_can_offer_other_models(keeper: Keeper):
    chat = ask(keeper, conv.new_chat(MAX), "Capital of France?")
    chat = stream(keeper, chat, "", error="cannot connect; the Space may be down")
    last = reload(keeper, chat).messages[-1]
    assert (last.error, last.error_kind) == ("cannot connect; the Space may be down",
                                             "SpaceUnavailable")


def test_choose_persists_across_a_reload_and_later_turns_send_it(
        keeper: Keeper, store: ChatStore):
    chat = stream(keeper, ask(keeper, conv.new_chat(MAX), "Capital of France?"), "Paris.")
    chat = stream(keeper, conv.regenerate(chat), "Paris, on the Seine.")
    chat = stream(keeper, ask(keeper, chat, "And of Italy?"), "Rome.")
    chat = choose(keeper, chat, 0, 0)

    loaded = reload(keeper, chat)
    assert texts(loaded) == [
        ("user", "Capital of France?"), ("assistant", "Paris."),
        ("user", "And of Italy?"), ("assistant", "Rome."),
    ]
    assert versions(loaded, 0) == ([("Capital of France?", "Paris."),
                                    ("Capital of France?", "Paris, on the Seine.")], 0)
    assert loaded.messages == chat.messages
    asked = conv.add_user(loaded, "And of Spain?")
    assert conv.to_qwen_messages(asked)[:2] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
    # choosing back is stored too
    chat = choose(keeper, loaded, 0, 1)
    assert texts(reload(keeper, chat))[1] == ("assistant", "Paris, on the Seine.")
    assert len(rows(store, chat.id)) == 5


def test_compare_modes_second_answer_reloads_as_a_version_not_shown(keeper: Keeper):
    chat = ask(keeper, conv.new_chat(MAX), "Capital of France?")
    chat = stream_pair(keeper, chat, (MAX, "Paris."), (Q3, "It is Paris."))
    loaded = reload(keeper, chat)
    assert texts(loaded) == [("user", "Capital of France?"), ("assistant", "Paris.")]
    found, at = conv.versions_of(loaded, 0)
    assert at == 0
    assert [(v.answer.model, v.answer.content) for v in found] == [
        (MAX, "Paris."), (Q3, "It is Paris.")]
    assert loaded.messages == chat.messages

    # Retry on the side not shown (on_answer_with(Q3, shown=False)): a third version
    chat = stream(keeper, conv.answer_with(loaded, Q3), "Paris, France.")
    assert texts(chat)[-1] == ("assistant", "Paris.")
    loaded = reload(keeper, chat)
    assert texts(loaded)[-1] == ("assistant", "Paris.")
    assert versions(loaded, 0) == ([("Capital of France?", "Paris."),
                                    ("Capital of France?", "It is Paris."),
                                    ("Capital of France?", "Paris, France.")], 0)
    assert loaded.messages == chat.messages

    # "Continue with this answer" on the other side
    chat = choose(keeper, loaded, 0, 1)
    loaded = reload(keeper, chat)
    assert (loaded.messages[-1].model, loaded.messages[-1].content) == (Q3, "It is Paris.")
    assert conv.versions_of(loaded, 0)[1] == 1


def test_an_edited_question_reloads_with_both_wordings(keeper: Keeper, store: ChatStore):
    chat = stream(keeper, ask(keeper, conv.new_chat(MAX), "Capital of Frnace?"), "Paris?")
    chat = stream(keeper, edit(keeper, chat, "Capital of France?"), "Paris.")
    loaded = reload(keeper, chat)
    assert texts(loaded) == [("user", "Capital of France?"), ("assistant", "Paris.")]
    assert versions(loaded, 0) == ([("Capital of Frnace?", "Paris?"),
                                    ("Capital of France?", "Paris.")], 1)
    assert loaded.messages == chat.messages

    chat = choose(keeper, loaded, 0, 0)  # the old branch: the old question comes back
    loaded = reload(keeper, chat)
    assert texts(loaded) == [("user", "Capital of Frnace?"), ("assistant", "Paris?")]
    assert conv.versions_of(loaded, 0)[1] == 0
    assert rows(store, chat.id) == [
        ("user", "Capital of Frnace?"), ("assistant", "Paris?"),
        ("user", "Capital of France?"), ("assistant", "Paris."),
    ]


def test_an_edited_question_not_yet_answered_reloads_pending_wording(keeper: Keeper):
    chat = stream(keeper, ask(keeper, conv.new_chat(MAX), "Capitl?"), "Pardon?")
    chat = edit(keeper, chat, "Capital of France?")
    loaded = reload(keeper, chat)  # e.g. the tab closed before the answer started
    assert texts(loaded) == [("user", "Capital of France?")]
    assert versions(loaded, 0) == ([("Capitl?", "Pardon?"), ("Capital of France?", None)], 1)


def test_nothing_is_deleted_over_many_versions(keeper: Keeper, store: ChatStore):
    chat = stream(keeper, ask(keeper, conv.new_chat(MAX), "q1"), "a1")
    chat = stream(keeper, conv.regenerate(chat), "a2")
    chat = stream(keeper, edit(keeper, chat, "q1 edited"), "a3")
    chat = stream_pair(keeper, keeper.sync(conv.regenerate(chat), SYSTEM), (MAX, "a4"),
                       (Q3, "a5"))
    chat = choose(keeper, chat, 0, 1)
    chat = stream(keeper, ask(keeper, chat, "q2"), "b1")
    chat = stream(keeper, conv.regenerate(chat), "b2")
    loaded = reload(keeper, chat)
    assert versions(loaded, 0) == ([("q1", "a1"), ("q1", "a2"), ("q1 edited", "a3"),
                                    ("q1 edited", "a4"), ("q1 edited", "a5")], 1)
    assert versions(loaded, 2) == ([("q2", "b1"), ("q2", "b2")], 1)
    assert texts(loaded) == [("user", "q1"), ("assistant", "a2"),
                             ("user", "q2"), ("assistant", "b2")]
    assert loaded.messages == chat.messages
    assert sorted(rows(store, chat.id)) == sorted([
        ("user", "q1"), ("assistant", "a1"), ("assistant", "a2"), ("user", "q1 edited"),
        ("assistant", "a3"), ("assistant", "a4"), ("assistant", "a5"),
        ("user", "q2"), ("assistant", "b1"), ("assistant", "b2")])


def test_an_imported_chat_with_versions_is_stored_with_them(keeper: Keeper):
    chat = conv.add_user(conv.new_chat(MAX), "Capital of Frnace?")
    chat, draft = conv.begin_answer(chat)
    draft.apply(TextDelta(text="Paris?"))
    chat = conv.finish(chat, draft)
    chat = conv.edit_last(chat, "Capital of France?")
    chat, draft = conv.begin_answer(chat)
    draft.apply(TextDelta(text="Paris."))
    chat = conv.choose(conv.finish(chat, draft), 0, 0)
    imported = files.from_json(files.to_json(chat, SYSTEM))
    stored = keeper.sync(replace(imported.chat, id=None), SYSTEM)  # page.on_upload
    assert stored.id is not None
    loaded = reload(keeper, stored)
    assert texts(loaded) == [("user", "Capital of Frnace?"), ("assistant", "Paris?")]
    assert versions(loaded, 0) == ([("Capital of Frnace?", "Paris?"),
                                    ("Capital of France?", "Paris.")], 0)


def test_regenerate_on_the_old_wording_after_an_edit_keeps_its_question(keeper: Keeper):
    chat = stream(keeper, ask(keeper, conv.new_chat(MAX), "Capital of Frnace?"), "Paris?")
    chat = stream(keeper, edit(keeper, chat, "Capital of France?"), "Paris.")
    chat = choose(keeper, chat, 0, 0)  # back to the old wording
    chat = stream(keeper, conv.regenerate(chat), "Paris, in France.")  # Regenerate
    assert texts(chat) == [("user", "Capital of Frnace?"), ("assistant", "Paris, in France.")]
    loaded = reload(keeper, chat)
    # the page showed the old wording above the new answer; after a reload it must too
    assert texts(loaded) == [("user", "Capital of Frnace?"),
                             ("assistant", "Paris, in France.")]
    assert versions(loaded, 0) == versions(chat, 0)


def test_answer_with_on_the_old_wording_after_an_edit_keeps_its_question(keeper: Keeper):
    chat = stream(keeper, ask(keeper, conv.new_chat(MAX), "Capital of Frnace?"), "Paris?")
    chat = stream(keeper, edit(keeper, chat, "Capital of France?"), "Paris.")
    chat = choose(keeper, chat, 0, 0)
    chat = stream(keeper, conv.answer_with(chat, Q3), "Paris (Q3).")
    assert versions(chat, 0)[0][-1] == ("Capital of Frnace?", "Paris (Q3).")
    loaded = reload(keeper, chat)
    assert versions(loaded, 0) == versions(chat, 0)
