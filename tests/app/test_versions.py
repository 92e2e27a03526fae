"""Answer versions in the pure conversation model (qwen_chat.conversation) and in the
JSON/Markdown files (qwen_chat.files): Regenerate, Retry, "ask another model", compare
mode and editing the last question keep the earlier answers of a turn as versions; the
version shown is the one later turns send as history."""

from __future__ import annotations

import pytest

from qwen_chat import conversation as conv
from qwen_chat import files
from qwen_chat.conversation import Chat, ChatError, Message, Role
from qwen_chat.draft import Draft
from qwen_core.events import ReasoningDelta, TextDelta

MAX = "qwen-2.5-max"  # Qwen/Qwen2.5-Max-Demo
Q3 = "qwen3-32b"  # Qwen/Qwen3-Demo: another Space
SYSTEM = "Be brief."


def answered(chat: Chat, text: str, *, reasoning: str = "") -> Chat:
    """Stream the pending answer as the page does: begin, deltas, finish."""
    chat, draft = conv.begin_answer(chat)
    if reasoning:
        draft.apply(ReasoningDelta(text=reasoning))
    draft.apply(TextDelta(text=text))
    return conv.finish(chat, draft)


def failed(chat: Chat, partial: str, error: str) -> Chat:
    chat, draft = conv.begin_answer(chat)
    draft.apply(TextDelta(text=partial))
    return conv.fail(chat, draft, error, kind="SpaceUnavailable")


def stopped(chat: Chat, partial: str) -> Chat:
    chat, draft = conv.begin_answer(chat)
    draft.apply(TextDelta(text=partial))
    return conv.stop(chat, draft)


def side(model: str, text: str) -> Message:
    """One side's finished answer in compare mode (as page.side_answer makes it)."""
    draft = Draft(model)
    draft.apply(TextDelta(text=text))
    return conv.finish(Chat(), draft).messages[-1]


def one_turn(question: str = "Capital of France?", answer: str = "Paris.") -> Chat:
    return answered(conv.add_user(conv.new_chat(MAX), question), answer)


def texts(chat: Chat) -> list[tuple[str, str]]:
    return [(m.role.value, m.content) for m in chat.messages]


def answers_of(chat: Chat, index: int) -> list[str | None]:
    versions, _ = conv.versions_of(chat, index)
    return [None if v.answer is None else v.answer.content for v in versions]


# --- regenerate / choose --------------------------------------------------------------------


def test_regenerate_keeps_the_old_answer_as_the_first_version():
    chat = conv.regenerate(one_turn())
    assert chat.pending
    assert texts(chat) == [("user", "Capital of France?")]  # the new answer is awaited
    versions, at = conv.versions_of(chat, 0)
    assert (len(versions), at) == (2, 1)
    assert versions[0].answer is not None and versions[0].answer.content == "Paris."
    assert versions[1].answer is None

    chat = answered(chat, "It is Paris, of course.")
    versions, at = conv.versions_of(chat, 0)
    assert answers_of(chat, 0) == ["Paris.", "It is Paris, of course."] and at == 1
    assert [v.question.content for v in versions] == ["Capital of France?"] * 2
    assert texts(chat) == [("user", "Capital of France?"),
                           ("assistant", "It is Paris, of course.")]
    # only the shown answer is sent
    assert conv.to_qwen_messages(chat, SYSTEM) == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "It is Paris, of course."},
    ]


def test_choose_shows_the_earlier_answer_and_sends_it_as_history():
    chat = answered(conv.regenerate(one_turn()), "Paris, on the Seine.")
    chat = conv.choose(chat, 0, 0)
    assert texts(chat) == [("user", "Capital of France?"), ("assistant", "Paris.")]
    assert conv.versions_of(chat, 0)[1] == 0
    assert answers_of(chat, 0) == ["Paris.", "Paris, on the Seine."]  # order unchanged
    assert conv.to_qwen_messages(chat) == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
    # and back again
    again = conv.choose(chat, 0, 1)
    assert texts(again)[-1] == ("assistant", "Paris, on the Seine.")
    assert conv.versions_of(again, 0)[1] == 1
    # choosing the shown one changes nothing
    assert conv.choose(again, 0, 1) is again


def test_later_turns_send_the_chosen_version_as_history():
    chat = answered(conv.regenerate(one_turn()), "Paris, on the Seine.")
    chat = answered(conv.add_user(chat, "And of Italy?"), "Rome.")
    chat = conv.choose(chat, 0, 0)  # change an earlier turn: later turns stay
    assert texts(chat) == [
        ("user", "Capital of France?"), ("assistant", "Paris."),
        ("user", "And of Italy?"), ("assistant", "Rome."),
    ]
    chat = conv.add_user(chat, "And of Spain?")
    assert conv.to_qwen_messages(chat, SYSTEM) == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
        {"role": "assistant", "content": "Rome."},
        {"role": "user", "content": "And of Spain?"},
    ]
    assert conv.turn_of(chat, 4) == 2 and conv.turn_of(chat, 3) == 1


def test_choose_a_bad_position_or_while_pending_raises():
    chat = answered(conv.regenerate(one_turn()), "Paris, on the Seine.")
    for position in (-1, 2, 7):
        with pytest.raises(ChatError, match="this turn has 2 versions"):
            conv.choose(chat, 0, position)
    with pytest.raises(ChatError, match="versions belong to a question"):
        conv.choose(chat, 1, 0)
    with pytest.raises(ChatError, match="an answer is being written"):
        conv.choose(conv.regenerate(chat), 0, 0)


# --- retry / ask another model --------------------------------------------------------------


def test_retry_of_a_failed_answer_keeps_the_failed_one_with_its_error():
    chat = failed(conv.add_user(conv.new_chat(MAX), "Capital of France?"), "Par",
                  "The Space is asleep")
    assert chat.messages[-1].error == "The Space is asleep"
    chat = answered(conv.retry(chat), "Paris.")
    versions, at = conv.versions_of(chat, 0)
    assert at == 1 and answers_of(chat, 0) == ["Par", "Paris."]
    old = versions[0].answer
    assert old is not None and (old.error, old.model) == ("The Space is asleep", MAX)
    assert chat.messages[-1].error is None
    # the failed partial text is no longer sent
    assert conv.to_qwen_messages(chat)[-1] == {"role": "assistant", "content": "Paris."}
    # going back to it shows the error again
    back = conv.choose(chat, 0, 0)
    assert (back.messages[-1].content, back.messages[-1].error) == ("Par", "The Space is asleep")


def test_ask_other_switches_the_model_and_keeps_the_failed_answer():
    chat = failed(conv.add_user(conv.new_chat(MAX), "Capital of France?"), "",
                  "The Space is full")
    chat = conv.ask_other(chat, Q3)
    assert chat.model == Q3 and chat.pending
    chat, draft = conv.begin_answer(chat)
    assert draft.model == Q3
    draft.apply(TextDelta(text="Paris."))
    chat = conv.finish(chat, draft)
    versions, at = conv.versions_of(chat, 0)
    assert at == 1
    assert [(v.answer.model, v.answer.error) for v in versions if v.answer] == [
        (MAX, "The Space is full"), (Q3, None)]
    assert chat.messages[-1].model == Q3 and chat.model == Q3
    # the next question goes to the new model too
    chat, draft = conv.begin_answer(conv.add_user(chat, "And Italy?"))
    assert draft.model == Q3


# --- edit the last question -----------------------------------------------------------------


def test_edit_last_keeps_the_old_question_and_answer_as_a_version():
    chat = conv.edit_last(one_turn("Capital of Frnace?"), "Capital of France?")
    assert chat.pending
    assert texts(chat) == [("user", "Capital of France?")]
    versions, at = conv.versions_of(chat, 0)
    assert at == 1
    assert [(v.question.content, v.answer and v.answer.content) for v in versions] == [
        ("Capital of Frnace?", "Paris."), ("Capital of France?", None)]
    assert conv.to_qwen_messages(chat) == [{"role": "user", "content": "Capital of France?"}]

    chat = answered(chat, "Paris, France.")
    assert texts(chat) == [("user", "Capital of France?"), ("assistant", "Paris, France.")]
    back = conv.choose(chat, 0, 0)  # the old branch brings back the old question text
    assert texts(back) == [("user", "Capital of Frnace?"), ("assistant", "Paris.")]
    assert conv.to_qwen_messages(back) == [
        {"role": "user", "content": "Capital of Frnace?"},
        {"role": "assistant", "content": "Paris."},
    ]
    assert conv.last_user_text(back) == "Capital of Frnace?"


def test_edit_last_of_a_later_turn_keeps_earlier_turns():
    chat = answered(conv.add_user(one_turn(), "And Italy?"), "Rome.")
    chat = answered(conv.edit_last(chat, "And Spain?"), "Madrid.")
    assert texts(chat) == [
        ("user", "Capital of France?"), ("assistant", "Paris."),
        ("user", "And Spain?"), ("assistant", "Madrid."),
    ]
    assert (answers_of(chat, 0), conv.versions_of(chat, 0)[1]) == (["Paris."], 0)
    assert answers_of(chat, 2) == ["Rome.", "Madrid."]
    back = conv.choose(chat, 2, 0)
    assert texts(back)[2:] == [("user", "And Italy?"), ("assistant", "Rome.")]


# --- compare mode ---------------------------------------------------------------------------


def test_add_answers_shows_the_first_and_keeps_the_second_as_a_version():
    chat = conv.add_user(conv.new_chat(MAX), "Capital of France?")
    chat, _ = conv.begin_answer(chat)
    chat = conv.add_answers(chat, (side(MAX, "Paris."), side(Q3, "It is Paris.")))
    assert not chat.pending
    assert texts(chat) == [("user", "Capital of France?"), ("assistant", "Paris.")]
    versions, at = conv.versions_of(chat, 0)
    assert at == 0
    assert [(v.answer.model, v.answer.content) for v in versions if v.answer] == [
        (MAX, "Paris."), (Q3, "It is Paris.")]
    assert conv.to_qwen_messages(chat)[-1] == {"role": "assistant", "content": "Paris."}
    # "Continue with this answer" on the other side
    other = conv.choose(chat, 0, 1)
    assert (other.messages[-1].model, other.messages[-1].content) == (Q3, "It is Paris.")
    assert conv.to_qwen_messages(other)[-1] == {"role": "assistant", "content": "It is Paris."}


def test_answer_with_and_keep_shown_keep_the_shown_answer_and_add_the_newest_version():
    chat = conv.add_user(conv.new_chat(MAX), "Capital of France?")
    chat, _ = conv.begin_answer(chat)
    chat = conv.add_answers(chat, (side(MAX, "Paris."), side(Q3, "Lyon?")))
    # Retry on the side not shown (page.on_answer_with(Q3, shown=False))
    asked = conv.answer_with(chat, Q3)
    assert asked.pending and asked.asking == Q3 and asked.model == MAX
    assert texts(asked)[-1] == ("assistant", "Paris.")  # the shown answer stays meanwhile
    asked, draft = conv.begin_answer(asked)
    assert draft.model == Q3 and asked.asking is None
    draft.apply(TextDelta(text="Paris, sorry."))
    done = conv.keep_shown(conv.finish(asked, draft))
    assert texts(done) == [("user", "Capital of France?"), ("assistant", "Paris.")]
    versions, at = conv.versions_of(done, 0)
    assert at == 0
    assert [(v.answer.model, v.answer.content) for v in versions if v.answer] == [
        (MAX, "Paris."), (Q3, "Lyon?"), (Q3, "Paris, sorry.")]
    assert done.model == MAX
    assert conv.to_qwen_messages(done) == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]


def test_answer_with_needs_a_question():
    with pytest.raises(ChatError):
        conv.answer_with(conv.new_chat(MAX), Q3)


# --- files ----------------------------------------------------------------------------------


def many_versions() -> Chat:
    """Turn 1: a failed answer, a stopped one, a finished one by another model, and an
    edited wording; the shown version is the finished one (not the newest)."""
    chat = failed(conv.add_user(conv.new_chat(MAX), "Capital of Frnace?"), "Pa",
                  "The Space is asleep")
    chat = stopped(conv.retry(chat), "Paris is")
    chat = answered(conv.ask_other(chat, Q3), "Paris.", reasoning="Easy one.")
    chat = answered(conv.edit_last(chat, "Capital of France?"), "Paris, France.")
    chat = conv.choose(chat, 0, 2)
    return answered(conv.add_user(chat, "And Italy?"), "Rome.")


def test_json_export_and_import_keep_every_version_and_the_shown_one():
    chat = many_versions()
    assert texts(chat) == [
        ("user", "Capital of Frnace?"), ("assistant", "Paris."),
        ("user", "And Italy?"), ("assistant", "Rome."),
    ]
    imported = files.from_json(files.to_json(chat, SYSTEM))
    back = imported.chat
    assert imported.system == SYSTEM and imported.notes == ()
    assert back.model == Q3
    assert texts(back) == texts(chat)
    versions, at = conv.versions_of(back, 0)
    assert at == 2
    assert [(v.question.content, v.answer.content, v.answer.model, v.answer.error,
             v.answer.stopped) for v in versions if v.answer] == [
        ("Capital of Frnace?", "Pa", MAX, "The Space is asleep", False),
        ("Capital of Frnace?", "Paris is", MAX, None, True),
        ("Capital of Frnace?", "Paris.", Q3, None, False),
        ("Capital of France?", "Paris, France.", Q3, None, False),
    ]
    assert back.messages[1].reasoning == "Easy one."
    assert conv.to_qwen_messages(back) == conv.to_qwen_messages(chat)
    # every version can still be chosen after the import
    edited = conv.choose(back, 0, 3)
    assert texts(edited)[:2] == [("user", "Capital of France?"),
                                 ("assistant", "Paris, France.")]
    failed_one = conv.choose(back, 0, 0).messages[1]
    assert (failed_one.content, failed_one.error) == ("Pa", "The Space is asleep")
    # and the imported chat exports the same again
    assert files.to_json(back, SYSTEM) == files.to_json(chat, SYSTEM)


def test_markdown_export_shows_the_chosen_answer_and_counts_the_others():
    chat = many_versions()
    text = files.to_markdown(chat, SYSTEM)
    assert "Capital of Frnace?" in text and "Paris." in text
    for hidden in ("Paris, France.", "Capital of France?", "Paris is", "Pa\n",
                   "The Space is asleep", "(stopped)"):
        assert hidden not in text
    assert text.count("_(version 3 of 4; the 3 other versions are in the JSON export)_") == 1
    # the note comes right after the shown answer of that turn, not after later turns
    assert text.index("Paris.") < text.index("_(version 3 of 4") < text.index("And Italy?")
    assert "Rome." in text and text.count("_(version") == 1

    two = files.to_markdown(answered(conv.regenerate(one_turn()), "Paris, on the Seine."))
    assert "_(version 2 of 2; the 1 other version is in the JSON export)_" in two
    assert "Paris, on the Seine." in two and "Paris.\n" not in two


def test_markdown_note_on_an_unanswered_edited_question():
    chat = conv.edit_last(one_turn("Capitl?"), "Capital of France?")
    text = files.to_markdown(chat)
    assert text.endswith("**You**\n\nCapital of France?\n\n"
                         "_(version 2 of 2; the 1 other version is in the JSON export)_\n")
    assert "Capitl?" not in text and "Paris." not in text


def test_plain_chat_exports_have_no_version_marks():
    chat = one_turn()
    assert "versions" not in files.to_json(chat) and "shown" not in files.to_json(chat)
    assert "_(version" not in files.to_markdown(chat)
    assert files.from_json(files.to_json(chat)).chat.messages[0].others == ()


def test_import_refuses_a_shown_position_out_of_range():
    doc = files.to_json(answered(conv.regenerate(one_turn()), "Paris, on the Seine."))
    bad = doc.replace('"shown": 1', '"shown": 5')
    assert bad != doc
    with pytest.raises(files.ChatFileError, match=r"message 1 shown: expected 0 to 1"):
        files.from_json(bad)


def test_user_role_is_kept_on_versions_after_import():
    back = files.from_json(files.to_json(many_versions())).chat
    versions, _ = conv.versions_of(back, 0)
    assert {v.question.role for v in versions} == {Role.USER}
    assert {v.answer.role for v in versions if v.answer} == {Role.ASSISTANT}
