"""The sans-IO queue protocol: queue messages in, typed events out."""

import pytest

from qwen_core.errors import GenerationError, SpaceAPIChanged, SpaceUnavailable
from qwen_core.events import (
    Done,
    ProcessStarted,
    QueueStatus,
    ReasoningDelta,
    Status,
    TextDelta,
    TextReplaced,
)
from qwen_core.protocol import TurnDecoder
from qwen_core.spaces.base import Payload
from qwen_core.spaces.chatbot import modelscope_message
from qwen_core.spaces.qwen3 import Qwen3
from qwen_core.spaces.qwen25_1m import Qwen25_1M
from qwen_core.spaces.qwen25_max import Qwen25Max

EID = "ev1"


def gen(data, eid=EID):
    return {"msg": "process_generating", "event_id": eid, "output": {"data": data},
            "success": True}


def done(data, eid=EID):
    return {"msg": "process_completed", "event_id": eid, "output": {"data": data},
            "success": True}


def max_decoder(history_pairs=0, protocol="sse_v3"):
    return TurnDecoder(Qwen25Max, Payload(data=[], answer_index=history_pairs),
                       protocol=protocol, event_id=EID)


def texts(events):
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def feed_all(decoder, messages):
    out = []
    for m in messages:
        out.extend(decoder.feed(m))
    return out


def test_diff_stream_yields_each_append_including_repeated_tokens():
    d = max_decoder(history_pairs=1)
    history = [["earlier", "answer"]]
    events = feed_all(d, [
        {"msg": "estimation", "event_id": EID, "rank": 2, "queue_size": 3, "rank_eta": 4.5},
        {"msg": "process_starts", "event_id": EID, "eta": 1.0},
        gen(["", [*history, ["q", ""]], "sys"]),
        *[gen([[], [["append", [1, 1], "ha"]], []]) for _ in range(3)],
        gen([[], [["append", [1, 1], " 👍🏽 你好"]], []]),
        done(["", [*history, ["q", "hahaha 👍🏽 你好"]], "sys"]),
    ])
    assert events[0] == QueueStatus(rank=2, queue_size=3, eta=4.5)
    assert events[1] == ProcessStarted(eta=1.0)
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == ["ha", "ha", "ha", " 👍🏽 你好"]
    assert events[-1] == Done(text="hahaha 👍🏽 你好", reasoning="")
    assert d.finished


def test_previous_turns_answer_is_never_reported_as_this_turns_text():
    d = max_decoder(history_pairs=1)
    events = d.feed(gen(["", [["old q", "old answer"]], "sys"]))  # new pair not there yet
    assert events == []
    events = d.feed(gen([[], [["add", [1], ["q", "new"]]], []]))
    assert texts(events) == "new"


def test_sse_v1_full_outputs_every_update():
    d = max_decoder(protocol="sse_v1")
    events = feed_all(d, [
        gen(["", [["q", "He"]], "s"]),
        gen(["", [["q", "Hello"]], "s"]),
        done(["", [["q", "Hello!"]], "s"]),
    ])
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["He", "llo", "!"]
    assert events[-1] == Done("Hello!")


def test_rewritten_answer_is_reported_as_replaced():
    d = max_decoder()
    events = feed_all(d, [
        gen(["", [["q", "draft"]], "s"]),
        gen([[], [["replace", [0, 1], "final text"]], []]),
    ])
    assert events[-1] == TextReplaced("final text")
    assert d.answer == "final text"


def test_completed_data_that_differs_from_stream_replaces_it():
    d = max_decoder()
    events = feed_all(d, [gen(["", [["q", "abc"]], "s"]), done(["", [["q", "xyz"]], "s"])])
    assert TextReplaced("xyz") in events and events[-1] == Done("xyz")


def test_foreign_event_ids_and_heartbeats_are_ignored():
    d = max_decoder()
    events = feed_all(d, [
        {"msg": "heartbeat"},
        gen(["", [["q", "mine"]], "s"]),
        gen(["", [["other", "NOT MINE"]], "s"], eid="someone-else"),
        gen([[], [["append", [0, 1], " ok"]], []], eid="someone-else"),
        {"msg": "heartbeat", "event_id": None},
        gen([[], [["append", [0, 1], "!"]], []]),
        done(["", [["q", "mine!"]], "s"]),
    ])
    assert texts(events) == "mine!"


def test_error_completion_carries_space_message_and_partial_text():
    d = max_decoder()
    d.feed(gen(["", [["q", "partial "]], "s"]))
    with pytest.raises(GenerationError) as info:
        d.feed({"msg": "process_completed", "event_id": EID, "success": False,
                "output": {"error": "Quota exceeded", "title": "Error"}})
    assert info.value.space_message == "Quota exceeded"
    assert info.value.partial == "partial "
    assert "Quota exceeded" in str(info.value) and "Qwen/Qwen2.5-Max-Demo" in str(info.value)


def test_error_without_details_says_the_space_hides_them():
    d = max_decoder()
    with pytest.raises(GenerationError, match="without details"):
        d.feed({"msg": "process_completed", "event_id": EID, "success": False,
                "output": {"error": None}})


def test_unexpected_error_message_is_a_generation_error():
    with pytest.raises(GenerationError, match="boom"):
        max_decoder().feed({"msg": "unexpected_error", "event_id": EID, "message": "boom"})


def test_close_stream_before_completion_is_unavailable_with_partial():
    d = max_decoder()
    d.feed(gen(["", [["q", "half"]], "s"]))
    with pytest.raises(SpaceUnavailable) as info:
        d.feed({"msg": "close_stream"})
    assert info.value.partial == "half"


def test_messages_without_msg_or_with_bad_output_are_api_changes():
    d = max_decoder()
    with pytest.raises(SpaceAPIChanged):
        d.feed({"no": "msg"})
    with pytest.raises(SpaceAPIChanged):
        d.feed({"msg": "process_generating", "event_id": EID, "output": "zzz"})
    d.feed(gen(["", [["q", "x"]], "s"]))
    with pytest.raises(SpaceAPIChanged):
        d.feed(gen([[], [["teleport", [0, 1], "x"]], []]))


def test_log_messages_become_status_events():
    events = max_decoder().feed(
        {"msg": "log", "event_id": EID, "log": "GPU busy", "level": "warning"}
    )
    assert events == [Status("GPU busy", "warning")]


def test_fast_path_does_not_copy_the_answer_per_update():
    d = max_decoder()
    d.feed(gen(["", [["q", ""]], "s"]))
    for _ in range(1000):
        d.feed(gen([[], [["append", [0, 1], "tok "]], []]))
    # the appended pieces wait aside; the tree's leaf was never rebuilt
    assert d._outputs[1][0][1] == ""
    assert len(d._pending[(1, 0, 1)]) == 1000
    assert d.feed(done(["", [["q", "tok " * 1000]], "s"]))[-1] == Done("tok " * 1000)


def test_structural_update_after_fast_appends_keeps_text_exact():
    d = max_decoder()
    events = feed_all(d, [
        gen(["", [["q", "a"]], "s"]),
        gen([[], [["append", [0, 1], "b"]], []]),
        gen([[["replace", [], "x"]], [["append", [0, 1], "c"]], []]),  # structural edit too
        gen([[], [["append", [0, 1], "d"]], []]),
    ])
    assert texts(events) == "abcd"


# -- Qwen2.5-1M: placeholder and <summary> tail ------------------------------------------

def one_m_decoder():
    return TurnDecoder(Qwen25_1M, Payload(data=[], answer_index=0), event_id=EID)


def test_1m_placeholder_is_status_and_summary_tail_is_reasoning():
    d = one_m_decoder()
    user = modelscope_message("q")
    events = feed_all(d, [
        gen([[[user, [modelscope_message("Qwen is thinking...")]]], None, 0]),
        gen([[["replace", [0, 1, 0, "text"], "The answer"]], [], []]),
        gen([[["append", [0, 1, 0, "text"], " is 42.\n<sum"]], [], []]),
        gen([[["append", [0, 1, 0, "text"], "mary>Read 1 file</summary>"]], [], []]),
        done([[[user, [modelscope_message("The answer is 42.\n<summary>Read 1 file</summary>")]]],
              None, 0]),
    ])
    assert events[0] == Status("Qwen is thinking...")
    assert texts(events) == "The answer is 42."
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == (
        "\n<summary>Read 1 file</summary>"
    )
    assert Status("") in events  # placeholder cleared
    assert events[-1] == Done("The answer is 42.", "\n<summary>Read 1 file</summary>")


def test_1m_text_resembling_marker_start_is_released_at_the_end():
    d = one_m_decoder()
    user = modelscope_message("q")
    events = feed_all(d, [
        gen([[[user, [modelscope_message("")]]], None, 0]),
        gen([[["append", [0, 1, 0, "text"], "ends with\n<su"]], [], []]),
    ])
    assert texts(events) == "ends with"  # held back: might be the marker
    events = d.feed(done([[[user, [modelscope_message("ends with\n<su")]]], None, 0]))
    assert events[-1] == Done("ends with\n<su")


# -- Qwen3: thinking in tool items ------------------------------------------------------

def test_qwen3_thinking_is_reasoning_and_text_item_is_answer():
    d = TurnDecoder(Qwen3, Payload(data=[]), event_id=EID)
    user = {"role": "user", "content": "q"}
    thinking = {"type": "tool", "content": "",
                "options": {"title": "Thinking...", "status": "pending"}}
    bot = {"role": "assistant", "content": [thinking], "status": "pending"}
    events = feed_all(d, [
        gen([None, None, None, None, None, [user, bot]]),
        gen([[], [], [], [], [], [["append", [1, "content", 0, "content"], "Let me think"]]]),
        gen([[], [], [], [], [], [
            ["replace", [1, "content", 0, "options", "status"], "done"],
            ["replace", [1, "content", 0, "options", "title"], "Thinking completed"],
            ["add", [1, "content", 1], {"type": "text", "content": "Answer"}],
        ]]),
        gen([[], [], [], [], [], [["append", [1, "content", 1, "content"], " here"]]]),
    ])
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "Let me think"
    assert texts(events) == "Answer here"
    assert Status("Thinking...") in events and Status("") in events
