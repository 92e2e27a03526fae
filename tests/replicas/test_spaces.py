"""qwen_core against the replica Spaces: real Gradio servers reproducing each Space's
event layout at the Gradio version it runs. The client runs unmodified but for base_url."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import threading

import pytest

import qwen_core
from qwen_core.events import (
    Done,
    ProcessStarted,
    QueueStatus,
    ReasoningDelta,
    TextDelta,
    TextReplaced,
)
from tests.replicas import script

pytestmark = pytest.mark.replica

# replica name -> a model id served by it
SPACES = {
    "max_g5": "qwen-2.5-max",
    "max_g6": "qwen-2.5-max",
    "qwen25_g4": "qwen-2.5-7b",
    "qwen2_72b_g4": "qwen-2-72b",
    "1m_g4": "qwen-2.5-1m",
    "qwen3_g5": "qwen3-32b",
}
HISTORY = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi there"}]


@pytest.fixture(params=list(SPACES), scope="module")
def space(request, replica_pool):
    """(replica, model) for each Space in turn."""
    return replica_pool.get(request.param), qwen_core.resolve_model(SPACES[request.param])


def user(text):
    return [{"role": "user", "content": text}]


def collect(model, messages, replica, **kw):
    events = list(qwen_core.stream_events(model.id, messages, base_url=replica.base_url, **kw))
    deltas = "".join(e.text for e in events if isinstance(e, TextDelta))
    return events, deltas


@pytest.mark.parametrize("query", ["script:repeat", "script:unicode", "script:long:5000"])
def test_exact_text_of_scripted_answers(space, query):
    replica, model = space
    if replica.name == "qwen3_g5" and query == "script:long:5000":
        # the pro chatbot re-validates the whole conversation per update on the server
        # (5,000 tokens take ~2 minutes there); 300 tokens prove the same client path
        query = "script:long:300"
    events, deltas = collect(model, user(query), replica)
    expected = script.expected_answer(query, system="")
    assert deltas == expected
    assert events[-1].text == expected and isinstance(events[-1], Done)
    assert not any(isinstance(e, TextReplaced) for e in events)  # these Spaces only append
    if query == "script:repeat":
        assert [e.text for e in events if isinstance(e, TextDelta)] == ["ha", "ha", "ha", " ", "ha"]


def expected_echo(replica_name, model, system, prompt):
    """What the echo script answers when the Space received this conversation."""
    pairs = [["hello", "hi there"]]
    if replica_name == "1m_g4":  # no system input: the system text leads the prompt
        return script.expected_answer(f"{system}\n\n{prompt}", system="", history=pairs)
    if replica_name == "qwen3_g5":  # history is server-side state: flattened into the prompt
        flat = (
            "Earlier in this conversation:\nUser: hello\nAssistant: hi there\n\n"
            f"Now answer the user's new message:\n{prompt}"
        )
        return script.expected_answer(
            flat, system=system, variant=model.variant, thinking_budget=38
        )
    return script.expected_answer(prompt, system=system, history=pairs, variant=model.variant)


def test_system_prompt_and_earlier_turns_reach_the_space(space):
    replica, model = space
    messages = [{"role": "system", "content": "Be terse."}, *HISTORY, *user("and now?")]
    _, deltas = collect(model, messages, replica)
    assert deltas == expected_echo(replica.name, model, "Be terse.", "and now?")


def test_default_system_prompt_is_the_spaces_own(space):
    replica, model = space
    _, deltas = collect(model, user("which system?"), replica)
    if model.supports_system:
        assert f"system={model.adapter.default_system} |" in deltas
    else:
        assert deltas.startswith("ECHO query=which system? |")


@pytest.mark.parametrize(
    ("model_id", "variant"),
    [
        ("qwen-2.5", "72B"),
        ("qwen-2.5-0.5b", "0.5B"),
        ("qwen-2.5-math-7b", "Math-7B"),
        ("qwen-2.5-coder-1.5b", "Coder-1.5B"),
    ],
)
def test_qwen25_ids_pick_their_variant(replica_qwen25_g4, model_id, variant):
    text = "".join(qwen_core.stream_chat(model_id, user("v?"), base_url=replica_qwen25_g4.base_url))
    assert text.endswith(f"| variant={variant}")


def test_qwen3_thinking_is_reasoning_not_answer(replica_qwen3_g5):
    model = qwen_core.resolve_model("qwen3-8b")
    events, deltas = collect(model, user("think"), replica_qwen3_g5, thinking_budget=4)
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert reasoning == script.expected_reasoning("think", thinking_budget=4)
    assert deltas == script.expected_answer(
        "think", system=model.adapter.default_system, variant="qwen3-8b", thinking_budget=4
    )
    assert "THINK" not in deltas and events[-1] == Done(deltas, reasoning)


def test_1m_placeholder_and_summary_never_reach_the_answer(replica_1m_g4):
    model = qwen_core.resolve_model("qwen-2.5-1m")
    events, deltas = collect(model, user("script:repeat"), replica_1m_g4)
    assert deltas == "hahaha ha"
    assert any(getattr(e, "text", None) == script.THINKING_PLACEHOLDER for e in events)
    assert events[-1].reasoning == script.ONE_M_SUFFIX


def test_space_error_mid_stream_keeps_partial_text(space):
    replica, model = space
    got = []
    with pytest.raises(qwen_core.GenerationError) as info:
        for text in qwen_core.stream_chat(
            model.id, user("script:error:3"), base_url=replica.base_url
        ):
            got.append(text)
    assert "".join(got) == "e0 e1 e2 " == info.value.partial
    assert info.value.space_message == script.ERROR_MESSAGE
    assert script.ERROR_MESSAGE in str(info.value) and model.space_id in str(info.value)


WAIT = 30.0  # generous deadline for an event a replica logs (slow machines)


def unique(query):
    """``query`` with a tag after it (the scripts read the first word only), so that its
    records in a shared replica's log are this test's alone."""
    return f"{query} t-{secrets.token_hex(6)}"


def records_of(replica, query):
    """This query's start/token/end records, from the replica's log (in server order)."""
    records = replica.events()
    sessions = {r["session"] for r in records if r["event"] == "start" and r["query"] == query}
    return [(i, r) for i, r in enumerate(records) if r.get("session") in sessions]


@pytest.mark.parametrize("name", ["max_g6", "max_g5", "qwen25_g4"])
def test_queue_status_while_waiting_behind_a_busy_space(replica_pool, name):
    """Our job waits behind a busy one and sees its place. No timing: the busy job runs
    until our job has reported its queue status, then it stops (early close)."""
    replica = replica_pool.get(name)  # concurrency 1
    model = SPACES[name]
    busy = unique("script:slow:600:50")  # 30 s unless stopped
    queued = threading.Event()
    busy_text = []

    def hold_the_slot():
        for text in qwen_core.stream_chat(model, user(busy), base_url=replica.base_url):
            busy_text.append(text)
            if queued.wait(0):
                break  # our question is queued: free the slot (closes and cancels)

    first = threading.Thread(target=hold_the_slot)
    first.start()
    events = []
    try:
        replica.wait_event(lambda e: e["event"] == "start" and e["query"] == busy, timeout=WAIT)
        mine = unique("script:repeat")
        for event in qwen_core.stream_events(model, user(mine), base_url=replica.base_url):
            events.append(event)
            if isinstance(event, QueueStatus):
                queued.set()
    finally:
        queued.set()
        first.join(WAIT)
    assert not first.is_alive()
    waiting = [e for e in events if isinstance(e, QueueStatus)]
    assert waiting and waiting[0].rank is not None and waiting[0].rank >= 0
    assert waiting[0].queue_size is not None and waiting[0].queue_size >= 1
    started = next(i for i, e in enumerate(events) if isinstance(e, ProcessStarted))
    assert events.index(waiting[0]) < started
    assert events[-1] == Done("hahaha ha")
    # it really waited: the replica started it only after the busy job had started, and the
    # busy job was unfinished (stopped early) -- one slot, so ours ran after it let go
    (busy_start,) = [i for i, r in records_of(replica, busy) if r["event"] == "start"]
    (my_start,) = [i for i, r in records_of(replica, mine) if r["event"] == "start"]
    assert busy_start < my_start
    assert 0 < len(busy_text) < 600 and "s599 " not in busy_text


@pytest.mark.parametrize("name", ["max_g6", "max_g5", "qwen25_g4"])
def test_early_close_frees_the_space(replica_pool, name):
    replica = replica_pool.get(name)  # concurrency 1: a job left running would block the next
    model = SPACES[name]
    slow = unique("script:slow:200:50")  # 10 s if left running
    stream = qwen_core.stream_chat(model, user(slow), base_url=replica.base_url)
    assert [next(stream) for _ in range(3)] == ["s0 ", "s1 ", "s2 "]
    stream.close()
    after = unique("script:repeat")
    text = "".join(qwen_core.stream_chat(model, user(after), base_url=replica.base_url))
    assert text == "hahaha ha"
    # the slow job did not hold the slot: the replica (one job at a time) started the next
    # job while the slow one was unfinished, and the slow one never finished
    (next_start,) = [i for i, r in records_of(replica, after) if r["event"] == "start"]
    slow_records = records_of(replica, slow)
    assert sum(1 for i, r in slow_records if r["event"] == "token" and i < next_start) < 200
    # the slow job stopped producing tokens (Gradio 4 drops the generator without closing
    # it, Gradio 5/6 close it): Gradio 5/6 log the close; then a probe job holds the only
    # slot for 0.5 s of the server's time, during which a generator still being driven
    # would log ~10 tokens. At most the one in flight at the close may come after that.
    if replica.spec.gradio_major >= 5:
        replica.wait_event(lambda e: e["event"] == "end" and e["query"] == slow, timeout=WAIT)
    probe = unique("script:slow:10:50")
    assert "".join(qwen_core.stream_chat(model, user(probe), base_url=replica.base_url))
    (probe_start,) = [i for i, r in records_of(replica, probe) if r["event"] == "start"]
    slow_records = records_of(replica, slow)
    tokens = [i for i, r in slow_records if r["event"] == "token"]
    assert len(tokens) < 200
    assert probe_start > next_start
    # logged after the close (next_start comes after it): at most the one in flight, even
    # with the probe's 0.5 s gone by -- the count no longer grows
    assert sum(1 for i in tokens if i > next_start) <= 1
    ends = [r for _, r in slow_records if r["event"] == "end"]
    assert all(r["how"] == "closed" for r in ends)  # never "done"
    if replica.spec.gradio_major >= 5:
        assert len(ends) == 1


def test_async_generator_streams_from_a_replica(replica_max_g6):
    from qwen_core.spaces import Qwen_Qwen_2_5_Max

    async def run():
        return [
            t
            async for t in Qwen_Qwen_2_5_Max.create_async_generator(
                "qwen-2.5-max", user("script:repeat"), base_url=replica_max_g6.base_url
            )
        ]

    assert asyncio.run(run()) == ["ha", "ha", "ha", " ", "ha"]


def test_cli_streams_from_a_replica(replica_max_g5):
    env = {**os.environ, "QWEN_SPACE_URLS": f"Qwen/Qwen2.5-Max-Demo={replica_max_g5.base_url}"}
    out = subprocess.run(
        [sys.executable, "-m", "qwen_core", "script:unicode", "--model", "qwen-2.5-max"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert out.stdout == script.expected_answer("script:unicode", system="") + "\n"
