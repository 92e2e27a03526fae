"""The replicas reproduce each Space's layout and stream the scripted answers.

Raw httpx only (no qwen_core, no gradio_client): these tests pin down the wire format the
client is built against.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import httpx
import pytest

from tests.replicas import bed, raw, script
from tests.replicas.bed import Replica, ReplicaPool
from tests.replicas.layouts import ERROR_TEXT, LAYOUTS, Layout, component_types, one_m_chatbot

NAMES = list(bed.REPLICAS)
HISTORY = [["q1 (earlier turn)", "a1 (earlier answer)"]]
WAIT = 30.0  # generous deadline for an event the replica logs (slow machines)


@pytest.fixture(params=NAMES)
def replica(request: pytest.FixtureRequest, replica_pool: ReplicaPool) -> Replica:
    return replica_pool.get(request.param)


def layout_of(replica: Replica) -> Layout:
    return LAYOUTS[replica.name]


def config_of(replica: Replica) -> dict[str, Any]:
    return raw.get_config(replica.base_url)


# -- the script (pure, no server) -------------------------------------------------------


def test_echo_answer_encodes_the_request() -> None:
    plan = script.plan("hello world", system="sys", history=[["a", "b"]], variant="7B")
    assert plan.answer == 'ECHO query=hello world | system=sys | history=[["a","b"]] | variant=7B'
    assert len(plan.tokens) > len(plan.answer.split()) * 2  # several tokens per word
    assert " " in plan.tokens and plan.reasoning == [] and plan.error is None


def test_scripts() -> None:
    kw: dict[str, Any] = {"system": "", "history": [], "variant": None}
    assert script.plan("script:repeat", **kw).tokens == ["ha", "ha", "ha", " ", "ha"]
    long = script.plan("script:long:250", **kw)
    assert len(long.tokens) == 250 and long.tokens[-1] == "w249 "
    chunks = script.plan("script:bytes:1000:64", **kw).tokens
    assert len("".join(chunks)) == 1000 and {len(c) for c in chunks[:-1]} == {64}
    slow = script.plan("script:slow:3:250", **kw)
    assert slow.tokens == ["s0 ", "s1 ", "s2 "] and slow.delay == 0.25
    error = script.plan("script:error:2", **kw)
    assert error.error == script.ScriptError(script.ERROR_MESSAGE, after=2)
    assert error.answer == "e0 e1 "
    html = script.expected_answer("script:html", system="")
    assert "<script>alert(1)</script>" in html and "<img src=x onerror=alert(1)>" in html
    unicode = script.expected_answer("script:unicode", system="")
    for needle in ("👍🏽", "👨\u200d👩\u200d👧", "你好，世界", "```python\n", "    return"):
        assert needle in unicode
    assert unicode.endswith("end   ")
    with pytest.raises(ValueError):
        script.plan("script:long:x", **kw)


def test_reasoning_only_with_a_thinking_budget() -> None:
    assert script.expected_reasoning("hi") == ""
    reasoning = script.expected_reasoning("hi", thinking_budget=4)
    assert reasoning.startswith("THINK") and "4k" in reasoning
    answer = script.expected_answer("hi", system="s", variant="qwen3-8b", thinking_budget=4)
    assert answer.endswith("variant=qwen3-8b | thinking_budget=4")
    assert script.expected_answer("hi", system="s", thinking_budget=0).endswith("=0")


@pytest.mark.parametrize(
    "query", ["hello", "script:repeat", "script:unicode", "script:long:5", "script:html"]
)
def test_complete_answers_survive_cleandoc(query: str) -> None:
    answer = script.expected_answer(query, system="sys", history=HISTORY)
    assert script.cleandoc(answer) == answer


def test_space_urls() -> None:
    assert (
        bed.space_urls({"Qwen/Qwen2.5-Max-Demo": "http://127.0.0.1:7861", "Qwen/Qwen2.5": "u"})
        == "Qwen/Qwen2.5-Max-Demo=http://127.0.0.1:7861,Qwen/Qwen2.5=u"
    )
    with pytest.raises(ValueError):
        bed.space_urls({"a,b": "u"})


# -- layout ------------------------------------------------------------------------------


@pytest.mark.replica
def test_config_reproduces_the_layout(replica: Replica) -> None:
    config = config_of(replica)
    layout = layout_of(replica)
    assert int(config["version"].split(".")[0]) == replica.spec.gradio_major
    assert config["protocol"] == "sse_v3"
    assert raw.api_prefix(config) == replica.spec.api_prefix
    dependency = config["dependencies"][layout.fn_index]
    assert dependency.get("id", layout.fn_index) == layout.fn_index
    assert dependency["queue"] is not False
    assert dependency["types"]["generator"] is True
    assert component_types(config, dependency["inputs"]) == layout.input_types
    assert component_types(config, dependency["outputs"]) == layout.output_types


@pytest.mark.replica
def test_qwen25_event_order(replica_qwen25_g4: Replica) -> None:
    config = config_of(replica_qwen25_g4)
    deps = config["dependencies"]
    assert len(deps) == 8
    assert [d["targets"][0][1] for d in deps] == [
        "change",
        "change",
        "change",
        "submit",
        "click",
        "click",
        "click",
        "change",
    ]
    assert deps[3]["targets"][0][0] == 25  # trigger_id seen in the browser
    assert deps[4]["inputs"] == deps[3]["inputs"] and deps[4]["outputs"] == deps[3]["outputs"]
    radios = component_types(config, [d["targets"][0][0] for d in deps[:3]])
    assert radios == ("radio", "radio", "radio")
    assert deps[7]["targets"][0][0] == deps[3]["inputs"][3]  # the hidden variant radio


@pytest.mark.replica
def test_1m_event_layout(replica_1m_g4: Replica) -> None:
    config = config_of(replica_1m_g4)
    deps = config["dependencies"]
    assert deps[0]["queue"] is False
    assert deps[1]["queue"] is False and deps[1]["targets"][0][1] == "submit"
    assert component_types(config, deps[1]["inputs"]) == (
        "modelscopemultimodalinput",
        "modelscopechatbot",
        "state",
    )
    assert deps[2]["trigger_after"] == 1 and deps[2]["queue"] is True


@pytest.mark.replica
def test_trigger_ids_match_the_spaces(
    replica_max_g5: Replica, replica_qwen2_72b_g4: Replica, replica_qwen3_g5: Replica
) -> None:
    for replica, fn_index, trigger in (
        (replica_max_g5, 0, 11),
        (replica_qwen2_72b_g4, 0, 11),
        (replica_qwen3_g5, 13, 31),
    ):
        assert config_of(replica)["dependencies"][fn_index]["targets"][0][0] == trigger


# -- streaming ---------------------------------------------------------------------------


@pytest.mark.replica
def test_echo_round_trip(replica: Replica) -> None:
    layout = layout_of(replica)
    session = raw.new_session_hash()
    history: list[list[str]] = [list(pair) for pair in HISTORY]
    if not layout.sends_history:  # Qwen3: the earlier turn lives in the session's State
        first = raw.run_queued(
            replica.base_url,
            layout.fn_index,
            layout.data(history[0][0]),
            prefix=replica.spec.api_prefix,
            session_hash=session,
        )
        history = [[history[0][0], layout.answer(first.completed["output"]["data"])]]
        assert history[0][1] == layout.expected(history[0][0])
    transcript = raw.run_queued(
        replica.base_url,
        layout.fn_index,
        layout.data("hello there", history),
        prefix=replica.spec.api_prefix,
        session_hash=session,
    )
    kinds = [m["msg"] for m in transcript.messages]
    assert kinds[0] == "estimation" and kinds[1] == "process_starts"
    assert kinds[-2:] == ["process_completed", "close_stream"]
    completed = transcript.completed
    assert completed["success"] is True
    final = completed["output"]["data"]
    assert layout.answer(final) == layout.expected("hello there", history)
    if layout.reasoning is not None:
        assert layout.reasoning(final) == layout.expected_reasoning("hello there")

    # The first process_generating carries full data, the rest carry diff ops that
    # rebuild exactly the data process_completed reports.
    steps = transcript.generating
    assert len(steps) > 5
    for message in steps[1:]:
        for ops in message["output"]["data"]:
            assert isinstance(ops, list)
            assert all(op[0] in ("append", "replace", "add", "delete") for op in ops)
    assert transcript.outputs_by_step()[-1] == final


@pytest.mark.replica
def test_scripted_error(replica: Replica) -> None:
    layout = layout_of(replica)
    transcript = raw.run_queued(
        replica.base_url,
        layout.fn_index,
        layout.data("script:error:3"),
        prefix=replica.spec.api_prefix,
    )
    completed = transcript.completed
    assert completed["success"] is False
    assert completed["output"]["error"] == ERROR_TEXT[replica.spec.gradio_major]
    assert layout.answer(transcript.outputs_by_step()[-1]) == "e0 e1 e2 "


@pytest.mark.replica
@pytest.mark.parametrize("query", ["script:unicode", "script:html", "script:repeat"])
def test_special_scripts_round_trip(replica_max_g6: Replica, query: str) -> None:
    layout = LAYOUTS["max_g6"]
    transcript = raw.run_queued(
        replica_max_g6.base_url, 0, layout.data(query), prefix="/gradio_api"
    )
    assert layout.answer(transcript.completed["output"]["data"]) == layout.expected(query)


@pytest.mark.replica
def test_1m_flow(replica_1m_g4: Replica) -> None:
    layout = LAYOUTS["1m_g4"]
    session = raw.new_session_hash()
    added = raw.run_predict(
        replica_1m_g4.base_url,
        1,
        [{"files": [], "text": "hi"}, [], []],
        session_hash=session,
    )
    chatbot = added["data"][1]
    assert chatbot[-1][0]["text"] == "hi" and chatbot[-1][1] is None
    transcript = raw.run_queued(
        replica_1m_g4.base_url, 2, [chatbot, None, 0], prefix="", session_hash=session
    )
    steps = transcript.outputs_by_step()
    bot_texts = [step[0][-1][1][0]["text"] for step in steps]
    assert bot_texts[0] == bot_texts[1] == script.THINKING_PLACEHOLDER
    assert transcript.generating[1]["output"]["data"] == [[]]  # unchanged: empty diff
    assert transcript.generating[2]["output"]["data"][0][0][0] == "replace"
    final = transcript.completed["output"]["data"]
    assert final[0][-1][1][0]["text"] == layout.expected("hi") + script.ONE_M_SUFFIX
    assert layout.answer(final) == layout.expected("hi")
    assert one_m_chatbot("hi", [])[-1][0]["text"] == chatbot[-1][0]["text"]


@pytest.mark.replica
def test_qwen3_stream_shape(replica_qwen3_g5: Replica) -> None:
    layout = LAYOUTS["qwen3_g5"]
    transcript = raw.run_queued(
        replica_qwen3_g5.base_url,
        13,
        [
            "hi",
            {"model": "qwen3-8b", "sys_prompt": "be brief", "thinking_budget": 2},
            None,
            None,
        ],
        prefix="/gradio_api",
    )
    steps = transcript.outputs_by_step()
    bots = [step[5]["value"][-1] for step in steps]
    assert bots[0]["status"] == "pending" and bots[0]["content"] == []
    tool = [b["content"][0] for b in bots if b["content"]]
    assert tool[0]["type"] == "tool" and tool[0]["options"]["title"] == "Thinking..."
    assert bots[-1]["status"] == "done"
    final_bot = transcript.completed["output"]["data"][5]["value"][-1]
    assert final_bot["content"][0]["options"] == {"title": "Thinking completed", "status": "done"}
    assert final_bot["content"][1]["type"] == "text"
    answer = layout.answer(transcript.completed["output"]["data"])
    assert answer == script.expected_answer(
        "hi", system="be brief", variant="qwen3-8b", thinking_budget=2
    )
    paths = [op[1] for m in transcript.generating[1:] for op in m["output"]["data"][5]]
    assert ["value", 1, "content", 0, "content"] in paths  # thinking text
    assert ["value", 1, "content", 1, "content"] in paths  # answer text


@pytest.mark.replica
def test_qwen3_without_thinking(replica_qwen3_g5: Replica) -> None:
    settings = {"model": "qwen3-4b", "sys_prompt": "", "thinking_budget": 0}
    transcript = raw.run_queued(
        replica_qwen3_g5.base_url, 13, ["yo", settings, None, None], prefix="/gradio_api"
    )
    final = transcript.completed["output"]["data"]
    assert [item["type"] for item in final[5]["value"][-1]["content"]] == ["text"]
    assert LAYOUTS["qwen3_g5"].answer(final) == script.expected_answer(
        "yo", system="", variant="qwen3-4b", thinking_budget=0
    )


# -- queue, cancel, concurrency ----------------------------------------------------------


@pytest.mark.replica
@pytest.mark.parametrize("name", ["qwen2_72b_g4", "max_g5", "max_g6"])
def test_cancel_stops_the_generator(replica_pool: ReplicaPool, name: str) -> None:
    replica = replica_pool.get(name)
    layout = LAYOUTS[name]
    session = raw.new_session_hash()
    query = f"script:slow:40:100 cancel-{name}-{session}"
    event_id = raw.join(
        replica.base_url,
        0,
        layout.data(query),
        prefix=replica.spec.api_prefix,
        session_hash=session,
    )
    messages: list[dict[str, Any]] = []
    with httpx.Client(timeout=30) as client:
        url = f"{replica.api_url}/queue/data"
        with client.stream("GET", url, params={"session_hash": session}) as stream:
            generating = 0
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                messages.append(message)
                if message["msg"] == "process_generating":
                    generating += 1
                    if generating == 3:
                        assert raw.cancel(
                            replica.base_url,
                            prefix=replica.spec.api_prefix,
                            session_hash=session,
                            fn_index=0,
                            event_id=event_id,
                        ) == {"success": True}
                if message["msg"] == "close_stream":
                    break
    completed = [m for m in messages if m["msg"] == "process_completed"]
    assert len(completed) == 1
    assert completed[0]["output"] == {} and completed[0]["success"] is True
    if replica.spec.gradio_major >= 5:  # Gradio 5/6 close the generator at once
        end = replica.wait_event(
            lambda e: e["event"] == "end" and e["session"] == session, timeout=WAIT
        )
        assert end["how"] == "closed"
    # instead of sleeping: a probe job runs through the replica's only slot for 0.5 s of
    # the server's time; a generator still being driven would log ~5 tokens meanwhile
    probe = _run_probe(replica, layout)
    records = replica.events()
    produced = _count(records, session, "token")
    assert produced < 15  # 3 streamed + the one in flight (+ slack for a loaded machine)
    assert _tokens_after_start(records, session, probe) <= 1  # it stopped (<= 1 in flight)
    assert not any(e["event"] == "end" and e.get("how") == "done"
                   for e in records if e.get("session") == session)


def _start_busy(replica: Replica, layout: Layout, query: str) -> threading.Thread:
    """Occupy the replica's only slot with ``query``; return once it is generating."""
    session = raw.new_session_hash()
    thread = threading.Thread(
        target=raw.run_queued,
        args=(replica.base_url, layout.fn_index, layout.data(query)),
        kwargs={"prefix": replica.spec.api_prefix, "session_hash": session},
    )
    thread.start()
    replica.wait_event(lambda e: e["event"] == "start" and e["session"] == session, timeout=WAIT)
    return thread


def _session_events(replica: Replica, session: str) -> list[str]:
    return [e["event"] for e in replica.events() if e.get("session") == session]


def _count(records: list[dict[str, Any]], session: str, event: str) -> int:
    return sum(1 for e in records if e.get("session") == session and e["event"] == event)


def _run_probe(replica: Replica, layout: Layout) -> str:
    """Run a 0.5 s job (5 tokens, 100 ms apart) through the replica to its end; return its
    session. With one slot, it runs after every job queued before it: when it is done,
    those have started (or were dropped), and the server's clock moved on 0.5 s."""
    session = raw.new_session_hash()
    transcript = raw.run_queued(
        replica.base_url, layout.fn_index, layout.data(f"script:slow:5:100 probe-{session}"),
        prefix=replica.spec.api_prefix, session_hash=session, timeout=WAIT,
    )
    assert transcript.completed is not None and transcript.completed["success"] is True
    replica.wait_event(lambda e: e["event"] == "end" and e["session"] == session, timeout=WAIT)
    return session


def _tokens_after_start(records: list[dict[str, Any]], session: str, probe: str) -> int:
    """``session``'s tokens logged after ``probe`` started (the log is in server order)."""
    start = next(i for i, e in enumerate(records)
                 if e["event"] == "start" and e.get("session") == probe)
    return sum(1 for e in records[start:] if e.get("session") == session
               and e["event"] == "token")


@pytest.mark.replica
@pytest.mark.parametrize("name", ["qwen2_72b_g4", "max_g5", "max_g6"])
def test_disconnect_stops_running_and_waiting_jobs(replica_pool: ReplicaPool, name: str) -> None:
    """Closing /queue/data early stops a running generator and drops a waiting job."""
    replica = replica_pool.get(name)
    layout = LAYOUTS[name]
    prefix = replica.spec.api_prefix
    running, waiting = raw.new_session_hash(), raw.new_session_hash()
    raw.join(
        replica.base_url, 0, layout.data("script:slow:30:100"), prefix=prefix, session_hash=running
    )
    with httpx.Client(timeout=30) as client:
        url = f"{replica.base_url}{prefix}/queue/data"
        with client.stream("GET", url, params={"session_hash": running}) as stream:
            for line in stream.iter_lines():
                if '"process_generating"' in line:
                    break  # the first token arrived: hang up
    replica.wait_event(lambda e: e["event"] == "start" and e["session"] == running, timeout=WAIT)
    busy = _start_busy(replica, layout, "script:slow:20:100")
    raw.join(replica.base_url, 0, layout.data("never"), prefix=prefix, session_hash=waiting)
    with httpx.Client(timeout=30) as client:
        url = f"{replica.base_url}{prefix}/queue/data"
        with client.stream("GET", url, params={"session_hash": waiting}) as stream:
            for line in stream.iter_lines():
                if '"estimation"' in line:
                    break  # still waiting: hang up
    busy.join(timeout=WAIT)
    assert not busy.is_alive()
    # the busy job (2 s) and then a probe ran through the only slot: the waiting job,
    # queued before the probe, would have started by the probe's end
    probe = _run_probe(replica, layout)
    records = replica.events()
    stopped_at = _count(records, running, "token")
    assert stopped_at < 15  # of 30 (3 s): it stopped soon after the hang-up
    assert _tokens_after_start(records, running, probe) == 0  # and never resumed
    assert _session_events(replica, waiting) == []  # never ran


@pytest.mark.replica
@pytest.mark.parametrize("name", ["qwen2_72b_g4", "max_g5", "max_g6"])
def test_cancel_of_a_waiting_job(replica_pool: ReplicaPool, name: str) -> None:
    """POST /cancel for a job still waiting answers process_completed at once, but only
    Gradio 6 removes the job from the queue: Gradio 4/5 run it in full later."""
    replica = replica_pool.get(name)
    layout = LAYOUTS[name]
    prefix = replica.spec.api_prefix
    waiting = raw.new_session_hash()
    busy = _start_busy(replica, layout, "script:slow:20:100")
    event_id = raw.join(
        replica.base_url, 0, layout.data("script:long:3"), prefix=prefix, session_hash=waiting
    )
    assert raw.cancel(
        replica.base_url, prefix=prefix, session_hash=waiting, fn_index=0, event_id=event_id
    ) == {"success": True}
    stream = raw.read_stream(
        replica.base_url, prefix=prefix, session_hash=waiting, event_id=event_id
    )
    assert [m["msg"] for m in stream.messages][-2:] == ["process_completed", "close_stream"]
    assert stream.completed["output"] == {}
    busy.join(timeout=WAIT)
    assert not busy.is_alive()
    if replica.spec.gradio_major >= 6:
        _run_probe(replica, layout)  # queued after it: the waiting job would run first
        assert _session_events(replica, waiting) == []
    else:
        replica.wait_event(
            lambda e: e["event"] == "end" and e["session"] == waiting, timeout=WAIT
        )
        assert _session_events(replica, waiting).count("token") == 3


@pytest.mark.replica
def test_queue_estimation_while_busy(replica_max_g6: Replica) -> None:
    """rank/queue_size count the jobs *waiting* (not the running one); updated
    estimation messages follow as the queue moves."""
    layout = LAYOUTS["max_g6"]
    url, prefix = replica_max_g6.base_url, "/gradio_api"
    first, second, third = (raw.new_session_hash() for _ in range(3))
    busy: list[raw.Transcript] = []
    thread = threading.Thread(
        target=lambda: busy.append(
            raw.run_queued(
                url, 0, layout.data("script:slow:6:100"), prefix=prefix, session_hash=first
            )
        )
    )
    thread.start()
    replica_max_g6.wait_event(
        lambda e: e["event"] == "start" and e["session"] == first, timeout=WAIT
    )
    second_event = raw.join(url, 0, layout.data("two"), prefix=prefix, session_hash=second)
    last = raw.run_queued(url, 0, layout.data("three"), prefix=prefix, session_hash=third)
    waiting = raw.read_stream(url, prefix=prefix, session_hash=second, event_id=second_event)
    thread.join(timeout=30)
    head = waiting.messages[0]
    assert set(head) == {"msg", "event_id", "rank", "queue_size", "rank_eta"}
    assert (head["msg"], head["event_id"]) == ("estimation", second_event)
    assert (head["rank"], head["queue_size"]) == (0, 1)  # the running job is not counted
    estimations = [m for m in last.messages if m["msg"] == "estimation"]
    assert (estimations[0]["rank"], estimations[0]["queue_size"]) == (1, 2)
    assert (estimations[-1]["rank"], estimations[-1]["queue_size"]) == (0, 1)
    assert busy[0].completed["success"] and waiting.completed["success"]
    assert last.completed["success"]


@pytest.mark.replica
def test_concurrency_and_stop(replica_pool: ReplicaPool) -> None:
    """A replica started with concurrency 2 runs two generations at once; stop() kills
    its process group."""
    with bed.running("max_g5", concurrency=2) as replica:
        sessions = [raw.new_session_hash(), raw.new_session_hash()]
        threads = [
            threading.Thread(
                target=raw.run_queued,
                args=(replica.base_url, 0, LAYOUTS["max_g5"].data("script:slow:10:100")),
                kwargs={"prefix": "/gradio_api", "session_hash": session},
            )
            for session in sessions
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        records = replica.events()
        starts = [e["t"] for e in records if e["event"] == "start"]
        ends = [e["t"] for e in records if e["event"] == "end"]
        assert len(starts) == 2 and len(ends) == 2
        assert max(starts) < min(ends)  # both ran at the same time
        pid = replica.pid
    assert not replica.alive()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
