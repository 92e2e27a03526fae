"""chat_state: the conversation's transitions, the streaming draft, the coalescer, export
and import — pure functions, no Streamlit and no network."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import qwen_core
from qwen_chat import conversation as cs
from qwen_chat import display as dp
from qwen_chat import draft as dr
from qwen_chat import files as cf
from qwen_core import events as ev

U, A = cs.Role.USER, cs.Role.ASSISTANT


def answered(*pairs: tuple[str, str], model: str = "qwen-2.5-max") -> cs.Chat:
    chat = cs.new_chat(model)
    for question, answer in pairs:
        chat, draft = cs.begin_answer(cs.add_user(chat, question))
        draft.apply(ev.TextDelta(answer))
        chat = cs.finish(chat, draft)
    return chat


# --- transitions --------------------------------------------------------------------------


def test_a_turn_goes_from_question_to_pending_to_stored_answer():
    chat = cs.new_chat("qwen-max")  # an alias: stored as the canonical id
    assert chat == cs.Chat(model="qwen-2.5-max")
    chat = cs.add_user(chat, "Hi")
    assert chat.pending and chat.messages == (cs.Message(U, "Hi"),)
    chat, draft = cs.begin_answer(chat)
    assert not chat.pending and draft.model == "qwen-2.5-max"
    draft.apply(ev.TextDelta("Hel"))
    draft.apply(ev.TextDelta("lo"))
    chat = cs.finish(chat, draft)
    assert chat.messages[-1] == cs.Message(A, "Hello", model="qwen-2.5-max")
    assert not chat.pending


def test_stop_and_fail_keep_the_partial_answer_with_their_mark():
    chat, draft = cs.begin_answer(cs.add_user(cs.new_chat(), "q"))
    draft.apply(ev.TextDelta("part"))
    assert cs.stop(chat, draft).messages[-1] == cs.Message(
        A, "part", model="qwen-2.5-max", stopped=True
    )
    error = qwen_core.GenerationError("the Space said no", space_id="Q/S", partial="part")
    failed = cs.fail(chat, draft, error).messages[-1]
    assert failed.content == "part" and failed.error == "[Q/S] the Space said no"
    assert not failed.stopped


def test_fail_uses_the_errors_partial_when_the_draft_saw_less():
    chat, draft = cs.begin_answer(cs.add_user(cs.new_chat(), "q"))
    error = qwen_core.SpaceUnavailable("stream cut", partial="seen by the client")
    assert cs.fail(chat, draft, error).messages[-1].content == "seen by the client"


def test_misuse_is_refused():
    with pytest.raises(cs.ChatError):
        cs.add_user(cs.new_chat(), "   ")
    with pytest.raises(cs.ChatError):
        cs.begin_answer(cs.new_chat())
    with pytest.raises(cs.ChatError):
        cs.add_user(cs.add_user(cs.new_chat(), "a"), "b")  # an answer is pending
    with pytest.raises(cs.ChatError):
        cs.regenerate(cs.new_chat())
    with pytest.raises(cs.ChatError):
        cs.edit_last(cs.new_chat(), "x")
    with pytest.raises(qwen_core.InvalidRequest, match="unknown model"):
        cs.switch_model(cs.new_chat(), "qwen-9000")


def test_regenerate_drops_only_the_last_answer_and_asks_again():
    chat = answered(("one", "1"), ("two", "2"))
    again = cs.regenerate(chat)
    assert again.pending and [m.content for m in again.messages] == ["one", "1", "two"]
    assert cs.retry is cs.regenerate
    assert cs.can_regenerate(chat) and not cs.can_regenerate(again)


def test_edit_last_replaces_the_last_question_and_its_answer():
    chat = answered(("one", "1"), ("two", "2"))
    assert cs.last_user_text(chat) == "two" and cs.last_user_index(chat) == 2
    edited = cs.edit_last(chat, "TWO")
    assert edited.pending
    assert [m.content for m in edited.messages] == ["one", "1", "TWO"]


def test_switching_models_keeps_history_and_each_answer_keeps_its_writer():
    chat = cs.switch_model(answered(("one", "1")), "qwen3-8b")
    chat, draft = cs.begin_answer(cs.add_user(chat, "two"))
    chat = cs.finish(chat, draft)
    assert [m.model for m in chat.messages if m.role is A] == ["qwen-2.5-max", "qwen3-8b"]
    assert chat.model == "qwen3-8b"


def test_qwen_messages_carry_system_and_what_the_person_saw():
    chat, draft = cs.begin_answer(cs.add_user(answered(("one", "1")), "two"))
    chat = cs.stop(chat, draft)  # an empty stopped answer is left out
    chat = cs.add_user(chat, "three")
    assert cs.to_qwen_messages(chat, "sys") == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "1"},
        {"role": "user", "content": "two"},
        {"role": "user", "content": "three"},
    ]
    assert cs.to_qwen_messages(chat)[0] == {"role": "user", "content": "one"}


def test_the_box_stores_only_over_the_chat_it_expects_and_settles_after_a_turn():
    import threading

    first = cs.new_chat()
    box = cs.ChatBox(first)
    second = cs.add_user(first, "q")
    assert box.swap(first, second) and box.chat is second
    assert not box.swap(first, cs.new_chat()) and box.chat is second  # moved on: kept
    assert box.settle(timeout=0.01)
    entered, leave = threading.Event(), threading.Event()

    def streaming() -> None:
        with box.turn():
            entered.set()
            leave.wait(5)

    worker = threading.Thread(target=streaming)
    worker.start()
    entered.wait(5)
    assert not box.settle(timeout=0.01)  # a turn is still streaming elsewhere
    leave.set()
    assert box.settle(timeout=5)
    worker.join()


# --- the draft ----------------------------------------------------------------------------


def test_draft_reports_what_each_event_changed():
    draft = dr.Draft("m")
    assert draft.apply(ev.QueueStatus(rank=2, queue_size=5, eta=12.0)) == dr.Change.QUEUE
    assert draft.queue.rank == 2
    assert draft.apply(ev.ProcessStarted()) == dr.Change.QUEUE and draft.started
    assert draft.apply(ev.Status("Qwen is thinking...")) == dr.Change.STATUS
    assert draft.apply(ev.Status("Qwen is thinking...")) == dr.Change.NONE  # no repeats
    assert draft.apply(ev.ReasoningDelta("hmm")) == dr.Change.REASONING
    assert draft.apply(ev.ReasoningReplaced("hmm, ok")) == dr.Change.REASONING
    assert draft.apply(ev.ReasoningDelta("!")) == dr.Change.REASONING
    assert (draft.reasoning, draft.reasoning_size) == ("hmm, ok!", 8)
    assert draft.apply(ev.TextDelta("Hello")) == dr.Change.TEXT and draft.delta == "Hello"
    # a rewrite that only extends the text is an append
    assert draft.apply(ev.TextReplaced("Hello world")) == dr.Change.TEXT
    assert draft.delta == " world"
    assert draft.apply(ev.TextReplaced("Goodbye")) == dr.Change.REWRITE
    assert draft.text == "Goodbye" and draft.size == 7
    change = draft.apply(ev.Done(text="Goodbye!", reasoning="final"))
    assert change == dr.Change.TEXT | dr.Change.REASONING | dr.Change.DONE
    assert (draft.text, draft.reasoning, draft.done) == ("Goodbye!", "final", True)
    assert draft.statuses == ["Qwen is thinking..."] and draft.status == "Qwen is thinking..."


@given(st.lists(st.text(max_size=5), max_size=40))
def test_draft_text_is_the_join_of_its_deltas(pieces):
    draft = dr.Draft("m")
    for piece in pieces:
        draft.apply(ev.TextDelta(piece))
        assert draft.size == len(draft.text)
    assert draft.text == "".join(pieces)


# --- the coalescer ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_coalesce_yields_at_most_every_interval_and_flushes_at_the_end():
    clock = FakeClock()

    def chunks():
        for i in range(10):  # a token every 10 ms
            yield f"t{i} "
            clock.now += 0.01

    out = list(dr.coalesce(chunks(), 0.05, clock=clock))
    assert "".join(out) == "".join(f"t{i} " for i in range(10))
    assert out[0] == "t0 "  # the first text goes at once
    assert len(out) == 3  # then about one batch per 50 ms, plus the final flush


def test_coalesce_ticks_flush_due_text_and_empty_chunks_are_dropped():
    clock = FakeClock()
    out: list[tuple[float, str]] = []

    def source():
        for at, text in [(0.0, "a"), (0.01, "b"), (0.03, ""), (0.06, ""), (0.07, "")]:
            clock.now = at
            yield text

    for text in dr.coalesce(source(), 0.05, clock=clock):
        out.append((clock.now, text))
    # "b" came 10 ms after "a" went out: it waits for the first tick 50 ms later
    assert out == [(0.0, "a"), (0.06, "b")]


def test_coalescer_interval_grows_with_long_answers():
    clock = FakeClock()
    batcher = dr.Coalescer(0.05, clock=clock, chars_per_second=1000)
    batcher.add("x" * 500)
    assert batcher.due()
    batcher.take()
    batcher.add("y")
    clock.now = 0.1
    assert not batcher.due()  # 500 chars sent: wait 0.5 s, not 0.05 s
    clock.now = 0.5
    assert batcher.due()


@given(st.lists(st.tuples(st.text(max_size=4), st.floats(0, 0.2)), max_size=50))
def test_coalesce_never_loses_or_reorders_text(steps):
    clock = FakeClock()

    def chunks():
        for text, pause in steps:
            clock.now += pause
            yield text

    out = list(dr.coalesce(chunks(), 0.05, clock=clock))
    assert "".join(out) == "".join(text for text, _ in steps)
    assert all(out)


# --- export and import --------------------------------------------------------------------


def _rich_chat() -> cs.Chat:
    chat = answered(("What is 2+2?", "4"))
    chat = cs.switch_model(chat, "qwen3-8b")
    chat, draft = cs.begin_answer(cs.add_user(chat, "Think about it"))
    draft.apply(ev.ReasoningDelta("Let me think"))
    draft.apply(ev.TextDelta("Still 4"))
    chat = cs.stop(chat, draft)
    chat, draft = cs.begin_answer(cs.add_user(chat, "again"))
    return cs.fail(chat, draft, qwen_core.RateLimited("slow down", space_id="Qwen/Qwen3-Demo"))


def test_json_round_trip_keeps_everything():
    chat = _rich_chat()
    back = cf.from_json(cf.to_json(chat, "Be brief."))
    assert back.chat == chat and back.system == "Be brief." and back.notes == ()
    assert cf.from_json(cf.to_json(chat).encode()).system is None


def test_markdown_export_reads_like_the_conversation():
    text = cf.to_markdown(_rich_chat(), "Be brief.")
    assert text.startswith("# Qwen Spaces Chat")
    assert "- System prompt: Be brief." in text
    assert "**You**\n\nWhat is 2+2?" in text
    assert "**Qwen2.5-Max** (`qwen-2.5-max`)\n\n4" in text
    assert "<summary>Thinking</summary>\n\nLet me think" in text
    assert "Still 4\n\n_(stopped)_" in text
    assert "> **Error:** [Qwen/Qwen3-Demo] slow down" in text


def test_import_reads_plain_openai_messages():
    data = json.dumps([
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ])
    got = cf.from_json(data)
    assert got.system == "sys" and got.chat.model == cs.DEFAULT_MODEL
    assert got.chat.messages == (cs.Message(U, "hi"), cs.Message(A, "hello"))


def test_import_of_an_unknown_model_falls_back_with_a_note():
    data = json.dumps({"format": cf.FORMAT, "model": "qwen-9000", "messages": []})
    got = cf.from_json(data)
    assert got.chat.model == cs.DEFAULT_MODEL
    assert "qwen-9000" in got.notes[0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe\x00", "not a UTF-8 text file"),
        ("{nope", "not valid JSON: Expecting property name"),
        ("42", "expected a JSON object or list, got int"),
        ('{"format": "other"}', "not a qwen-spaces-chat file"),
        ('{"version": 99, "messages": []}', "newer than this app reads"),
        ("{}", "no 'messages' list"),
        ('{"messages": {}}', "messages: expected a list, got dict"),
        ('{"messages": ["hi"]}', "message 1: expected an object"),
        ('{"messages": [{"role": "bot", "content": "x"}]}', "message 1: role must be"),
        ('{"messages": [{"role": "user", "content": 5}]}', "message 1 content: expected text"),
        ('[{"role": "assistant", "content": "x", "stopped": "yes"}]', "message 1 stopped"),
        ('{"model": 3, "messages": []}', "model: expected a model id"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(data, message):
    with pytest.raises(cf.ChatFileError, match=message.replace("(", r"\(")):
        cf.from_json(data)


def test_oversized_files_are_refused():
    with pytest.raises(cf.ChatFileError, match="too large"):
        cf.from_json(b" " * (cf.MAX_IMPORT_BYTES + 1))


# --- display helpers ----------------------------------------------------------------------


def test_queue_line_says_position_and_eta():
    assert dp.queue_line(None) == "Connecting to the Space…"
    assert dp.queue_line(ev.QueueStatus(rank=1, queue_size=4, eta=12.4)) == (
        "Waiting in the Space's queue · position 2 of 4 · about 12 s"
    )
    assert dp.queue_line(ev.QueueStatus(rank=None, queue_size=None, eta=None)) == (
        "Waiting in the Space's queue"
    )
    assert dp.queue_line(None, started=True) == "The Space is working on it…"


def test_model_caption_and_capabilities():
    stopped = cs.Message(A, "x", model="qwen3-8b", stopped=True)
    assert dp.model_caption(stopped).startswith(f"{qwen_core.MODELS['qwen3-8b'].label} · qwen3-8b")
    assert "stopped" in dp.model_caption(stopped)
    assert "failed" in dp.model_caption(cs.Message(A, "", model="zzz", error="boom"))
    assert dp.capabilities(qwen_core.MODELS["qwen3-8b"]) == (
        "System prompt ✓ · History in the prompt · Reasoning ✓"
    )
    assert dp.capabilities(qwen_core.MODELS["qwen-2.5-1m"]).startswith("System prompt ✗")


@pytest.mark.parametrize(
    ("stage", "state"),
    [("RUNNING", "running"), ("SLEEPING", "sleeping"), ("PAUSED", "sleeping"),
     ("BUILDING", "building"), ("APP_STARTING", "building"), ("RUNTIME_ERROR", "error"),
     ("WHATEVER", "unknown"), (None, "unknown")],
)
def test_space_state_from_the_hubs_runtime_stage(stage, state):
    assert dp.space_state(stage) == state


def test_override_state_tells_local_from_custom():
    assert dp.override_state("http://127.0.0.1:7860") == "local"
    assert dp.override_state("http://localhost:7860/") == "local"
    assert dp.override_state("http://[::1]:7860") == "local"
    assert dp.override_state("https://me-qwen.hf.space") == "custom URL"


def test_latex_delimiters_become_streamlit_math_outside_code():
    text = (
        "Area \\(\\pi r^2\\) and\n\\[E = mc^2\\]\n"
        "`keep \\(this\\)`\n```\ncode \\(stays\\)\n```\nafter \\(x\\)"
    )
    assert dp.display_markdown(text) == (
        "Area $\\pi r^2$ and\n$$E = mc^2$$\n"
        "`keep \\(this\\)`\n```\ncode \\(stays\\)\n```\nafter $x$"
    )
    assert dp.display_markdown("plain $x$") == "plain $x$"
