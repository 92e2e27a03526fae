"""qwen_core against the replica Spaces: real Gradio servers reproducing each Space's
event layout at the Gradio version it runs. The client runs unmodified but for base_url."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time

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


@pytest.mark.parametrize("name", ["max_g6", "max_g5", "qwen25_g4"])
def test_queue_status_while_waiting_behind_a_busy_space(replica_pool, name):
    replica = replica_pool.get(name)  # concurrency 1
    model = SPACES[name]
    first = threading.Thread(
        target=lambda: "".join(
            qwen_core.stream_chat(model, user("script:slow:30:50"), base_url=replica.base_url)
        )
    )
    first.start()
    try:
        time.sleep(0.5)
        events = list(
            qwen_core.stream_events(model, user("script:repeat"), base_url=replica.base_url)
        )
    finally:
        first.join(30)
    waiting = [e for e in events if isinstance(e, QueueStatus)]
    assert waiting and waiting[0].rank is not None and waiting[0].rank >= 0
    assert waiting[0].queue_size is not None and waiting[0].queue_size >= 1
    started = next(i for i, e in enumerate(events) if isinstance(e, ProcessStarted))
    assert events.index(waiting[0]) < started
    assert events[-1] == Done("hahaha ha")


@pytest.mark.parametrize("name", ["max_g6", "max_g5", "qwen25_g4"])
def test_early_close_frees_the_space(replica_pool, name):
    replica = replica_pool.get(name)  # concurrency 1: a job left running would block the next
    model = SPACES[name]
    stream = qwen_core.stream_chat(model, user("script:slow:200:50"), base_url=replica.base_url)
    assert [next(stream) for _ in range(3)] == ["s0 ", "s1 ", "s2 "]
    stream.close()
    began = time.monotonic()
    text = "".join(qwen_core.stream_chat(model, user("script:repeat"), base_url=replica.base_url))
    assert text == "hahaha ha"
    assert time.monotonic() - began < 5.0  # the slow job (10 s) did not hold the slot
    # the slow job stopped producing tokens (Gradio 4 drops the generator without closing
    # it, Gradio 5/6 close it): its token count no longer grows
    def slow_tokens():
        records = replica.events()
        slow = {r["session"] for r in records
                if r["event"] == "start" and r.get("query") == "script:slow:200:50"}
        return sum(1 for r in records if r["event"] == "token" and r["session"] in slow)

    time.sleep(0.3)
    before = slow_tokens()
    time.sleep(0.5)
    assert slow_tokens() == before < 200


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
