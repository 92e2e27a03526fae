"""Hostile Spaces and hostile input, the qwen_core side (issue #13), with respx and pure
tests: what a user notices — the exact error class and message, no token sent off-host,
the partial answer kept, a terminal that no Space can drive.

- ``/config``'s ``api_prefix`` cannot steer a request (or the token) to another host or
  port, and a config naming one is not cached; every URL is re-checked when built.
- Absurd ``/config``, join and queue replies (unhashable ids, deep nesting, numbers too long
  to convert or to add to) end in ``SpaceAPIChanged`` (or the error they really are), never
  a TypeError, RecursionError, OverflowError or ValueError traceback.
- ``Limits``: answer size, reply size and line size end the turn with ``LimitExceeded``
  naming the limit and its value, keep the partial answer, cancel the Space's job, and
  stop reading past the cap.
- ``QWEN_SPACE_URLS`` / ``base_url`` are validated with credentials redacted;
  ``redact_url`` never raises; errors never show a configured password.
- The CLI strips terminal control characters from everything it prints and never dies on
  the terminal's encoding.
"""

from __future__ import annotations

import dataclasses
import io
import json
import random
import re
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from httpx_sse import EventSource
from hypothesis import given, settings
from hypothesis import strategies as st

import qwen_core
from qwen_core import (
    GenerationError,
    InvalidRequest,
    LimitExceeded,
    Limits,
    QueueFull,
    RateLimited,
    SpaceAPIChanged,
    SpaceError,
    SpaceUnavailable,
    queue_api,
    redact_url,
)
from qwen_core.cli import main
from qwen_core.events import (
    Done,
    QueueStatus,
    ReasoningDelta,
    ReasoningReplaced,
    Status,
    TextDelta,
    TextReplaced,
)
from qwen_core.spaces.base import Layout
from qwen_core.sse import SSEReader

from .conftest import PREFIX, answer_stream, max_config, sse

MODEL = "qwen-2.5-max"
SPACE_ID = "Qwen/Qwen2.5-Max-Demo"
TOKEN = "hf_SeCrEt0123456789abcdefTOKEN"
MSGS = [{"role": "user", "content": "q"}]
BASE = "http://127.0.0.1:6000"  # the port a "1" prefix would turn into 60001


def run(**kwargs: Any) -> tuple[list[str], BaseException | None]:
    """One turn through stream_chat: the deltas and the error (a SpaceError only)."""
    got: list[str] = []
    try:
        for delta in qwen_core.stream_chat(MODEL, MSGS, base_url=BASE, **kwargs):
            got.append(delta)
    except SpaceError as exc:
        return got, exc
    return got, None


def requests_of(router: respx.MockRouter) -> list[tuple[str, int | None, str, str | None]]:
    return [(c.request.url.host, c.request.url.port, c.request.url.path,
             c.request.headers.get("authorization")) for c in router.calls]


def mock_answer(router: respx.MockRouter, prefix: str = PREFIX, tokens: Any = ("ha", "ha"),
                config: Any = None) -> dict[str, respx.Route]:
    return {
        "config": router.get(f"{BASE}/config").mock(
            return_value=httpx.Response(200, json=config or max_config(prefix=prefix))),
        "join": router.post(f"{BASE}{prefix}/queue/join").mock(
            return_value=httpx.Response(200, json={"event_id": "e1"})),
        "data": router.get(f"{BASE}{prefix}/queue/data").mock(
            return_value=sse(*answer_stream("e1", list(tokens)))),
        "cancel": router.post(f"{BASE}{prefix}/cancel").mock(
            return_value=httpx.Response(200, json={"success": True})),
    }


# -- 1. api_prefix cannot move requests (or the token) -------------------------------------

HOSTILE_PREFIXES = [
    ".evil.example",        # -> http://127.0.0.1:6000.evil.example... / host change
    ":8443",                # port change
    "1",                    # 127.0.0.1:6000 + "1" = port 60001
    "@evil.example",        # userinfo trick: the host becomes evil.example
    "//evil.example",
    "/..", "/a/../../b", "/./a",
    "/a?x=1", "/a#x", "/a:8443", "/a@b",
    "\\evil.example", "/a\\b",
    " /a", "/a b", "/a\t", "/a\x00", "/a\n", "/a\x7f", "/a\u2028",
    "%2e%2e", "/%2e%2e/x", "/a%2fb",
    "gradio_api",           # not a path
    "/" + "a" * 300,        # absurdly long
    5, ["/gradio_api"], {"p": "/x"}, True,
]


@pytest.mark.parametrize("prefix", HOSTILE_PREFIXES, ids=repr)
def test_hostile_api_prefix_is_space_api_changed_and_nothing_leaves_the_base(prefix):
    config = max_config()
    config["api_prefix"] = prefix
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        router.get(f"{BASE}/config").mock(return_value=httpx.Response(200, json=config))
        router.route().mock(return_value=httpx.Response(200, json={"event_id": "e1"}))
        got, err = run(hf_token=TOKEN)
        assert type(err) is SpaceAPIChanged, err
        msg = str(err)
        assert msg.startswith(f"[{SPACE_ID}] the Space's /config gives the API prefix ")
        shown = repr(prefix[:100]) if isinstance(prefix, str) else (
            repr(prefix) if isinstance(prefix, (int, bool)) else f"a JSON {type(prefix).__name__}")
        assert shown in msg and "\n" not in msg
        # only /config was requested, on the base URL's host and port
        assert requests_of(router) == [("127.0.0.1", 6000, "/config", f"Bearer {TOKEN}")]
        assert queue_api.config_cache == {}  # the bad layout is not cached...
        run(hf_token=TOKEN)
        assert [c.request.url.path for c in router.calls] == ["/config", "/config"]  # ...ever


@pytest.mark.parametrize("prefix", ["", "/", "/gradio_api", "/gradio_api/",
                                    "/proxy/7860/gradio_api", "/a.b~c-d_e/F9"])
def test_plain_api_prefixes_still_work(prefix):
    clean = prefix.rstrip("/")
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        mock_answer(router, clean, config=max_config(prefix=prefix))
        got, err = run(hf_token=TOKEN)
        assert err is None and "".join(got) == "haha"
        assert {(h, p, a) for h, p, _, a in requests_of(router)} == {
            ("127.0.0.1", 6000, f"Bearer {TOKEN}")}


@pytest.mark.parametrize("prefix", [".evil.example", ":8443", "1", "@evil.example",
                                    "@127.0.0.1:6001", "/a?host=x"])
def test_a_layout_whose_urls_leave_the_base_is_refused_when_the_url_is_built(prefix):
    """Defence in depth: even a layout that skipped discovery's check (here planted in the
    cache) cannot send a request to another scheme, host, port or userinfo."""
    queue_api.config_cache[(BASE, SPACE_ID)] = Layout(
        protocol="sse_v3", api_prefix=prefix, fn_index=0)
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        router.route().mock(return_value=httpx.Response(200, json={"event_id": "e1"}))
        got, err = run(hf_token=TOKEN)
        assert all(h == "127.0.0.1" and p == 6000 for h, p, _, _ in requests_of(router))
        if prefix == "/a?host=x":  # stays on the host: a wrong path, not a leak
            return
        assert router.calls.call_count == 0
    assert type(err) is SpaceAPIChanged, err
    assert "refusing to request" in str(err) and "leaves 'http://127.0.0.1:6000'" in str(err)


def test_redirect_free_url_check_keeps_credentials_out_of_the_message():
    base = "http://user:hunter2@127.0.0.1:6000"
    queue_api.config_cache[(base, SPACE_ID)] = Layout(
        protocol="sse_v3", api_prefix=":1", fn_index=0)
    with respx.mock(assert_all_mocked=True, assert_all_called=False):
        with pytest.raises(SpaceAPIChanged) as info:
            list(qwen_core.stream_chat(MODEL, MSGS, base_url=base))
    assert "hunter2" not in str(info.value) and "***@127.0.0.1:6000" in str(info.value)


# -- 2. absurd Space data: SpaceAPIChanged, never a traceback ------------------------------


def _deep(n: int = 100_000) -> str:
    return "[" * n + "]" * n


def _config_with(**change: Any) -> dict[str, Any]:
    config = max_config()
    config.update(change)
    return config


def _raw_config(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "application/json"}, content=body)


def _unhashable_component() -> dict[str, Any]:
    config = max_config()
    config["components"][0]["id"] = [1]
    return config


def _unhashable_input() -> dict[str, Any]:
    config = max_config()
    config["dependencies"][0]["inputs"] = [[1], 2, 3]
    return config


BAD_CONFIGS = {
    "component id [1]": lambda: httpx.Response(200, json=_unhashable_component()),
    "input id [1]": lambda: httpx.Response(200, json=_unhashable_input()),
    "components: 5": lambda: httpx.Response(200, json=_config_with(components=5)),
    "dependencies: 5": lambda: httpx.Response(200, json=_config_with(dependencies=5)),
    "nested 100,000 deep": lambda: _raw_config(_deep().encode()),
    "version nested deep": lambda: _raw_config(
        b'{"version": ' + _deep(100_000).encode() + b', "protocol": "sse_v3"}'),
    "version 5,000 digits": lambda: _raw_config(
        b'{"version": ' + b"7" * 5000 + b', "protocol": "sse_v3"}'),
    "protocol a list": lambda: httpx.Response(200, json=_config_with(protocol=[["sse_v3"]])),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_absurd_config_is_space_api_changed_with_a_readable_message(case):
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        router.get(f"{BASE}/config").mock(return_value=BAD_CONFIGS[case]())
        router.route().mock(return_value=httpx.Response(200, json={"event_id": "e1"}))
        got, err = run()
        assert [c.request.url.path for c in router.calls] == ["/config"]
    assert type(err) is SpaceAPIChanged, repr(err)
    msg = str(err)
    assert msg.startswith(f"[{SPACE_ID}] the Space") and "\n" not in msg and len(msg) < 600
    assert queue_api.config_cache == {}


def test_component_props_of_the_wrong_type_are_ignored_and_the_answer_streams():
    config = max_config()
    for comp in config["components"]:
        comp["props"] = [1, 2]  # dict([1, 2]) would raise TypeError
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        mock_answer(router, config=config)
        got, err = run()
    assert err is None and "".join(got) == "haha"


JOIN_REPLIES = {
    "200 nested deep": (200, _deep().encode(), SpaceAPIChanged, "no event_id"),
    "503 nested deep": (503, _deep().encode(), QueueFull, "queue unavailable"),
    "429 nested deep": (429, _deep().encode(), RateLimited, "rate limiting"),
    "event_id a list": (200, b'{"event_id": ["e1"]}', SpaceAPIChanged, "no usable event_id"),
    "event_id an object": (200, b'{"event_id": {"a": 1}}', SpaceAPIChanged, "no usable"),
    "event_id a number": (200, b'{"event_id": 7}', SpaceAPIChanged, "no usable event_id"),
    "event_id 1 MB": (200, b'{"event_id": "' + b"e" * 1_000_000 + b'"}', SpaceAPIChanged,
                      "no usable event_id"),
    "200 int of 5,000 digits": (200, b'{"event_id": ' + b"9" * 5000 + b"}", SpaceAPIChanged,
                                "no event_id"),
    "503 detail nested": (503, b'{"detail": ' + _deep(500).encode() + b"}", QueueFull,
                          "a JSON list"),
}


@pytest.mark.parametrize("case", list(JOIN_REPLIES))
def test_absurd_join_reply_is_the_matching_space_error(case, monkeypatch):
    status, body, kind, words = JOIN_REPLIES[case]
    monkeypatch.setattr(queue_api, "MAX_RATE_RETRIES", 0)  # no waiting on the 429
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        routes = mock_answer(router)
        routes["join"].mock(return_value=httpx.Response(
            status, headers={"content-type": "application/json"}, content=body))
        got, err = run()
    assert type(err) is kind, repr(err)
    assert words in str(err) and len(str(err)) < 1200 and "\n" not in str(err)
    assert not routes["data"].called


def test_retry_after_with_an_absurd_date_is_rate_limited_not_overflow(monkeypatch):
    monkeypatch.setattr(queue_api, "MAX_RATE_RETRIES", 0)
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        mock_answer(router)["join"].mock(return_value=httpx.Response(
            429, headers={"retry-after": "Wed, 21 Oct 99999999999999999999 07:28:00 GMT"},
            json={"detail": "slow down"}))
        got, err = run()
    assert type(err) is RateLimited and err.retry_after is None, repr(err)


def test_queue_numbers_too_big_for_a_float_or_a_str_are_dropped_not_raised():
    # rank_eta 10**400 overflows float(); rank 10**4300 - 1 prints, rank + 1 could not
    huge_rank = "9" * 4300
    body = (
        'data: {"msg": "estimation", "event_id": "e1", "rank": ' + huge_rank
        + ', "queue_size": ' + huge_rank + ', "rank_eta": 1' + "0" * 400 + "}\n\n"
        + 'data: {"msg": "process_starts", "event_id": "e1", "eta": 1' + "0" * 400 + "}\n\n"
        + "".join(f"data: {json.dumps(m)}\n\n" for m in answer_stream("e1", ["ok"])[1:])
    )
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        mock_answer(router)["data"].mock(return_value=httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=body.encode()))
        events = list(qwen_core.stream_events(MODEL, MSGS, base_url=BASE))
    assert events[0] == QueueStatus(rank=None, queue_size=None, eta=None)
    assert isinstance(events[-1], Done) and events[-1].text == "ok"


# -- 3. limits -------------------------------------------------------------------------------


def test_limits_defaults_and_validation():
    limits = Limits()
    assert (limits.max_answer_chars, limits.max_turn_seconds, limits.max_config_bytes,
            limits.max_line_bytes) == (10_000_000, 1800.0, 8 * 1024 * 1024, 64 * 1024 * 1024)
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_answer_chars = 1  # type: ignore[misc]
    for bad in ({"max_answer_chars": 0}, {"max_turn_seconds": -1.0},
                {"max_config_bytes": "big"}, {"max_line_bytes": True}):
        with pytest.raises(InvalidRequest, match=next(iter(bad))):
            Limits(**bad)
    with pytest.raises(InvalidRequest, match="qwen_core.Limits"):
        qwen_core.stream_chat(MODEL, MSGS, base_url=BASE, limits={"max_answer_chars": 5})
    assert issubclass(LimitExceeded, SpaceError) and qwen_core.LimitExceeded is LimitExceeded


def test_answer_limit_ends_the_turn_keeps_the_partial_and_cancels_the_job():
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        routes = mock_answer(router, tokens=["ab"] * 10)
        got, err = run(limits=Limits(max_answer_chars=5))
    assert type(err) is LimitExceeded, repr(err)
    assert (err.limit, err.value) == ("max_answer_chars", 5)
    assert str(err) == (f"[{SPACE_ID}] the answer grew past the limit max_answer_chars=5 "
                        "characters; stopped here, and the Space's job cancelled")
    assert got == ["ab", "ab"] and err.partial == "ababab"  # all the answer received
    assert routes["cancel"].called
    assert json.loads(routes["cancel"].calls.last.request.content)["event_id"] == "e1"


def test_a_final_answer_past_the_limit_is_refused_without_cancelling_a_finished_job():
    msgs = answer_stream("e1", ["ab"])
    msgs[-2]["output"]["data"][1][-1][1] = "x" * 50  # process_completed: a 50-char answer
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        routes = mock_answer(router)
        routes["data"].mock(return_value=sse(*msgs))
        got, err = run(limits=Limits(max_answer_chars=10))
    assert type(err) is LimitExceeded and err.limit == "max_answer_chars"
    assert "cancelled" not in str(err) and not routes["cancel"].called
    assert got == ["ab"] and err.partial == "x" * 50


def test_line_limit_ends_the_turn_with_the_partial_and_cancels():
    msgs = answer_stream("e1", ["ok", "y" * 5000, "z"])
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        routes = mock_answer(router)
        routes["data"].mock(return_value=sse(*msgs))
        got, err = run(limits=Limits(max_line_bytes=2000))
    assert type(err) is LimitExceeded, repr(err)
    assert (err.limit, err.value) == ("max_line_bytes", 2000)
    assert "max_line_bytes=2,000 bytes" in str(err)
    assert got == ["ok"] and err.partial == "ok"
    assert routes["cancel"].called


class Pulled:
    """An endless-looking body that counts the chunks read from it."""

    def __init__(self, chunk: bytes, first: bytes = b"", count: int = 2000) -> None:
        self.chunk, self.first, self.count, self.pulled = chunk, first, count, 0

    def __iter__(self) -> Iterator[bytes]:
        if self.first:
            yield self.first
        for _ in range(self.count):
            self.pulled += 1
            yield self.chunk


def test_config_is_read_with_a_byte_cap_and_reading_stops_past_it():
    body = Pulled(b" " * 1000, first=b'{"version": "5.50.0", "pad": "')
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        routes = mock_answer(router)
        routes["config"].mock(return_value=httpx.Response(
            200, headers={"content-type": "application/json"}, content=body))
        got, err = run(limits=Limits(max_config_bytes=10_000))
    assert type(err) is LimitExceeded, repr(err)
    assert (err.limit, err.value) == ("max_config_bytes", 10_000)
    assert str(err) == (f"[{SPACE_ID}] the Space's /config answer grew past the limit "
                        "max_config_bytes=10,000 bytes")
    assert body.pulled <= 11  # stopped at the cap, not at the end of the body
    assert not routes["join"].called and queue_api.config_cache == {}


def test_config_with_a_declared_length_past_the_cap_is_not_read_at_all():
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        routes = mock_answer(router)
        routes["config"].mock(return_value=httpx.Response(
            200, headers={"content-type": "application/json"},
            content=json.dumps(max_config()).encode() + b" " * 20_000))
        got, err = run(limits=Limits(max_config_bytes=10_000))
    assert type(err) is LimitExceeded and err.limit == "max_config_bytes"


def test_join_reply_is_read_with_the_same_byte_cap():
    body = Pulled(b" " * 1000, first=b'{"event_id": "e1", "pad": "')
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        routes = mock_answer(router)
        routes["join"].mock(return_value=httpx.Response(
            200, headers={"content-type": "application/json"}, content=body))
        got, err = run(limits=Limits(max_config_bytes=10_000))
    assert type(err) is LimitExceeded and "queue/join answer" in str(err)
    assert body.pulled <= 11 and not routes["data"].called


def test_event_stream_line_is_read_with_a_cap_and_reading_stops_past_it():
    first = b"".join(f"data: {json.dumps(m)}\n\n".encode()
                     for m in answer_stream("e1", ["ok"])[:3])  # ok delivered
    body = Pulled(b"x" * 1000, first=first + b"data: ")
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        routes = mock_answer(router)
        routes["data"].mock(return_value=httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=body))
        got, err = run(limits=Limits(max_line_bytes=10_000))
    assert type(err) is LimitExceeded and err.limit == "max_line_bytes", repr(err)
    assert got == ["ok"] and err.partial == "ok" and body.pulled <= 11
    assert routes["cancel"].called


def test_default_line_limit_admits_the_1m_spaces_final_message():
    """The 1M Space's process_completed echoes up to 10,000,000 input characters plus the
    answer: 10M CJK characters are 30 MB of UTF-8, within the default 64 MiB line."""
    from qwen_core.spaces.qwen25_1m import Qwen25_1M

    text = "文" * Qwen25_1M.max_input_chars  # 30,000,000 bytes as UTF-8
    line = b'data: {"msg": "process_completed", "output": {"data": ["' + text.encode() + (
        b'", "' + ("答" * 1_000_000).encode() + b'"]}}\n\n')
    reader = SSEReader(Limits().max_line_bytes)
    events = []
    for i in range(0, len(line), 65536):
        events += reader.feed(line[i:i + 65536])
    assert len(events) == 1 and len(events[0].data) > Qwen25_1M.max_input_chars


SSE_STREAM = (
    b'data: {"msg": "a"}\r\n\r\n'
    b"event: heartbeat\rdata: {}\r\r"
    b": keep-alive comment\n\n"
    b"data: h\xc3\xa9llo \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x91\x8d\n"
    b"data: second line\n\n"
    b"id: 7\nretry: 100\ndata: x\n\n"
    b"data: unterminated"
)


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(SSE_STREAM) - 1), max_size=20))
def test_bounded_reader_decodes_like_httpx_sse_however_the_bytes_are_split(cuts):
    reference = list(EventSource(httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=SSE_STREAM)).iter_sse())
    reader = SSEReader(1000)
    points = [0, *sorted(set(cuts)), len(SSE_STREAM)]
    events = []
    for start, end in zip(points, points[1:], strict=False):
        events += reader.feed(SSE_STREAM[start:end])
    assert [(e.event, e.data, e.id, e.retry) for e in events] == [
        (e.event, e.data, e.id, e.retry) for e in reference]


def test_bounded_reader_caps_a_line_an_event_and_not_comments():
    with pytest.raises(LimitExceeded, match="max_line_bytes=100 bytes"):
        list(SSEReader(100).feed(b"data: " + b"x" * 200))  # one unfinished line
    with pytest.raises(LimitExceeded):
        list(SSEReader(100).feed(b"data: " + b"x" * 200 + b"\n\n"))  # one complete line
    with pytest.raises(LimitExceeded):  # one event of many short data lines
        list(SSEReader(100).feed(b"data: xxxxxxxxxx\n" * 20))
    reader = SSEReader(100)  # the events before the long line are delivered first
    got = []
    with pytest.raises(LimitExceeded):
        for event in reader.feed(b"data: a\n\ndata: b\n\ndata: " + b"x" * 200 + b"\n\n"):
            got.append(event.data)
    assert got == ["a", "b"]
    reader = SSEReader(100)
    for _ in range(50):  # many events, and comment lines, each short: fine
        assert list(reader.feed(b": ping\n")) == []
        assert [e.data for e in reader.feed(b"data: " + b"y" * 80 + b"\n\n")] == ["y" * 80]


# -- 4. URLs: validated, credentials redacted ------------------------------------------------


@pytest.mark.parametrize("value", [
    "Owner/X=http://[::1",
    "Owner/X=http://user:hunter2@[::1",
    "Owner/X=http://user:hunter2@host:99999",
    "Owner/X=http://user:hunter2@host:abc",
    "Owner/X=http://user:hunter2@host:0",
    "Owner/X=ftp://user:hunter2@host",
    "Owner/X=http://user:hunter2@",
    "Owner/X=http:///path",
    "Owner/X=host:7860",
    "Owner/X=http://user:hun/ter2@host",
    "http://user:hunter2@host",  # no Space id: the whole entry is shown redacted
    "http://user:p=hunter2@host",
])
def test_qwen_space_urls_are_validated_with_credentials_redacted(value):
    with pytest.raises(InvalidRequest) as info:
        qwen_core.parse_space_urls(value)
    msg = str(info.value)
    assert "hunter2" not in msg and "ter2" not in msg
    assert msg.startswith("QWEN_SPACE_URLS entry")
    if "user:" in value:
        assert "***@" in msg


def test_a_bad_qwen_space_urls_entry_is_invalid_request_when_streaming(monkeypatch):
    monkeypatch.setenv("QWEN_SPACE_URLS", f"{SPACE_ID}=http://[::1")
    with pytest.raises(InvalidRequest, match=r"\[::1"):
        qwen_core.stream_chat(MODEL, MSGS)


def test_a_mapping_of_space_urls_is_validated_too():
    assert qwen_core.parse_space_urls({" Owner/X ": " http://127.0.0.1:7861/ "}) == {
        "Owner/X": "http://127.0.0.1:7861"}
    with pytest.raises(InvalidRequest, match=r"\*\*\*@") as info:
        qwen_core.parse_space_urls({"Owner/X": "http://u:hunter2@[::1"})
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("base", ["http://[::1", "http://u:hunter2@h:70000", "file:///etc",
                                  "http://", "javascript:alert(1)"])
def test_a_bad_base_url_is_invalid_request_before_anything_is_sent(base):
    with pytest.raises(InvalidRequest) as info:
        qwen_core.stream_chat(MODEL, MSGS, base_url=base)
    assert "hunter2" not in str(info.value)


def test_good_urls_pass_unchanged():
    assert qwen_core.parse_space_urls(
        "A/B=http://127.0.0.1:7861/, C/D.e_f=https://u:p@x-y.hf.space,G/H=http://[::1]:80"
    ) == {"A/B": "http://127.0.0.1:7861", "C/D.e_f": "https://u:p@x-y.hf.space",
          "G/H": "http://[::1]:80"}


@pytest.mark.parametrize(("url", "shown"), [
    ("http://user:hunter2@host:1/x", "http://***@host:1/x"),
    ("https://user@host", "https://***@host"),
    ("http://a@b@host/p", "http://***@host/p"),
    ("http://user:hun/ter2@host", "http://***@host"),
    ("http://user:hun?ter2@host", "http://***@host"),
    ("http://user:hun#ter2@host", "http://***@host"),
    ("user:hunter2@host:80", "***@host:80"),
    ("//user:hunter2@host", "//***@host"),
    ("http://user:hunter2@[::1", "http://***@[::1"),
    ("http://host/path/@name", "http://host/path/@name"),
    ("https://host:8443/@me", "https://host:8443/@me"),
    ("http://[::1]:80/@x", "http://[::1]:80/@x"),
    ("http://127.0.0.1:7861", "http://127.0.0.1:7861"),
    ("", ""),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.none(), st.integers()))
def test_redact_url_never_raises(value):
    assert isinstance(redact_url(value), str)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
    user=st.text(alphabet=st.characters(blacklist_characters="@/?#\\"), max_size=8),
    secret=st.text(alphabet=st.characters(blacklist_characters="@"), min_size=1, max_size=12),
    host=st.sampled_from(["host", "127.0.0.1:7860", "[::1]", "x.hf.space:443", ""]),
    path=st.sampled_from(["", "/", "/p/q", "?a=b", "#f"]),
)
def test_redact_url_never_shows_a_password(scheme, user, secret, host, path):
    marker = "S3CR3T" + secret
    url = f"{scheme}://{user}:{marker}@{host}{path}" if scheme else f"{user}:{marker}@{host}"
    assert "S3CR3T" not in redact_url(url)


def test_errors_show_the_base_url_without_its_password():
    base = "http://user:hunter2@127.0.0.1:6000"
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        router.get(f"{BASE}/config").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(SpaceUnavailable) as info:
            list(qwen_core.stream_chat(MODEL, MSGS, base_url=base))
    assert str(info.value) == (f"[{SPACE_ID}] cannot connect to http://***@127.0.0.1:6000 "
                               "(ConnectError); the Space may be down")
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        router.get(f"{BASE}/config").mock(side_effect=httpx.ProxyError(
            "proxy http://puser:hunter2@proxy.local:8080 refused"))
        with pytest.raises(SpaceUnavailable) as info:
            list(qwen_core.stream_chat(MODEL, MSGS, base_url=base))
    assert "hunter2" not in str(info.value) and "http://***@proxy.local:8080" in str(info.value)
    endpoint = queue_api.prepare(MODEL, MSGS, base_url=base).endpoint
    assert "hunter2" not in repr(endpoint)


# -- 5. the CLI: nothing from a Space drives the terminal ------------------------------------

# every character a terminal may act on, but \t and \n
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
NASTY = [
    "Hi \x1b]0;pwned title\x07",          # OSC: window title
    "\x1b]52;c;ZXZpbA==\x07ok",           # OSC 52: write the clipboard
    " \x1b[2J\x1b[31mred",                # CSI: clear screen, colour
    "\x9b31m c1",                         # one-byte CSI
    " end\x1b",                           # ESC split across two deltas...
    "]0;joined\x07!",                     # ...cannot join into a sequence
    "\r\x08\x7f\x85\x00 tab\tnl\n",
]


def _cli(router: respx.MockRouter, msgs: list[dict[str, Any]], *extra: str) -> int:
    mock_answer(router)["data"].mock(return_value=sse(*msgs))
    return main(["q", "--model", MODEL, "--base-url", BASE, *extra])


@respx.mock
def test_cli_strips_control_characters_from_the_answer(capsys):
    assert _cli(respx.mock, answer_stream("e1", NASTY)) == 0
    out = capsys.readouterr().out
    assert CONTROL.search(out) is None
    assert out == "".join(CONTROL.sub("", t) for t in NASTY) + "\n"
    assert "]0;joined" in out  # the text stays readable, only the controls go


@respx.mock
def test_cli_strips_control_characters_from_status_and_errors(capsys):
    msgs = answer_stream("e1", ["ok"])[:3] + [
        {"msg": "log", "event_id": "e1", "log": "\x1b]0;x\x07care\x1b[2J", "level": "warning"},
        {"msg": "process_completed", "event_id": "e1", "success": False,
         "output": {"error": "bad \x1b]52;c;ZXZpbA==\x07 thing\r\x1b[1A"}},
    ]
    assert _cli(respx.mock, msgs) == 1
    captured = capsys.readouterr()
    assert CONTROL.search(captured.out + captured.err) is None
    assert "[warning: ]0;xcare[2J]\n" in captured.err
    assert "error: GenerationError: " in captured.err and "thing[1A" in captured.err


def test_cli_strips_control_characters_from_every_event_kind(monkeypatch, capsys):
    events = [QueueStatus(rank=0, queue_size=1, eta=2.0), ReasoningDelta("think\x1b]0;t\x07"),
              ReasoningReplaced("again\x1b[2J"), Status("st\x1b[1m", level="warning"),
              TextDelta("a\x1b"), TextReplaced("]0;b\x07"), TextDelta("\x9bc"),
              Done(text="done", reasoning="")]

    class Fake:
        def __enter__(self) -> Iterator[Any]:
            return iter(events)

        def __exit__(self, *exc: object) -> None:
            pass

    monkeypatch.setattr("qwen_core.cli.stream_events", lambda *a, **k: Fake())
    assert main(["q", "--show-reasoning"]) == 0
    captured = capsys.readouterr()
    assert CONTROL.search(captured.out + captured.err) is None
    assert captured.out == "a\n[the Space rewrote its answer]\n]0;bc\n"
    assert "think]0;t" in captured.err and "[warning: st[1m]" in captured.err


@pytest.mark.parametrize(("encoding", "token", "shown"), [
    ("utf-8", "a\ud800b", "a?b"),      # a lone surrogate (JSON "\ud800") on a UTF-8 terminal
    ("ascii", "你好 ok", "?? ok"),     # CJK on an ASCII (LANG=C) terminal
])
def test_cli_never_tracebacks_on_the_terminals_encoding(monkeypatch, encoding, token, shown):
    out = io.TextIOWrapper(io.BytesIO(), encoding=encoding, errors="strict")
    monkeypatch.setattr(sys, "stdout", out)
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        assert _cli(router, answer_stream("e1", [token])) == 0
    out.flush()
    assert out.buffer.getvalue().decode(encoding) == shown + "\n"  # type: ignore[attr-defined]


@respx.mock
def test_cli_error_text_with_a_lone_surrogate_does_not_traceback(monkeypatch):
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    monkeypatch.setattr(sys, "stderr", err)
    msgs = answer_stream("e1", ["ok"])[:3] + [
        {"msg": "process_completed", "event_id": "e1", "success": False,
         "output": {"error": "bad \ud800 thing"}}]
    assert _cli(respx.mock, msgs) == 1
    err.flush()
    assert "bad ? thing" in err.buffer.getvalue().decode()  # type: ignore[attr-defined]


@respx.mock
def test_cli_queue_position_too_big_to_print_is_not_printed(capsys):
    body = ('data: {"msg": "estimation", "event_id": "e1", "rank": ' + "9" * 4300
            + ', "queue_size": 1}\n\n'
            + "".join(f"data: {json.dumps(m)}\n\n" for m in answer_stream("e1", ["ok"])))
    mock_answer(respx.mock)["data"].mock(return_value=httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=body.encode()))
    assert main(["q", "--model", MODEL, "--base-url", BASE]) == 0
    captured = capsys.readouterr()
    assert captured.out == "ok\n" and "queue" not in captured.err


def test_generation_error_keeps_the_spaces_words_for_the_app():
    """Sanitising is the CLI's job: the library keeps the Space's text as it came."""
    msgs = answer_stream("e1", ["ok"])[:3] + [
        {"msg": "process_completed", "event_id": "e1", "success": False,
         "output": {"error": "bad \x1b[1m thing"}}]
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        mock_answer(router)["data"].mock(return_value=sse(*msgs))
        got, err = run()
    assert type(err) is GenerationError and err.space_message == "bad \x1b[1m thing"


def test_random_stream_chunks_never_raise_anything_but_space_error():
    """Random bytes on the data stream: a SpaceError or an answer, never a traceback."""
    rng = random.Random(13)
    alphabet = b'data: {}[]",:\\\n\r\x00\xff\xc3msgevent_id' + bytes(range(32, 127))
    for _ in range(20):
        body = b"".join(
            rng.choice([b'data: {"msg": "process_generating", "event_id": "e1", ',
                        b"data: " + b"[" * rng.randint(0, 3000), b"\n\n",
                        bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))])
            for _ in range(rng.randint(1, 30)))
        with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
            mock_answer(router)["data"].mock(return_value=httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=body))
            run(limits=Limits(max_line_bytes=2000))  # raises only on a non-SpaceError


def test_a_lone_surrogate_in_a_message_is_an_invalid_request_before_anything_is_sent():
    import qwen_core

    for content in ("bad \ud800 text", [{"type": "text", "text": "x\udfff"}]):
        with pytest.raises(qwen_core.InvalidRequest, match="lone surrogate"):
            qwen_core.stream_chat("qwen-2.5-max", [{"role": "user", "content": content}],
                                  base_url="http://127.0.0.1:9")
