"""The OpenAI-compatible API (``qwen_chat/api.py``) through a real ``streamlit run
streamlit_app.py``, driven by the official ``openai`` SDK and by plain httpx (raw SSE),
against replica Spaces and the fault-injecting fake Space; plus in-process checks of
what no server can be made to do on cue (a Space rewriting its answer, a caller from
another machine) and of the stop-sequence cutter."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette

import qwen_core
from qwen_chat import api as api_module
from qwen_chat.api import MAX_BODY_BYTES, ApiState, OpenAIApi, StopCutter
from qwen_chat.settings import Settings
from qwen_core.events import (
    Done,
    QueueStatus,
    ReasoningDelta,
    ReasoningReplaced,
    TextDelta,
    TextReplaced,
)
from tests.browser.serve import stop_process
from tests.faults.fake_space import ERROR_MESSAGE as FAKE_ERROR
from tests.faults.fake_space import answer_for, tokenize
from tests.replicas import bed, script

from .conftest import FAKE_MODEL, KEYS, ORIGIN, Server, start_server

MAX = "qwen-2.5-max"
MAX_SYSTEM = qwen_core.MODELS[MAX].adapter.default_system
QWEN3_SYSTEM = qwen_core.MODELS["qwen3-8b"].adapter.default_system
QWEN25_SYSTEM = qwen_core.MODELS["qwen-2.5-7b"].adapter.default_system
FAKE_SYSTEM = qwen_core.MODELS[FAKE_MODEL].adapter.default_system
CANCEL_WITHIN = 2.0  # seconds from a disconnect or stop to the Space's job being cancelled


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def tag() -> str:
    return uuid.uuid4().hex[:10]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def sse_events(body: str) -> list[str]:
    """The data of each event in a raw SSE body (comment lines dropped), checking the
    framing: events end with a blank line, each line is ``data: ...`` or a comment."""
    assert body.endswith("\n\n"), body[-200:]
    events = []
    for block in body[:-2].split("\n\n"):
        lines = [line for line in block.split("\n") if not line.startswith(":")]
        if not lines:
            continue
        assert len(lines) == 1 and lines[0].startswith("data: "), block
        events.append(lines[0][len("data: "):])
    return events


def deltas(events: list[str]) -> list[dict[str, Any]]:
    return [json.loads(e)["choices"][0]["delta"] for e in events if e != "[DONE]"]


def stream_text(stream: Any) -> tuple[str, str, list[str | None]]:
    """(content, reasoning_content, finish reasons) of an SDK chat completion stream."""
    content, reasoning, finishes = [], [], []
    for chunk in stream:
        choice = chunk.choices[0]
        content.append(choice.delta.content or "")
        reasoning.append(getattr(choice.delta, "reasoning_content", None) or "")
        finishes.append(choice.finish_reason)
    return "".join(content), "".join(reasoning), finishes


def replica_job(replica: bed.Replica, query: str) -> tuple[dict[str, Any], list[dict]]:
    """The replica's ``start`` record for ``query`` and every record of that session."""
    start = next(e for e in replica.events() if e["event"] == "start" and e["query"] == query)
    return start, [e for e in replica.events() if e.get("session") == start["session"]]


def ended(replica: bed.Replica, query: str) -> dict[str, Any] | None:
    try:
        _, records = replica_job(replica, query)
    except StopIteration:
        return None
    return next((e for e in records if e["event"] == "end"), None)


# -- models ---------------------------------------------------------------------------------


@pytest.mark.replica
def test_models_lists_every_model_with_its_space(api: Server):
    listed = api.openai().models.list().data
    assert [m.id for m in listed] == list(qwen_core.MODELS)
    for m in listed:
        assert m.object == "model" and m.owned_by == qwen_core.MODELS[m.id].space_id
    with api.http() as http:
        raw = http.get("/v1/models").json()
    assert raw["object"] == "list" and len(raw["data"]) == len(qwen_core.MODELS)
    assert set(raw["data"][0]) == {"id", "object", "created", "owned_by"}
    one = api.openai().models.retrieve("Qwen_Qwen_3")  # an alias: the canonical model
    assert one.id == "qwen3-235b-a22b" and one.owned_by == "Qwen/Qwen3-Demo"
    with pytest.raises(openai.NotFoundError) as info:
        api.openai().models.retrieve("gpt-4o")
    assert info.value.code == "model_not_found"


# -- answers --------------------------------------------------------------------------------


@pytest.mark.replica
def test_a_non_streaming_answer_is_exact(api: Server):
    question = f"hello from the API {tag()}"
    done = api.openai().chat.completions.create(model=MAX, messages=user(question))
    assert done.choices[0].message.content == script.expected_answer(question,
                                                                     system=MAX_SYSTEM)
    assert done.id.startswith("chatcmpl-") and done.object == "chat.completion"
    assert done.model == MAX and done.choices[0].finish_reason == "stop"
    assert done.choices[0].message.role == "assistant"
    assert abs(done.created - time.time()) < 60
    assert done.usage is not None and done.usage.total_tokens == 0
    assert getattr(done.choices[0].message, "reasoning_content", None) is None


@pytest.mark.replica
@pytest.mark.parametrize("question", ["script:unicode", "script:repeat", "script:long:300"])
def test_a_streamed_answer_is_exact_to_the_character(api: Server, question: str):
    stream = api.openai().chat.completions.create(model=MAX, messages=user(question),
                                                  stream=True)
    content, reasoning, finishes = stream_text(stream)
    assert content == script.expected_answer(question, system=MAX_SYSTEM)
    assert reasoning == ""
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}


@pytest.mark.replica
def test_system_prompt_and_history_reach_the_space(api: Server):
    messages = [
        {"role": "system", "content": "Answer like a pirate."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "Four, matey."},
        {"role": "user", "content": [{"type": "text", "text": "And "},
                                     {"type": "text", "text": f"3+3? {tag()}"}]},
    ]
    question = "And " + messages[-1]["content"][1]["text"]
    want = script.expected_answer(question, system="Answer like a pirate.",
                                  history=[["What is 2+2?", "Four, matey."]])
    client = api.openai()
    assert client.chat.completions.create(model=MAX, messages=messages) \
        .choices[0].message.content == want
    content, _, _ = stream_text(client.chat.completions.create(model=MAX, messages=messages,
                                                              stream=True))
    assert content == want
    # "developer" is OpenAI's newer name for the system role
    messages[0]["role"] = "developer"
    assert client.chat.completions.create(model=MAX, messages=messages) \
        .choices[0].message.content == want


@pytest.mark.replica
@pytest.mark.parametrize(("name", "canonical", "system", "variant"), [
    ("Qwen_Qwen_2_5_Max", MAX, MAX_SYSTEM, None),
    ("qwen-2-5-max", MAX, MAX_SYSTEM, None),
    ("Qwen/Qwen2.5-Max-Demo", MAX, MAX_SYSTEM, None),
    ("qwen-2.5-7b", "qwen-2.5-7b", QWEN25_SYSTEM, "7B"),
    ("qwen-2.5-coder-1.5b", "qwen-2.5-coder-1.5b", QWEN25_SYSTEM, "Coder-1.5B"),
])
def test_aliases_and_variants(api: Server, name, canonical, system, variant):
    question = f"which model {tag()}"
    done = api.openai().chat.completions.create(model=name, messages=user(question))
    assert done.model == canonical
    assert done.choices[0].message.content == script.expected_answer(
        question, system=system, variant=variant)


@pytest.mark.replica
def test_ignored_fields_are_accepted(api: Server):
    question = f"ignored fields {tag()}"
    done = api.openai().chat.completions.create(
        model=MAX, messages=user(question), temperature=0.1, top_p=0.5, max_tokens=5,
        max_completion_tokens=5, frequency_penalty=1.0, presence_penalty=1.0, seed=7,
        user="someone", n=1, logit_bias={"50256": -100}, response_format={"type": "text"},
        tool_choice="none", parallel_tool_calls=False, metadata={"a": "b"}, store=False,
        extra_body={"thinking_budget": 5, "top_k": 3},  # thinking_budget: not a Qwen3
    )
    assert done.choices[0].message.content == script.expected_answer(question,
                                                                     system=MAX_SYSTEM)
    stream = api.openai().chat.completions.create(
        model=MAX, messages=user(question), stream=True,
        stream_options={"include_usage": True}, temperature=2)
    assert stream_text(stream)[0] == script.expected_answer(question, system=MAX_SYSTEM)


# -- reasoning ------------------------------------------------------------------------------


@pytest.mark.replica
@pytest.mark.parametrize("budget", [None, 3])
def test_qwen3_thinking_is_reasoning_content_never_content(api: Server, budget):
    question = f"think {tag()}"
    extra = {} if budget is None else {"extra_body": {"thinking_budget": budget}}
    used = 38 if budget is None else budget  # the Space's default budget
    want = script.expected_answer(question, system=QWEN3_SYSTEM, variant="qwen3-8b",
                                  thinking_budget=used)
    thinking = script.expected_reasoning(question, thinking_budget=used)
    client = api.openai()
    done = client.chat.completions.create(model="qwen3-8b", messages=user(question), **extra)
    assert done.choices[0].message.content == want
    assert done.choices[0].message.reasoning_content == thinking
    content, reasoning, _ = stream_text(client.chat.completions.create(
        model="qwen3-8b", messages=user(question), stream=True, **extra))
    assert (content, reasoning) == (want, thinking)


@pytest.mark.replica
def test_the_1m_demos_summary_is_reasoning_content(api: Server):
    question = f"long document {tag()}"
    want = script.expected_answer(question, system="")
    client = api.openai()
    done = client.chat.completions.create(model="qwen-2.5-1m", messages=user(question))
    assert done.choices[0].message.content == want
    assert done.choices[0].message.reasoning_content == script.ONE_M_SUFFIX
    content, reasoning, _ = stream_text(client.chat.completions.create(
        model="qwen-2.5-1m", messages=user(question), stream=True))
    assert (content, reasoning) == (want, script.ONE_M_SUFFIX)


@pytest.mark.replica
def test_a_bad_thinking_budget_is_400(api: Server):
    with pytest.raises(openai.BadRequestError) as info:
        api.openai().chat.completions.create(model="qwen3-8b", messages=user("x"),
                                             extra_body={"thinking_budget": 99})
    assert "thinking_budget" in info.value.message and info.value.param == "thinking_budget"


# -- stop -----------------------------------------------------------------------------------


@pytest.mark.replica
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("stop", "want"), [
    ("s3 ", "s0 s1 s2 "),
    (["zzz", "1 s2"], "s0 s"),  # split across two deltas: "s1 " + "s2 "
    ("s", ""),
])
def test_stop_cuts_the_answer_and_cancels_the_job_at_once(api: Server, stream, stop, want):
    replica = api.replicas["max"]
    question = f"script:slow:40:50 {tag()}"
    client = api.openai()
    started = time.monotonic()
    if stream:
        content, _, finishes = stream_text(client.chat.completions.create(
            model=MAX, messages=user(question), stop=stop, stream=True))
        assert finishes[-1] == "stop"
    else:
        done = client.chat.completions.create(model=MAX, messages=user(question), stop=stop)
        content = done.choices[0].message.content
        assert done.choices[0].finish_reason == "stop"
    assert content == want
    assert time.monotonic() - started < 1.5  # not the whole 2 s answer
    end = wait_for(lambda: ended(replica, question), CANCEL_WITHIN, "the job ended")
    assert end["how"] == "closed"  # cancelled, not run to the end
    _, records = replica_job(replica, question)
    assert sum(e["event"] == "token" for e in records) < 10


@pytest.mark.replica
def test_a_stop_prefix_held_back_at_the_end_is_sent(api: Server):
    """"hahaha ha" ends with "ha", which could begin "ha!": held back, then sent."""
    for stream in (False, True):
        kwargs = {"model": MAX, "messages": user("script:repeat"), "stop": ["ha!", "xyz"]}
        if stream:
            content = stream_text(api.openai().chat.completions.create(stream=True,
                                                                       **kwargs))[0]
        else:
            content = api.openai().chat.completions.create(**kwargs).choices[0] \
                .message.content
        assert content == "hahaha ha"


# -- errors ---------------------------------------------------------------------------------


def error_body(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code",
                                                              "param"}
    return body["error"]


@pytest.mark.replica
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("question", "kind", "status", "code", "words"), [
    ("fault:429:9:120", openai.RateLimitError, 429, "space_rate_limited", "rate limiting"),
    ("fault:join503", openai.InternalServerError, 503, "space_queue_full", "Queue is full."),
    ("fault:joinhtml", openai.InternalServerError, 503, "space_unavailable", "asleep"),
    ("fault:fail:0", openai.InternalServerError, 502, "space_generation_error", FAKE_ERROR),
    ("fault:badop:0", openai.InternalServerError, 502, "space_api_changed", "cannot apply"),
])
def test_space_failures_map_to_http_statuses(api: Server, stream, question, kind, status,
                                             code, words):
    """Before any answer text, a failure is an HTTP error status with the Space's words,
    also for a streaming request (the SSE response starts only with the first text)."""
    with pytest.raises(kind) as info:
        result = api.openai().chat.completions.create(model=FAKE_MODEL,
                                                      messages=user(question), stream=stream)
        if stream:
            list(result)
    assert info.value.status_code == status
    error = error_body(info.value)
    assert error["code"] == code and words in error["message"], error
    assert error["message"].startswith("[Qwen/Qwen2-72B-Instruct] ")
    if status == 429:
        assert info.value.response.headers["retry-after"] == "120"


@pytest.mark.replica
def test_a_failure_before_any_text_ends_a_nonstreaming_answer_too(api: Server):
    with pytest.raises(openai.InternalServerError) as info:
        api.openai().chat.completions.create(model=FAKE_MODEL, messages=user("fault:fail:4"))
    assert info.value.status_code == 502 and FAKE_ERROR in info.value.message


@pytest.mark.replica
@pytest.mark.parametrize(("question", "code", "words"), [
    ("fault:fail:5", "space_generation_error", FAKE_ERROR),
    ("fault:cut:5", "space_unavailable", "connection"),
])
def test_a_failure_after_streamed_text_is_one_error_event(api: Server, question, code, words):
    partial = "".join(tokenize(answer_for(question, FAKE_SYSTEM))[:5])
    seen: list[str] = []
    stream = api.openai().chat.completions.create(model=FAKE_MODEL, messages=user(question),
                                                  stream=True)
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == partial
    assert words in info.value.message and info.value.code == code
    with api.http() as http:  # the raw stream: the text, one error event, no [DONE]
        body = http.post("/v1/chat/completions", json={
            "model": FAKE_MODEL, "messages": user(question), "stream": True}).text
    events = sse_events(body)
    assert "".join(d.get("content") or "" for d in deltas(events[:-1])) == partial
    last = json.loads(events[-1])
    assert set(last) == {"error"} and last["error"]["code"] == code
    assert "[DONE]" not in events


@pytest.mark.replica
def test_a_gradio_error_mid_answer_on_a_real_replica(api: Server):
    question = "script:error:3"
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in api.openai().chat.completions.create(model=MAX, messages=user(question),
                                                          stream=True):
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "e0 e1 e2 "
    assert script.ERROR_MESSAGE in info.value.message


@pytest.mark.replica
def test_an_input_the_space_refuses_is_400(api: Server):
    with pytest.raises(openai.BadRequestError) as info:
        api.openai().chat.completions.create(model=FAKE_MODEL,
                                             messages=user("x" * 1_000_001))
    assert "1,000,000" in info.value.message and info.value.code == "invalid_request"


@pytest.mark.replica
@pytest.mark.parametrize(("body", "status", "param", "words"), [
    ({"model": "gpt-4o", "messages": user("x")}, 404, "model", "unknown model 'gpt-4o'"),
    ({"model": "qwen-2.5-maxx", "messages": user("x")}, 404, "model", "qwen-2.5-max"),
    ({"model": "q" * 100_000, "messages": user("x")}, 404, "model", "does not exist"),
    ({"messages": user("x")}, 400, "model", "model parameter"),
    ({"model": MAX}, 400, "messages", "messages"),
    ({"model": MAX, "messages": []}, 400, "messages", "empty"),
    ({"model": MAX, "messages": [{"role": "assistant", "content": "x"}]}, 400, "messages",
     "last message must come from the user"),
    ({"model": MAX, "messages": [{"role": "robot", "content": "x"}]}, 400, "messages",
     "role"),
    ({"model": MAX, "messages": user("x"), "n": 2}, 400, "n", "n > 1"),
    ({"model": MAX, "messages": user("x"), "n": 0}, 400, "n", "n must"),
    ({"model": MAX, "messages": user("x"), "stream": "yes"}, 400, "stream", "stream"),
    ({"model": MAX, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]},
     400, "messages", "image parts are not supported"),
    ({"model": MAX, "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]},
     400, "messages", "audio parts are not supported"),
    ({"model": MAX, "messages": user("x"), "tools": [{"type": "function", "function": {
        "name": "f", "parameters": {}}}]}, 400, "tools", "tools are not supported"),
    ({"model": MAX, "messages": user("x"), "functions": [{"name": "f"}]}, 400, "functions",
     "not supported"),
    ({"model": MAX, "messages": [*user("x"), {"role": "tool", "content": "42",
                                              "tool_call_id": "c"}]}, 400, "messages",
     "tool messages"),
    ({"model": MAX, "messages": user("x"), "response_format": {"type": "json_object"}},
     400, "response_format", "response_format"),
    ({"model": MAX, "messages": user("x"), "stop": 5}, 400, "stop", "stop"),
    ({"model": MAX, "messages": user("x"), "stop": ["a", "b", "c", "d", "e"]}, 400, "stop",
     "at most 4"),
    ({"model": MAX, "messages": user("x") * 10_001}, 400, "messages", "too many messages"),
])
def test_bad_requests_are_refused_in_openai_shape(api: Server, body, status, param, words):
    with api.http() as http:
        response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"], error
    assert len(error["message"]) < 600


@pytest.mark.replica
@pytest.mark.parametrize(("content", "words"), [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    (b'{"model": "qwen-2.5-max", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "nested too deeply"),
    (b'{"model": "\xff"}', "not valid JSON"),
    (b'{"model": "qwen-2.5-max", "messages": [{"role": "user", "content": "a \\udcff"}]}',
     "lone UTF-16 surrogate"),
])
def test_bodies_that_are_not_json_objects_are_400(api: Server, content, words):
    with api.http() as http:
        response = http.post("/v1/chat/completions", content=content,
                             headers={"content-type": "application/json"})
    assert response.status_code == 400 and words in response.json()["error"]["message"]


@pytest.mark.replica
def test_a_body_that_is_not_declared_json_is_415(api: Server):
    with api.http() as http:
        response = http.post("/v1/chat/completions", content=json.dumps(
            {"model": MAX, "messages": user("x")}), headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_content_type"


def raw_request(url: str, head: str, body_chunks: Iterator[bytes] = iter(())) -> bytes:
    """Send a hand-made HTTP request (headers, then body chunks while the server reads);
    the response bytes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending
        received = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
            if b"\r\n\r\n" in received and received.rstrip().endswith(b"}"):
                break
    return received


@pytest.mark.replica
def test_an_oversized_body_is_refused_before_it_is_read(api: Server):
    declared = raw_request(api.url, (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"))
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
    assert b'"request_too_large"' in declared

    sent = [0]

    def chunked() -> Iterator[bytes]:  # no length: refused once the cap is passed
        piece = b"x" * 1_000_000
        for _ in range(40):
            sent[0] += len(piece)
            yield b"%x\r\n%s\r\n" % (len(piece), piece)
        yield b"0\r\n\r\n"

    streamed = raw_request(api.url, (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"), chunked())
    assert streamed.startswith(b"HTTP/1.1 413"), streamed[:200]
    assert MAX_BODY_BYTES < 40_000_000


@pytest.mark.replica
def test_unknown_paths_and_methods_answer_in_openai_shape(api: Server):
    with api.http() as http:
        missing = http.post("/v1/completions", json={})
        wrong = http.get("/v1/chat/completions")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"


# -- raw SSE --------------------------------------------------------------------------------


@pytest.mark.replica
def test_raw_sse_framing_is_openais(api: Server):
    question = "script:long:30"
    with api.http() as http, http.stream("POST", "/v1/chat/completions", json={
            "model": MAX, "messages": user(question), "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        request_id = response.headers["x-request-id"]
        body = response.read().decode()
    events = sse_events(body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["id"] for c in chunks} == {request_id} and request_id.startswith("chatcmpl-")
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {MAX}
    assert all(len(c["choices"]) == 1 and c["choices"][0]["index"] == 0 for c in chunks)
    first, *middle, last = [c["choices"][0] for c in chunks]
    assert first["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert last["delta"] == {} and last["finish_reason"] == "stop"
    # one event per token the Space sent, in order, nothing batched
    assert [c["delta"] for c in middle] == [{"content": f"w{i} "} for i in range(30)]
    assert all(c["finish_reason"] is None for c in [first, *middle])
    assert body.index("data: [DONE]") == len(body) - len("data: [DONE]\n\n")


@pytest.mark.replica
def test_raw_sse_reasoning_deltas(api: Server):
    with api.http() as http:
        body = http.post("/v1/chat/completions", json={
            "model": "qwen3-8b", "messages": user("why"), "stream": True,
            "thinking_budget": 2}).text
    ds = deltas(sse_events(body))
    reasoning = [d for d in ds if "reasoning_content" in d]
    assert reasoning and all(set(d) == {"reasoning_content"} for d in reasoning)
    assert "".join(d["reasoning_content"] for d in reasoning) == script.expected_reasoning(
        "why", thinking_budget=2)
    assert ds.index(reasoning[-1]) < min(i for i, d in enumerate(ds) if d.get("content"))


# -- disconnects ----------------------------------------------------------------------------


@pytest.mark.replica
def test_a_client_that_disconnects_cancels_the_job_on_the_replica(api: Server):
    replica = api.replicas["max"]
    question = f"script:slow:100:50 {tag()}"
    with api.http() as http, http.stream("POST", "/v1/chat/completions", json={
            "model": MAX, "messages": user(question), "stream": True}) as response:
        for line in response.iter_lines():
            if '"content":"s1 "' in line:
                break
    gone = time.monotonic()
    end = wait_for(lambda: ended(replica, question), CANCEL_WITHIN, "the job was stopped")
    assert end["how"] == "closed" and time.monotonic() - gone < CANCEL_WITHIN
    _, records = replica_job(replica, question)
    assert sum(e["event"] == "token" for e in records) < 40


@pytest.mark.replica
@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_disconnects_makes_the_api_post_cancel(api: Server, stream):
    fake = api.fake
    assert fake is not None
    question = f"fault:slow:200:50 {tag()}"
    before = len(fake.cancels)
    if stream:
        with api.http() as http, http.stream("POST", "/v1/chat/completions", json={
                "model": FAKE_MODEL, "messages": user(question), "stream": True}) as response:
            for line in response.iter_lines():
                if '"content":"s0 "' in line:
                    break
    else:  # a non-streaming caller that gives up
        with api.http() as http, pytest.raises(httpx.ReadTimeout):
            http.post("/v1/chat/completions", timeout=0.8,
                      json={"model": FAKE_MODEL, "messages": user(question)})
    gone = time.monotonic()
    job = next(j for j in fake.joins if j.query == question)
    wait_for(lambda: any(c.get("event_id") == job.event_id for c in fake.cancels[before:]),
             CANCEL_WITHIN, "the API posted /cancel")
    assert time.monotonic() - gone < CANCEL_WITHIN


@pytest.mark.replica
def test_a_client_that_leaves_while_the_job_waits_makes_the_api_post_cancel(api: Server):
    """No answer text yet (the Space is busy before the job starts): the response has not
    started; the caller times out and leaves; the job is cancelled all the same."""
    fake = api.fake
    assert fake is not None
    question = f"fault:heartbeats:40:100 {tag()}"
    before = len(fake.cancels)
    with api.http() as http, pytest.raises(httpx.ReadTimeout):
        http.post("/v1/chat/completions", timeout=1.0, json={
            "model": FAKE_MODEL, "messages": user(question), "stream": True})
    gone = time.monotonic()
    job = next(j for j in fake.joins if j.query == question)
    wait_for(lambda: any(c.get("event_id") == job.event_id for c in fake.cancels[before:]),
             CANCEL_WITHIN, "the API posted /cancel")
    assert time.monotonic() - gone < CANCEL_WITHIN


# -- who may call ---------------------------------------------------------------------------


@pytest.mark.replica
@pytest.mark.parametrize("header", [
    {"X-Forwarded-For": "203.0.113.7"}, {"Forwarded": "for=203.0.113.7"},
    {"X-Real-IP": "203.0.113.7"}, {"Host": "evil.example"}, {"Host": "evil.example:8501"},
])
def test_without_keys_proxied_or_foreign_host_requests_are_403(api: Server, header):
    with api.http() as http:
        for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions")):
            response = http.request(method, path, headers=header,
                                    json={"model": MAX, "messages": user("x")})
            assert response.status_code == 403
            error = response.json()["error"]
            assert error["code"] == "api_key_required" and "QWEN_API_KEYS" in error["message"]
    with pytest.raises(openai.PermissionDeniedError):
        api.openai(default_headers=header).models.list()


@pytest.mark.replica
def test_without_keys_local_callers_need_no_key(api: Server):
    for host in ("localhost", "127.0.0.1", f"localhost:{api.url.rsplit(':', 1)[1]}"):
        with api.http() as http:
            assert http.get("/v1/models", headers={"Host": host}).status_code == 200


class _Caller:
    """The API mounted in-process with fixed settings, reached from a chosen address."""

    def __init__(self, settings: Settings, client: tuple[str, int]) -> None:
        self.app = Starlette(routes=[_mount(OpenAIApi(ApiState(), lambda: settings))])
        self.transport = httpx.ASGITransport(app=self.app, client=client)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport,
                                         base_url="http://127.0.0.1:8501") as client:
                return await client.get(path, **kwargs)
        return asyncio.run(go())


def _mount(app: OpenAIApi) -> Any:
    from starlette.routing import Mount

    return Mount("/v1", app=app)


@pytest.mark.parametrize(("client", "status"), [
    (("203.0.113.9", 40000), 403), (("10.0.0.2", 40000), 403), (("::ffff:10.0.0.2", 1), 403),
    (("127.0.0.1", 40000), 200), (("127.8.9.1", 40000), 200), (("::1", 40000), 200),
    (("::ffff:127.0.0.1", 1), 200),
])
def test_without_keys_only_loopback_addresses_are_served(client, status):
    response = _Caller(Settings(hf_token=None), client).get("/v1/models")
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "api_key_required"


def test_with_keys_any_address_with_the_key_is_served():
    settings = Settings(hf_token=None, api_keys=("sk-abc", "sk-def"))
    caller = _Caller(settings, ("203.0.113.9", 40000))
    assert caller.get("/v1/models").status_code == 401
    assert caller.get("/v1/models", headers={"Authorization": "Bearer sk-def"}) \
        .status_code == 200
    assert caller.get("/v1/models", headers={"Authorization": "Bearer sk-de"}) \
        .status_code == 401
    assert caller.get("/v1/models", headers={"Authorization": "Basic sk-def"}) \
        .status_code == 401


@pytest.mark.replica
def test_keys_gate_every_v1_route(keyed: Server):
    with keyed.http() as http:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": KEYS[0]},
                        {"Authorization": "Bearer " + KEYS[0] + "x"}):
            for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions"),
                                 ("GET", "/v1/anything")):
                response = http.request(method, path, headers=headers,
                                        json={"model": MAX, "messages": user("x")})
                assert response.status_code == 401, (headers, path)
                error = response.json()["error"]
                assert error["code"] == "invalid_api_key"
                assert KEYS[0] not in response.text and "nope" not in response.text
    with pytest.raises(openai.AuthenticationError):
        keyed.openai("wrong").models.list()
    for key in KEYS:  # the right keys: served, also through a proxy
        client = keyed.openai(key, default_headers={"X-Forwarded-For": "203.0.113.7"})
        assert len(client.models.list().data) == len(qwen_core.MODELS)
        question = f"keyed {tag()}"
        done = client.chat.completions.create(model=MAX, messages=user(question))
        assert done.choices[0].message.content == answer_for(question, MAX_SYSTEM)
    assert KEYS[0] not in keyed.log.read_text() and KEYS[1] not in keyed.log.read_text()


@pytest.mark.replica
def test_streams_per_key_are_limited(keyed: Server):
    one, two = keyed.openai(KEYS[0]), keyed.openai(KEYS[1])
    slow = [one.chat.completions.create(model=MAX, stream=True,
                                        messages=user(f"fault:slow:200:20 {tag()}"))
            for _ in range(2)]
    try:
        for stream in slow:
            next(iter(stream))
        with pytest.raises(openai.RateLimitError) as info:
            one.chat.completions.create(model=MAX, messages=user("one too many"))
        assert info.value.code == "too_many_streams"
        assert info.value.response.headers["retry-after"] == "1"
        question = f"the other key {tag()}"
        assert two.chat.completions.create(model=MAX, messages=user(question)) \
            .choices[0].message.content == answer_for(question, MAX_SYSTEM)
    finally:
        for stream in slow:
            stream.close()
    question = f"a slot is free again {tag()}"
    done = wait_for(lambda: _try(lambda: one.chat.completions.create(
        model=MAX, messages=user(question))), 5.0, "a stream slot freed")
    assert done.choices[0].message.content == answer_for(question, MAX_SYSTEM)


def _try(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except openai.RateLimitError:
        return None


@pytest.mark.replica
def test_cors_only_for_configured_origins(keyed: Server, api: Server):
    with keyed.http() as http:
        ok = http.options("/v1/chat/completions", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os"})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in ok.headers["access-control-allow-methods"]
        assert ok.headers["access-control-allow-headers"] == \
            "authorization, content-type, x-stainless-os"
        refused = http.options("/v1/chat/completions", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        question = f"cors {tag()}"
        real = http.post("/v1/chat/completions", headers={
            "Origin": ORIGIN, "Authorization": f"Bearer {KEYS[0]}"},
            json={"model": MAX, "messages": user(question)})
        assert real.status_code == 200 and real.headers["access-control-allow-origin"] == ORIGIN
        denied = http.get("/v1/models", headers={"Origin": ORIGIN})  # still needs the key
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == ORIGIN
        other = http.get("/v1/models", headers={"Origin": "https://evil.example",
                                                "Authorization": f"Bearer {KEYS[0]}"})
        assert "access-control-allow-origin" not in other.headers
    with api.http() as http:  # CORS off
        off = http.options("/v1/chat/completions", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
        assert off.status_code == 405 and "access-control-allow-origin" not in off.headers
        plain = http.get("/v1/models", headers={"Origin": ORIGIN})
        assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers


@pytest.mark.replica
def test_a_limit_exceeded_is_502_or_an_error_event(keyed: Server):
    """The keyed server caps answers at 2,000 characters (qwen_core's LimitExceeded)."""
    client = keyed.openai(KEYS[0])
    question = "x" * 2100
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=MAX, messages=user(question))
    assert info.value.status_code == 502 and "max_answer_chars" in info.value.message
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model=MAX, messages=user(question),
                                                    stream=True):
            seen.append(chunk.choices[0].delta.content or "")
    assert "max_answer_chars" in info.value.message and info.value.code.endswith("exceeded")
    assert 1900 < len("".join(seen)) <= 2000
    assert answer_for(question, MAX_SYSTEM).startswith("".join(seen))


# -- load -----------------------------------------------------------------------------------


@pytest.mark.replica
def test_fifty_concurrent_streams_are_each_exact(api: Server):
    n = 50
    replica = api.replicas["max"]
    mark = tag()

    async def one(client: openai.AsyncOpenAI, i: int) -> tuple[str, str]:
        question = f"load {mark} {i} " + "q" * i
        history = [{"role": "user", "content": f"u{i}"},
                   {"role": "assistant", "content": f"a{i}"}]
        stream = await client.chat.completions.create(
            model=MAX, messages=[*history, *user(question)], stream=True)
        parts = [chunk.choices[0].delta.content or "" async for chunk in stream]
        return "".join(parts), script.expected_answer(question, system=MAX_SYSTEM,
                                                      history=[[f"u{i}", f"a{i}"]])

    async def all_of_them() -> list[tuple[str, str]]:
        async with api.async_openai() as client:
            return await asyncio.gather(*(one(client, i) for i in range(n)))

    results = asyncio.run(all_of_them())
    for i, (text, want) in enumerate(results):
        assert text == want, f"stream {i}: {text[:120]!r}"
    mine = [e for e in replica.events() if e["event"] in ("start", "end")
            and f"load {mark} " in str(e.get("query", f"load {mark} "))]
    starts = {e["session"]: e["t"] for e in mine if e["event"] == "start"}
    ends = {e["session"]: e["t"] for e in replica.events()
            if e["event"] == "end" and e["session"] in starts}
    assert len(starts) == n
    edges = sorted([(starts[s], 1) for s in starts] + [(ends[s], -1) for s in ends])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    assert peak >= 10  # the replica really ran them side by side


# -- shutdown -------------------------------------------------------------------------------


@pytest.mark.replica
def test_shutdown_ends_open_streams_with_an_error_event(fake):
    server = start_server("shutdown", bed.space_urls({"Qwen/Qwen2.5-Max-Demo": fake.base_url}))
    waiting: dict[str, Any] = {}
    try:
        question = f"fault:slow:400:25 {tag()}"

        def non_streaming() -> None:
            with server.http() as http:
                waiting["response"] = http.post("/v1/chat/completions", json={
                    "model": MAX, "messages": user(f"fault:slow:400:25 {tag()}")})

        thread = threading.Thread(target=non_streaming)
        with server.http() as http, http.stream("POST", "/v1/chat/completions", json={
                "model": MAX, "messages": user(question), "stream": True}) as response:
            lines = response.iter_lines()
            for line in lines:
                if '"content":"s2 "' in line:
                    break
            thread.start()
            wait_for(lambda: len([j for j in fake.joins if j.query.startswith(
                "fault:slow:400:25")]) >= 2, 5, "both jobs started")
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            rest = list(lines)
        took = time.monotonic() - signalled
        data = [line[len("data: "):] for line in rest if line.startswith("data: ")]
        assert data and json.loads(data[-1])["error"]["code"] == "server_shutting_down"
        assert "[DONE]" not in data and took < 5
        thread.join(10)
        assert waiting["response"].status_code == 503
        assert waiting["response"].json()["error"]["code"] == "server_shutting_down"
        assert server.process.wait(timeout=15) is not None
        job = next(j for j in fake.joins if j.query == question)
        assert any(c.get("event_id") == job.event_id for c in fake.cancels)
    finally:
        stop_process(server.process)


# -- in-process: what no Space does on cue ------------------------------------------------


def run_stubbed(monkeypatch: pytest.MonkeyPatch, events: list[Any], body: dict[str, Any],
                ) -> httpx.Response:
    """POST ``body`` to the API in-process, its Space replaced by ``events``."""
    closed: list[bool] = []

    async def stub(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        try:
            for event in events:
                if isinstance(event, BaseException):
                    raise event
                if isinstance(event, float):  # the Space is silent this long
                    await asyncio.sleep(event)
                    continue
                yield event
        finally:
            closed.append(True)

    monkeypatch.setattr(qwen_core, "astream_events", stub)
    app = Starlette(routes=[_mount(OpenAIApi(ApiState(), lambda: Settings(hf_token=None)))])

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await c.post("/v1/chat/completions", json=body)

    response = asyncio.run(go())
    assert closed == [True]
    return response


def chat(stream: bool, **extra: Any) -> dict[str, Any]:
    return {"model": MAX, "messages": user("q"), "stream": stream, **extra}


def test_a_rewrite_that_extends_the_streamed_text_streams_the_rest(monkeypatch):
    events = [QueueStatus(0, 1, None), TextDelta("Hello"), TextReplaced("Hello, world"),
              TextDelta("!"), Done("Hello, world!")]
    ds = deltas(sse_events(run_stubbed(monkeypatch, events, chat(True)).text))
    assert "".join(d.get("content") or "" for d in ds) == "Hello, world!"


def test_a_rewrite_of_streamed_text_ends_the_stream_with_an_error(monkeypatch):
    events = [TextDelta("Helo"), TextReplaced("Hello"), Done("Hello")]
    response = run_stubbed(monkeypatch, events, chat(True))
    evs = sse_events(response.text)
    assert response.status_code == 200
    assert "".join(d.get("content") or "" for d in deltas(evs[:-1])) == "Helo"
    assert json.loads(evs[-1])["error"]["code"] == "answer_rewritten"
    done = run_stubbed(monkeypatch, events, chat(False))  # stream=false: the final text
    assert done.json()["choices"][0]["message"]["content"] == "Hello"


def test_a_rewrite_before_anything_was_shown_is_just_text(monkeypatch):
    events = [QueueStatus(0, 1, None), TextReplaced("Final"), TextDelta("!"), Done("Final!")]
    ds = deltas(sse_events(run_stubbed(monkeypatch, events, chat(True)).text))
    assert "".join(d.get("content") or "" for d in ds) == "Final!"


def test_reasoning_rewrites_and_a_stop_in_a_rewrite(monkeypatch):
    events = [ReasoningDelta("think"), ReasoningReplaced("think more"),
              ReasoningReplaced("rethought"), TextDelta("a"), TextReplaced("ab STOP c"),
              TextDelta(" d"), Done("ab STOP c d", "rethought")]
    ds = deltas(sse_events(run_stubbed(monkeypatch, events, chat(True, stop="STOP")).text))
    assert "".join(d.get("reasoning_content") or "" for d in ds) == "think more"
    assert "".join(d.get("content") or "" for d in ds) == "ab "
    done = run_stubbed(monkeypatch, events, chat(False, stop="STOP")).json()
    assert done["choices"][0]["message"]["content"] == "ab "
    assert done["choices"][0]["message"]["reasoning_content"] == "rethought"


def test_a_long_wait_starts_the_stream_and_keeps_it_alive(monkeypatch):
    """Queued longer than HEADER_WAIT: the response starts (role chunk) and comment lines
    keep it alive until the answer; a failure after that is an error event."""
    monkeypatch.setattr(api_module, "HEADER_WAIT", 0.1)
    monkeypatch.setattr(api_module, "KEEPALIVE", 0.1)
    events = [QueueStatus(3, 5, None), 0.45, TextDelta("hi"), Done("hi")]
    response = run_stubbed(monkeypatch, events, chat(True))
    assert response.status_code == 200
    assert response.text.count(": keep-alive\n\n") >= 2
    ds = deltas(sse_events(response.text))
    assert ds[0] == {"role": "assistant", "content": "", "refusal": None}
    assert [d.get("content") for d in ds[1:]] == ["hi", None]
    failed = run_stubbed(monkeypatch, [QueueStatus(0, 1, None), 0.25, qwen_core.QueueFull(
        "queue is full", space_id="S/x")], chat(True))
    evs = sse_events(failed.text)
    assert failed.status_code == 200 and json.loads(evs[-1])["error"]["code"] == \
        "space_queue_full"


def test_a_space_error_before_text_is_an_http_status_in_process(monkeypatch):
    failure = qwen_core.RateLimited("slow down", retry_after=7.2, space_id="S/x")
    response = run_stubbed(monkeypatch, [QueueStatus(0, 1, None), failure], chat(True))
    assert response.status_code == 429 and response.headers["retry-after"] == "8"
    assert response.json()["error"]["message"] == "[S/x] slow down"


def test_another_space_error_is_502(monkeypatch):
    class LimitExceeded(qwen_core.SpaceError):
        pass

    response = run_stubbed(monkeypatch, [LimitExceeded("too long")], chat(False))
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "space_limit_exceeded"


# -- the stop cutter ------------------------------------------------------------------------


def cut(stops: tuple[str, ...], pieces: list[str]) -> tuple[list[str], bool]:
    cutter = StopCutter(stops)
    out = []
    for piece in pieces:
        out.append(cutter.feed(piece))
        if cutter.hit:
            return out, True
    out.append(cutter.flush())
    return out, False


@pytest.mark.parametrize(("stops", "pieces", "want", "hit"), [
    (("END",), ["abc", "dEN", "D more"], "abcd", True),
    (("END",), ["abc", "dEN", "d"], "abcdENd", False),
    (("END",), ["E", "N", "D"], "", True),
    (("a\nb", "xyz"), ["1a", "\n", "bc"], "1", True),
    (("xyz", "yz!"), ["axy", "z!"], "a", True),  # the earliest match wins
    (("aab",), ["aaaa", "aaab"], "aaaaa", True),
    (("é👍",), ["caf", "é", "👍 ok"], "caf", True),
])
def test_stop_cutter(stops, pieces, want, hit):
    out, was_hit = cut(stops, pieces)
    assert "".join(out) == want and was_hit == hit


def test_stop_cutter_holds_back_only_a_possible_start():
    cutter = StopCutter(("STOP",))
    assert cutter.feed("hello S") == "hello "
    assert cutter.feed("T") == ""
    assert cutter.feed("ay") == "STay"
    assert cutter.feed("no S in it") == "no S in it"


def test_stop_cutter_is_linear_on_hostile_text():
    stops = ("a" * 255 + "b", "a" * 254 + "c", "a" * 200 + "d", "a" * 100 + "e")
    cutter = StopCutter(stops)
    started = time.process_time()
    total = 0
    for _ in range(20_000):
        total += len(cutter.feed("aaa"))
    assert time.process_time() - started < 5.0
    assert total == 60_000 - len(cutter.pending) and not cutter.hit


def test_nodelay_listeners_turns_nagle_off_for_accepted_connections():
    """Streamlit binds its listener as socket.socket(family) (protocol 0), which asyncio
    leaves with Nagle on; the lifespan sets TCP_NODELAY on the listener, and accepted
    connections inherit it."""
    listener = socket.socket(family=socket.AF_INET)  # as Streamlit's _bind_socket does
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert api_module.nodelay_listeners() >= 1
        with socket.create_connection(listener.getsockname()) as client:
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert client.fileno() >= 0
    finally:
        listener.close()


def test_api_module_exports():
    assert callable(api_module.lifespan) and api_module.routes()[0].path == "/v1"
