"""When a streaming run may leave the history the browser shows as it is
(``qwen_chat.history``): only when what is on the page is exactly what that run would
draw, so a question sent after 100 turns does not wait for them to be sent again."""

from __future__ import annotations

from dataclasses import replace

from qwen_chat import conversation as cs
from qwen_chat.conversation import Chat, Message, Role
from qwen_chat.history import can_keep, drawn

PATH = (0, 3)


def answered(*turns: str) -> Chat:
    messages: list[Message] = []
    for turn in turns:
        messages += [Message(Role.USER, turn), Message(Role.ASSISTANT, f"answer to {turn}")]
    return Chat(messages=tuple(messages), id="c1")


def test_a_question_just_asked_keeps_the_history_drawn_before():
    chat = answered("one", "two")
    before = drawn(chat, PATH, plain=True)
    asked = cs.add_user(chat, "three")
    assert asked.pending and can_keep(asked, before, PATH)


def test_nothing_is_kept_when_the_page_differs_from_what_the_run_would_draw():
    chat = answered("one", "two")
    before = drawn(chat, PATH, plain=True)
    asked = cs.add_user(chat, "three")
    assert not can_keep(asked, before, (0, 4))  # the container moved (a notice above it)
    assert not can_keep(asked, None, PATH)  # a new session: nothing drawn yet
    regenerated = cs.regenerate(chat)  # the old answer would stay on screen
    assert not can_keep(regenerated, before, PATH)
    other = cs.add_user(answered("one", "changed"), "three")  # another chat, same length
    assert not can_keep(other, before, PATH)
    assert not can_keep(replace(asked, asking="qwen3-235b-a22b"), before, PATH)
    assert not can_keep(chat, before, PATH)  # nothing streams


def test_a_history_with_controls_for_its_last_message_is_never_kept():
    chat = answered("one")
    assert drawn(chat, PATH, plain=False) is None  # an editor or a comparison's choice
    failed = replace(chat, messages=(*chat.messages[:-1],
                                     replace(chat.messages[-1], error="down")))
    assert drawn(failed, PATH, plain=True) is None  # "Ask another model instead"
    assert drawn(cs.add_user(chat, "two"), PATH, plain=True) is None  # unanswered
    assert drawn(Chat(), PATH, plain=True) is None
