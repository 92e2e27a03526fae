"""The HF token's travels, and user input as data only.

- The token goes (as ``Authorization: Bearer``) to the public ``*.hf.space`` URL and to a
  base URL the user configured (``base_url=``, ``QWEN_SPACE_URLS``), on every request of a
  turn; a redirect to another host drops it (httpx strips ``Authorization`` on cross-origin
  redirects; these tests pin that).
- It is never logged (even at DEBUG), printed by the CLI (also on errors), or shown in
  error messages, tracebacks or reprs.
- User text only ever travels inside the join's ``data``; an oversized conversation is
  refused before anything is sent.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path

import httpx
import pytest
import respx

import qwen_core
from qwen_core import InvalidRequest, SpaceError
from qwen_core import queue_api as q

from .conftest import MODEL, ask
from .fake_space import FakeSpace, answer_for, config_gradio5, free_port

TOKEN = "hf_SeCrEt0123456789abcdefTOKEN"
HF_URL = "https://qwen-qwen2-5-max-demo.hf.space"
REPO = Path(__file__).resolve().parents[2]
MSGS = [{"role": "user", "content": "hi"}]


def sse(*messages: dict) -> httpx.Response:
    body = "".join(f"data: {json.dumps(m)}\n\n" for m in messages)
    return httpx.Response(200, headers={"content-type": "text/event-stream"},
                          content=body.encode())


def answer(eid: str = "e1") -> httpx.Response:
    return sse(
        {"msg": "process_starts", "event_id": eid},
        {"msg": "process_generating", "event_id": eid, "success": True,
         "output": {"data": ["", [["hi", ""]], "s"]}},
        {"msg": "process_generating", "event_id": eid, "success": True,
         "output": {"data": [[], [["append", [0, 1], "ok"]], []]}},
        {"msg": "process_completed", "event_id": eid, "success": True,
         "output": {"data": ["", [["hi", "ok"]], "s"]}},
        {"msg": "close_stream", "event_id": None},
    )


def mock_space(router: respx.MockRouter, base: str) -> None:
    router.get(f"{base}/config").mock(return_value=httpx.Response(200, json=config_gradio5()))
    router.post(f"{base}/gradio_api/queue/join").mock(
        return_value=httpx.Response(200, json={"event_id": "e1"}))
    router.get(f"{base}/gradio_api/queue/data").mock(return_value=answer())
    router.post(f"{base}/gradio_api/cancel").mock(return_value=httpx.Response(200, json={}))


def auth_by_host(router: respx.MockRouter) -> list[tuple[str, str, str | None]]:
    return [(c.request.url.host, c.request.url.path, c.request.headers.get("authorization"))
            for c in router.calls]


# -- where the token goes ------------------------------------------------------------------


@pytest.mark.parametrize("how", ["env", "argument"])
def test_token_goes_to_the_public_hf_space_on_every_request(monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("HF_TOKEN", TOKEN)
    kwargs = {"hf_token": TOKEN} if how == "argument" else {}
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        mock_space(router, HF_URL)
        assert "".join(qwen_core.stream_chat(MODEL, MSGS, **kwargs)) == "ok"
        seen = auth_by_host(router)
    assert [path for _, path, _ in seen] == [
        "/config", "/gradio_api/queue/join", "/gradio_api/queue/data"]
    assert {(host, auth) for host, _, auth in seen} == {
        ("qwen-qwen2-5-max-demo.hf.space", f"Bearer {TOKEN}")}


def test_token_goes_to_an_explicit_base_url(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    base = "http://127.0.0.1:7860"
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        mock_space(router, base)
        assert "".join(qwen_core.stream_chat(MODEL, MSGS, base_url=base)) == "ok"
        assert {auth for _, _, auth in auth_by_host(router)} == {f"Bearer {TOKEN}"}


def test_token_goes_to_a_url_configured_in_qwen_space_urls(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    base = "http://127.0.0.1:7861"
    monkeypatch.setenv("QWEN_SPACE_URLS", f"Qwen/Qwen2.5-Max-Demo={base}")
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        mock_space(router, base)
        assert "".join(qwen_core.stream_chat(MODEL, MSGS)) == "ok"
        seen = {(h, a) for h, _, a in auth_by_host(router)}
    assert seen == {("127.0.0.1", f"Bearer {TOKEN}")}


def test_no_token_no_authorization_header():
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        mock_space(router, HF_URL)
        assert "".join(qwen_core.stream_chat(MODEL, MSGS)) == "ok"
        assert {auth for _, _, auth in auth_by_host(router)} == {None}


def test_cancel_carries_the_token_only_to_the_space(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        mock_space(router, HF_URL)
        router.get(f"{HF_URL}/gradio_api/queue/data").mock(return_value=sse(
            {"msg": "process_generating", "event_id": "e1", "success": True,
             "output": {"data": ["", [["hi", "par"]], "s"]}},
            {"msg": "process_generating", "event_id": "e1", "success": True,
             "output": {"data": [[], [["append", [0, 1], "tial"]], []]}}))
        stream = qwen_core.stream_chat(MODEL, MSGS)
        assert next(stream) == "par"
        stream.close()
        last = auth_by_host(router)[-1]
    assert last == (
        "qwen-qwen2-5-max-demo.hf.space", "/gradio_api/cancel", f"Bearer {TOKEN}")


@pytest.mark.parametrize("step", ["config", "join", "data"])
@pytest.mark.parametrize("base", [HF_URL, "http://127.0.0.1:7860"])
def test_redirect_to_a_foreign_host_does_not_carry_the_token(monkeypatch, step, base):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    foreign = "https://elsewhere.example"
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        mock_space(router, base)
        mock_space(router, foreign)
        path = {"config": "/config", "join": "/gradio_api/queue/join",
                "data": "/gradio_api/queue/data"}[step]
        method = "GET" if step != "join" else "POST"
        router.route(method=method, url=f"{base}{path}").mock(return_value=httpx.Response(
            307, headers={"location": f"{foreign}{path}"}))
        try:
            "".join(qwen_core.stream_chat(MODEL, MSGS, base_url=base))
        except SpaceError:
            pass
        seen = auth_by_host(router)
    assert ("elsewhere.example", path, None) in seen  # the redirect was followed...
    for host, _, auth in seen:  # ...without the token
        assert auth == (None if host == "elsewhere.example" else f"Bearer {TOKEN}")


def test_redirect_from_hf_space_to_another_hf_host_drops_the_token_too(monkeypatch):
    """httpx strips Authorization on any cross-origin redirect: the safe side."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    other = "https://qwen-other.hf.space"
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        mock_space(router, HF_URL)
        mock_space(router, other)
        router.get(f"{HF_URL}/config").mock(return_value=httpx.Response(
            302, headers={"location": f"{other}/config"}))
        assert "".join(qwen_core.stream_chat(MODEL, MSGS)) == "ok"
        assert ("qwen-other.hf.space", "/config", None) in auth_by_host(router)


# -- where the token never shows -------------------------------------------------------------


def test_token_is_never_logged_even_at_debug(space, monkeypatch, caplog):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "qwen_core", "hpack", "h11", "asyncio"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    assert ask(space.base_url, "hi").text == answer_for("hi")
    ask(space.base_url, "fault:fail:2 hi").expect(qwen_core.GenerationError)
    ask(space.base_url, "fault:cut:2 hi").expect(qwen_core.SpaceUnavailable)
    stream = qwen_core.stream_chat(MODEL, [{"role": "user", "content": "fault:slow:9:20"}],
                                   base_url=space.base_url)
    next(stream)
    stream.close()
    assert space.cancels and all(r.headers.get("authorization") == f"Bearer {TOKEN}"
                                 for r in space.requests)
    assert caplog.records, "nothing was logged: the check would be vacuous"
    assert TOKEN not in caplog.text
    assert all(TOKEN not in str(r.__dict__) for r in caplog.records)


def _failures(space: FakeSpace) -> list[SpaceError]:
    errors = []
    for question in ("fault:fail:2", "fault:join503", "fault:cut:1", "fault:malformed:1",
                     "fault:429:9:120", "fault:lost"):
        out = ask(space.base_url, question, hf_token=TOKEN)
        assert out.error is not None
        errors.append(out.error)
    out = ask(f"http://127.0.0.1:{free_port()}", "hi", hf_token=TOKEN)
    errors.append(out.error)
    space.config_mode = "nofn"
    q.config_cache.clear()
    errors.append(ask(space.base_url, "hi", hf_token=TOKEN).error)
    return errors


def test_token_is_not_in_error_messages_tracebacks_or_reprs(space, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    for err in _failures(space):
        shown = [str(err), repr(err), repr(vars(err)),
                 "".join(traceback.format_exception(err))]
        cause = err.__cause__
        while cause is not None:
            shown += [str(cause), repr(cause), repr(getattr(cause, "request", None))]
            cause = cause.__cause__
        assert all(TOKEN not in text for text in shown), type(err)
    request = q.prepare(MODEL, MSGS, base_url=space.base_url, hf_token=TOKEN)
    assert request.endpoint.token == TOKEN
    assert TOKEN not in repr(request) and TOKEN not in repr(request.endpoint)
    assert TOKEN not in str(request)


def _cli(*args: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("proxy")}
    env.update({"HF_TOKEN": TOKEN, "NO_PROXY": "127.0.0.1", "PYTHONPATH": str(REPO)})
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "qwen_core", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_never_prints_the_token_on_success_or_errors(space):
    runs = [
        (_cli("hi", "--base-url", space.base_url, env_extra={}), 0),
        (_cli("fault:fail:2 hi", env_extra={
            "QWEN_SPACE_URLS": f"Qwen/Qwen2.5-Max-Demo={space.base_url}"}), 1),
        (_cli("fault:cut:2", "--base-url", space.base_url, env_extra={}), 1),
        (_cli("hi", "--base-url", f"http://127.0.0.1:{free_port()}", env_extra={}), 1),
        (_cli("hi", "--model", "no-such-model", env_extra={}), 1),
    ]
    for proc, code in runs:
        assert proc.returncode == code, proc.stderr
        assert TOKEN not in proc.stdout and TOKEN not in proc.stderr
        if code:
            assert proc.stderr.startswith("error: ") or "\nerror: " in proc.stderr
            assert "Traceback" not in proc.stderr
    assert runs[0][0].stdout.strip() == answer_for("hi")
    assert {r.headers.get("authorization") for r in space.requests} == {f"Bearer {TOKEN}"}


# -- user input as data only -------------------------------------------------------------------

NASTY = [
    'data: {"msg": "process_completed", "event_id": "x", "success": true}\n\n',
    "\r\nAuthorization: Bearer stolen\r\nX-Injected: 1\r\n\r\nGET / HTTP/1.1",
    '{"fn_index": 3, "event_id": "x", "session_hash": "../../cancel"}',
    "../../gradio_api/cancel?session_hash=x&fn_index=2 %0d%0a",
    "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "nul\x00 and \u2028 line sep and \ud7ff 👨\u200d👩\u200d👧",
]


@pytest.mark.parametrize("text", NASTY)
def test_user_text_travels_only_as_data(space, text):
    messages = [{"role": "system", "content": text}, {"role": "user", "content": text}]
    out = ask(space.base_url, text, messages=messages)
    assert out.error is None, out.error
    assert out.text == answer_for(text, system=text)
    assert [(r.method, r.path) for r in space.requests] == [
        ("GET", "/config"), ("POST", "/gradio_api/queue/join"),
        ("GET", "/gradio_api/queue/data")]
    join = space.requests[1].json()
    assert join["data"] == [text, [], text] and join["fn_index"] == 0
    assert space.requests[2].query == {"session_hash": join["session_hash"]}
    assert all("injected" not in k for r in space.requests for k in r.headers)


def test_oversized_message_is_refused_before_anything_is_sent():
    too_long = "x" * 1_000_001
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        mock_space(router, HF_URL)
        with pytest.raises(InvalidRequest) as info:
            qwen_core.stream_chat(MODEL, [{"role": "user", "content": too_long}])
        with pytest.raises(InvalidRequest):
            qwen_core.stream_events(MODEL, [
                {"role": "system", "content": "s" * 400_000},
                {"role": "user", "content": "u" * 300_000},
                {"role": "assistant", "content": "a" * 300_000},
                {"role": "user", "content": "more"}])
        assert router.calls.call_count == 0
    message = str(info.value)
    assert "1,000,001" in message and "1,000,000" in message and "Shorten" in message


def test_message_at_the_limit_is_sent_whole():
    at_limit = "y" * 1_000_000
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        mock_space(router, HF_URL)
        assert "".join(qwen_core.stream_chat(MODEL, [{"role": "user",
                                                      "content": at_limit}])) == "ok"
        join = json.loads(router.calls[1].request.content)
    assert join["data"][0] == at_limit


def test_the_1m_space_takes_more_than_a_million_characters():
    request = q.prepare("qwen-2.5-1m", [{"role": "user", "content": "z" * 1_000_001}],
                        base_url="http://127.0.0.1:9")
    assert request.conversation.size() == 1_000_001
