"""Every way a Space can misbehave, through the public API against the fault-injecting fake.

The contract: each turn either succeeds with the exact text (where the fault is
recoverable) or raises one :class:`qwen_core.SpaceError` subclass with a readable message
and the partial answer, within the timeout plus a small margin; nothing else escapes, and
the HTTP connections are closed afterwards (the fake's open-connection count drops to 0).

Timing is checked without tight wall-clock bounds, so a slow machine stays green: waits
the client chose are read from the transport's own ``sleep`` calls, upper bounds leave
``SLACK`` seconds (far below what the bug each one guards against would take: a default
60 s read timeout, a 30 s stream drained, a hang), and the fake's state is polled with a
generous deadline.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest

import qwen_core
from qwen_core import (
    GenerationError,
    QueueFull,
    RateLimited,
    SpaceAPIChanged,
    SpaceError,
    SpaceUnavailable,
    transport,
)
from qwen_core.events import Done, TextDelta

from .conftest import MODEL, ask, socket_fds
from .fake_space import (
    BYTEWISE_TOKENS,
    ERROR_MESSAGE,
    UNEXPECTED_MESSAGE,
    FakeSpace,
    answer_for,
    free_port,
    tokenize,
)


def first_tokens(question: str, k: int) -> str:
    """What the fake streams for ``question`` before its fault strikes after k tokens."""
    return "".join(tokenize(answer_for(question))[:k])


SLACK = 10.0  # seconds a slow machine may add above an expected duration
WAIT = 30.0  # deadline when polling the fake's state


def closed(space: FakeSpace) -> bool:
    return space.wait_idle(timeout=WAIT)


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The seconds the sync transport chose to wait (its ``time.sleep`` calls, which still
    really sleep): what the client decided, whatever the machine's speed."""
    calls: list[float] = []

    class Clock:
        def __getattr__(self, name: str) -> object:
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            calls.append(seconds)
            time.sleep(seconds)

    monkeypatch.setattr(transport, "time", Clock())
    return calls


# -- baseline -----------------------------------------------------------------------------


def test_plain_question_streams_the_exact_echo(space):
    out = ask(space.base_url, "hello there")
    assert out.error is None
    assert out.text == answer_for("hello there")
    assert len(out.deltas) == len(tokenize(answer_for("hello there")))
    assert space.cancels == []  # finished normally: nothing to cancel
    assert closed(space)


# -- before the stream: connect, config, join ----------------------------------------------


def test_connection_refused_is_space_unavailable():
    port = free_port()
    out = ask(f"http://127.0.0.1:{port}", "hi", timeout=(3 * SLACK, 3 * SLACK))
    err = out.expect(SpaceUnavailable)
    assert "cannot connect" in err.message and str(port) in err.message
    assert err.partial == "" and out.deltas == []
    assert out.elapsed < SLACK  # at once: no connect (or read) timeout was waited out


def test_join_503_queue_full_is_queue_full(space):
    out = ask(space.base_url, "fault:join503 hi")
    err = out.expect(QueueFull)
    assert err.space_message == "Queue is full."
    assert "queue is full" in err.message.lower() and "try again" in err.message
    assert space.seen("/queue/data") == []  # no stream was opened
    assert closed(space)


def test_join_429_with_retry_after_then_success_waits_and_answers(space, slept):
    out = ask(space.base_url, "fault:429:1:1 hi", waits=1 + SLACK)
    assert out.error is None
    assert out.text == answer_for("fault:429:1:1 hi")
    assert len(space.seen("/queue/join")) == 2
    assert slept == [1.0]  # honoured Retry-After: 1, once, and nothing more
    assert out.elapsed >= 1.0
    assert closed(space)


def test_join_429_forever_is_rate_limited_with_retry_after(space, slept):
    out = ask(space.base_url, "fault:429:999:1 hi", waits=2 + SLACK)
    err = out.expect(RateLimited)
    assert err.retry_after == 1.0
    assert "rate limiting" in err.message and "1 s" in err.message
    assert len(space.seen("/queue/join")) == 3  # the first try and two retries
    assert slept == [1.0, 1.0]  # waited before each retry, not after the last refusal
    assert out.elapsed >= 2.0
    assert closed(space)


def test_join_429_with_long_retry_after_is_reported_without_waiting(space, slept):
    out = ask(space.base_url, "fault:429:999:120 hi")
    err = out.expect(RateLimited)
    assert err.retry_after == 120.0 and "120 s" in err.message
    assert len(space.seen("/queue/join")) == 1
    assert slept == []


@pytest.mark.parametrize("mode", ["html", "html503"])
def test_sleeping_space_web_page_instead_of_config_is_space_unavailable(space, mode):
    space.config_mode = mode
    out = ask(space.base_url, "hi")
    err = out.expect(SpaceUnavailable)
    assert "asleep" in err.message
    assert space.seen("/queue/join") == []
    assert closed(space)


def test_web_page_instead_of_join_answer_is_space_unavailable(space):
    out = ask(space.base_url, "fault:joinhtml hi")
    err = out.expect(SpaceUnavailable)
    assert "web page" in err.message and "asleep" in err.message
    assert closed(space)


def test_web_page_instead_of_event_stream_is_space_unavailable(space):
    out = ask(space.base_url, "fault:streamhtml hi")
    err = out.expect(SpaceUnavailable)
    assert "text/html" in err.message
    assert closed(space)


def test_config_404_falls_back_to_the_adapters_known_values(space):
    space.config_mode = "missing"
    out = ask(space.base_url, "hi")
    assert out.error is None and out.text == answer_for("hi")
    (join,) = space.seen("/queue/join")
    assert join.path == "/gradio_api/queue/join" and join.json()["fn_index"] == 0
    assert closed(space)


def test_chat_event_moved_to_another_id_is_found_by_its_api_name(space):
    space.config_mode = "moved"
    out = ask(space.base_url, "hi")
    assert out.error is None and out.text == answer_for("hi")
    assert [job.fn_index for job in space.joins] == [5]


def test_chat_event_missing_from_config_is_space_api_changed_naming_it(space):
    space.config_mode = "nofn"
    out = ask(space.base_url, "hi")
    err = out.expect(SpaceAPIChanged)
    assert "no event 0" in err.message and "'model_chat'" in err.message
    assert space.seen("/queue/join") == []
    assert closed(space)


@pytest.mark.parametrize("mode", ["gradio3", "gradio3_noproto"])
def test_gradio_3_space_is_space_api_changed_saying_it_is_unsupported(space, mode):
    space.config_mode = mode
    out = ask(space.base_url, "hi")
    err = out.expect(SpaceAPIChanged)
    assert "Gradio 3." in err.message and "not support" in err.message
    assert space.seen("/queue/join") == []


# -- during the stream ----------------------------------------------------------------------


def test_stream_cut_mid_answer_delivers_the_deltas_then_space_unavailable(space):
    question = "fault:cut:4 tell me"
    out = ask(space.base_url, question)
    err = out.expect(SpaceUnavailable)
    assert out.text == first_tokens(question, 4) != ""
    assert err.partial == out.text
    assert "cut" in err.message
    assert closed(space)


def test_stream_ending_without_the_result_is_space_unavailable_with_partial(space):
    question = "fault:eof:3 tell me"
    out = ask(space.base_url, question)
    err = out.expect(SpaceUnavailable)
    assert out.text == err.partial == first_tokens(question, 3)
    assert "closed the stream" in err.message
    assert closed(space)


def test_malformed_sse_line_is_space_api_changed_with_partial(space):
    question = "fault:malformed:3 tell me"
    out = ask(space.base_url, question)
    err = out.expect(SpaceAPIChanged)
    assert "malformed" in err.message
    assert out.text == err.partial == first_tokens(question, 3)
    assert closed(space)


def test_silence_longer_than_read_timeout_is_space_unavailable_in_time(space):
    question = "fault:silence:2 tell me"  # the fake then sends nothing, ever
    out = ask(space.base_url, question, timeout=(2, 1.0), waits=SLACK)
    err = out.expect(SpaceUnavailable)
    assert "sent nothing for 1 s" in err.message
    assert out.text == err.partial == first_tokens(question, 2)
    assert 1.0 <= out.elapsed < 1.0 + SLACK  # the 1 s read timeout, not the 60 s default
    # the job is still running on the Space: it must be cancelled
    (join,) = space.joins
    assert space.cancels == [
        {"session_hash": join.session_hash, "fn_index": 0, "event_id": join.event_id}
    ]
    assert closed(space)


def test_heartbeats_only_for_longer_than_read_timeout_then_the_answer_succeeds(space):
    question = "fault:heartbeats:6:300 hi"  # 1.8 s of heartbeats, read timeout 1 s
    out = ask(space.base_url, question, timeout=(2, 1.0), waits=SLACK)
    assert out.error is None, out.error
    assert out.text == answer_for(question)
    assert 1.8 <= out.elapsed < 1.8 + SLACK


def test_success_false_is_generation_error_with_the_spaces_message_and_partial(space):
    question = "fault:fail:3 tell me"
    out = ask(space.base_url, question)
    err = out.expect(GenerationError)
    assert err.space_message == ERROR_MESSAGE
    assert ERROR_MESSAGE in err.message
    assert out.text == err.partial == first_tokens(question, 3)
    assert space.cancels == []  # the Space already ended the job
    assert closed(space)


def test_unexpected_error_for_the_event_is_generation_error(space):
    question = "fault:unexpected:2 tell me"
    out = ask(space.base_url, question)
    err = out.expect(GenerationError)
    assert err.space_message == UNEXPECTED_MESSAGE and UNEXPECTED_MESSAGE in err.message
    assert err.partial == first_tokens(question, 2)
    assert closed(space)


def test_session_level_unexpected_error_is_space_unavailable_with_its_message(space):
    # Gradio sends these without an event id ("Session not found.") and ends the stream
    out = ask(space.base_url, "fault:lost hi")
    err = out.expect(SpaceUnavailable)
    assert err.space_message == "Session not found."
    assert "Session not found." in err.message and "try again" in err.message
    assert closed(space)


def test_messages_for_other_event_ids_are_ignored(space):
    question = "fault:interleave hi"
    out = ask(space.base_url, question)
    assert out.error is None, out.error
    assert out.text == answer_for(question)
    assert "OTHER" not in out.text and "X" not in out.text


def test_one_five_megabyte_update_arrives_exactly(space):
    size = 5 * 1024 * 1024
    out = ask(space.base_url, f"fault:big:{size}", timeout=(2, 10))
    assert out.error is None, out.error
    assert len(out.text) == size
    assert out.text == ("0123456789abcdef" * (size // 16 + 1))[:size]
    assert len(out.deltas) == 1


def test_unknown_diff_operation_is_space_api_changed(space):
    question = "fault:badop:2 hi"
    out = ask(space.base_url, question)
    err = out.expect(SpaceAPIChanged)
    assert "cannot apply" in err.message and "frobnicate" in err.message
    assert err.partial == out.text == first_tokens(question, 2)
    assert closed(space)


def test_server_sending_one_byte_at_a_time_gives_the_exact_text(space):
    out = ask(space.base_url, "fault:bytewise", timeout=(2, 5))
    assert out.error is None, out.error
    assert out.text == "".join(BYTEWISE_TOKENS)  # multi-byte UTF-8 split across reads
    assert out.deltas == list(BYTEWISE_TOKENS)


def test_stream_events_done_carries_the_full_answer(space):
    events = list(qwen_core.stream_events(MODEL, [{"role": "user", "content": "hi"}],
                                          base_url=space.base_url, timeout=2))
    assert isinstance(events[-1], Done) and events[-1].text == answer_for("hi")
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == answer_for("hi")


# -- the async transport: same outcomes --------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "kind", "k"),
    [
        ("fault:cut:4 x", SpaceUnavailable, 4),
        ("fault:silence:2 x", SpaceUnavailable, 2),
        ("fault:fail:3 x", GenerationError, 3),
        ("fault:join503 x", QueueFull, 0),
        ("fault:malformed:1 x", SpaceAPIChanged, 1),
        ("fault:lost x", SpaceUnavailable, 0),
    ],
)
def test_async_transport_maps_faults_the_same_way(space, question, kind, k):
    got: list[str] = []

    async def main() -> None:
        async for delta in qwen_core.astream_chat(
            MODEL, [{"role": "user", "content": question}], base_url=space.base_url,
            timeout=(2, 1.0),
        ):
            got.append(delta)

    start = time.perf_counter()
    with pytest.raises(kind) as info:
        asyncio.run(main())
    assert time.perf_counter() - start < 1.0 + SLACK  # at most the 1 s read timeout
    assert "".join(got) == info.value.partial == first_tokens(question, k)
    assert closed(space)


# -- early close and leaks -----------------------------------------------------------------


def _cancel_of(space: FakeSpace, question: str) -> dict[str, object]:
    (job,) = [j for j in space.joins if j.query == question]
    return {"session_hash": job.session_hash, "fn_index": 0, "event_id": job.event_id}


def test_close_after_two_deltas_posts_cancel_with_the_jobs_ids(space):
    question = "fault:slow:1500:20 x"  # 30 s of tokens if the close waited for them
    stream = qwen_core.stream_chat(MODEL, [{"role": "user", "content": question}],
                                   base_url=space.base_url, timeout=2)
    assert [next(stream), next(stream)] == ["s0 ", "s1 "]
    start = time.perf_counter()
    stream.close()
    assert time.perf_counter() - start < SLACK  # hung up, did not drain the stream
    assert space.cancels == [_cancel_of(space, question)]
    with pytest.raises(StopIteration):
        next(stream)
    assert closed(space)


def test_break_out_of_the_loop_posts_cancel(space):
    question = "fault:slow:50:20 y"
    for delta in qwen_core.stream_chat(MODEL, [{"role": "user", "content": question}],
                                       base_url=space.base_url, timeout=2):
        assert delta == "s0 "
        break
    assert space.cancels == [_cancel_of(space, question)]
    assert closed(space)


def test_leaving_a_stream_events_with_block_posts_cancel(space):
    question = "fault:slow:50:20 z"
    with qwen_core.stream_events(MODEL, [{"role": "user", "content": question}],
                                 base_url=space.base_url, timeout=2) as events:
        for event in events:
            if isinstance(event, TextDelta):
                break
    assert space.cancels == [_cancel_of(space, question)]
    assert closed(space)


def test_closing_before_iterating_sends_nothing(space):
    stream = qwen_core.stream_chat(MODEL, [{"role": "user", "content": "hi"}],
                                   base_url=space.base_url)
    stream.close()
    assert space.requests == []


def test_two_hundred_streams_leave_no_open_socket_or_thread(space):
    """Finished, closed, abandoned, erroring and timing-out streams: afterwards the
    process holds exactly the sockets and threads it held before."""
    ask(space.base_url, "warm up")  # first-use costs (imports, SSL contexts) before counting
    assert closed(space)
    gc.collect()  # earlier tests' garbage must not close sockets while we count
    sockets_before = socket_fds()
    threads_before = {t.ident for t in threading.enumerate()}
    early: list[str] = []
    kinds = ["done", "close", "break", "fail", "cut", "malformed", "events", "refused"]
    refused_url = f"http://127.0.0.1:{free_port()}"
    for i in range(200):
        kind = kinds[i % len(kinds)]
        msgs = [{"role": "user", "content": f"fault:slow:30:5 n{i}"}]
        if kind == "done":
            out = ask(space.base_url, f"plain n{i}")
            assert out.error is None and out.text == answer_for(f"plain n{i}")
        elif kind == "close":
            stream = qwen_core.stream_chat(MODEL, msgs, base_url=space.base_url, timeout=2)
            next(stream)
            stream.close()
            early.append(msgs[0]["content"])
        elif kind == "break":
            for _ in qwen_core.stream_chat(MODEL, msgs, base_url=space.base_url, timeout=2):
                break
            early.append(msgs[0]["content"])
        elif kind == "events":
            with qwen_core.stream_events(MODEL, msgs, base_url=space.base_url,
                                         timeout=2) as events:
                next(e for e in events if isinstance(e, TextDelta))
            early.append(msgs[0]["content"])
        elif kind == "refused":
            ask(refused_url, "x").expect(SpaceUnavailable)
        else:
            question = {"fail": "fault:fail:2", "cut": "fault:cut:2",
                        "malformed": "fault:malformed:2"}[kind] + f" n{i}"
            ask(space.base_url, question).expect(SpaceError)
    assert closed(space), f"{space.connections_open} connections still open"
    assert socket_fds() == sockets_before
    assert {t.ident for t in threading.enumerate()} == threads_before
    cancelled = {c["event_id"] for c in space.cancels}
    assert {_cancel_of(space, q)["event_id"] for q in early} <= cancelled
    assert len(early) == 75
