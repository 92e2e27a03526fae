"""The whole client over respx-mocked HTTP: requests sent, events out, errors mapped."""

import json

import httpx
import pytest
import respx

import qwen_core
from qwen_core import queue_api
from qwen_core.events import Done, TextDelta

from .conftest import BASE, PREFIX, answer_stream, max_config, sse

MSGS = [{"role": "user", "content": "q"}]


def mock_space(router, *, config=None, join=None, stream=None):
    router.get(f"{BASE}/config").mock(return_value=httpx.Response(200, json=config or max_config()))
    join_route = router.post(f"{BASE}{PREFIX}/queue/join").mock(
        return_value=join or httpx.Response(200, json={"event_id": "e1"}))
    data_route = router.get(f"{BASE}{PREFIX}/queue/data").mock(
        return_value=stream or sse(*answer_stream("e1", ["ha", "ha", "ha"])))
    cancel_route = router.post(f"{BASE}{PREFIX}/cancel").mock(
        return_value=httpx.Response(200, json={}))
    return join_route, data_route, cancel_route


@respx.mock
def test_stream_chat_sends_system_history_and_yields_exact_deltas():
    join, data, cancel = mock_space(respx.mock, stream=sse(
        *answer_stream("e1", ["ha", "ha", "ha"], history=[("hi", "hello")])))
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"}, {"role": "user", "content": "q"}]
    out = list(qwen_core.stream_chat("qwen-2.5-max", messages, base_url=BASE))
    assert out == ["ha", "ha", "ha"]
    body = json.loads(join.calls.last.request.content)
    assert body["data"] == ["q", [["hi", "hello"]], "Be terse."]
    assert body["fn_index"] == 0 and len(body["session_hash"]) == 11
    assert data.calls.last.request.url.params["session_hash"] == body["session_hash"]
    assert not cancel.called  # finished normally: nothing to cancel


@respx.mock
def test_default_system_prompt_when_none_given():
    join, _, _ = mock_space(respx.mock)
    list(qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=BASE))
    assert json.loads(join.calls.last.request.content)["data"][2] == "You are a helpful assistant."


@respx.mock
def test_config_is_fetched_once_per_space_per_process():
    mock_space(respx.mock)
    for _ in range(3):
        list(qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=BASE))
    assert respx.mock.routes[0].call_count == 1


@respx.mock
def test_early_close_cancels_the_job_with_its_ids():
    _, _, cancel = mock_space(respx.mock)
    stream = qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=BASE)
    assert next(stream) == "ha"
    stream.close()
    body = json.loads(cancel.calls.last.request.content)
    assert body["event_id"] == "e1" and body["fn_index"] == 0 and len(body["session_hash"]) == 11


@respx.mock
def test_stream_events_done_carries_full_text():
    mock_space(respx.mock)
    events = list(qwen_core.stream_events("qwen-2.5-max", MSGS, base_url=BASE))
    assert events[-1] == Done("hahaha")
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["ha", "ha", "ha"]


@respx.mock
def test_gradio4_space_without_prefix_is_discovered():
    respx.get(f"{BASE}/config").mock(return_value=httpx.Response(
        200, json=max_config(version="4.44.1", prefix=None)))
    respx.post(f"{BASE}/queue/join").mock(return_value=httpx.Response(200, json={"event_id": "e1"}))
    respx.get(f"{BASE}/queue/data").mock(return_value=sse(*answer_stream("e1", ["ok"])))
    assert "".join(qwen_core.stream_chat("qwen-2-72b", MSGS, base_url=BASE)) == "ok"


@respx.mock
def test_missing_config_falls_back_to_known_layout():
    mock_space(respx.mock)
    respx.mock.routes[0].mock(return_value=httpx.Response(404, json={"detail": "Not Found"}))
    assert "".join(qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=BASE)) == "hahaha"
    assert not queue_api.config_cache  # a fallback is not cached: discovery retried next time


@pytest.mark.parametrize(
    ("response", "error", "words"),
    [
        (httpx.Response(503, json={"detail": "Queue is full."}), qwen_core.QueueFull, "full"),
        (httpx.Response(200, html="<html>Sleeping</html>"), qwen_core.SpaceUnavailable,
         "web page"),
        (httpx.Response(502, text="bad gateway"), qwen_core.SpaceUnavailable, "HTTP 502"),
        (httpx.Response(422, json={"detail": "Too long"}), qwen_core.InvalidRequest,
         "Too long"),
        (httpx.Response(404, json={"detail": "Not Found"}), qwen_core.SpaceAPIChanged,
         "HTTP 404"),
        (httpx.Response(200, json={"nope": 1}), qwen_core.SpaceAPIChanged, "event_id"),
    ],
)
@respx.mock
def test_join_failures_map_to_space_errors(response, error, words):
    mock_space(respx.mock, join=response)
    with pytest.raises(error, match=words):
        list(qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=BASE))


@respx.mock
def test_rate_limit_honours_retry_after_then_succeeds(monkeypatch):
    slept = []
    monkeypatch.setattr("qwen_core.transport.time.sleep", slept.append)
    join, _, _ = mock_space(respx.mock)
    join.side_effect = [httpx.Response(429, headers={"Retry-After": "2"}),
                        httpx.Response(200, json={"event_id": "e1"})]
    assert "".join(qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=BASE)) == "hahaha"
    assert slept == [2.0]


@respx.mock
def test_rate_limit_forever_raises_rate_limited(monkeypatch):
    monkeypatch.setattr("qwen_core.transport.time.sleep", lambda s: None)
    join, _, _ = mock_space(respx.mock, join=httpx.Response(429, headers={"Retry-After": "3"}))
    with pytest.raises(qwen_core.RateLimited) as info:
        list(qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=BASE))
    assert info.value.retry_after == 3.0
    assert join.call_count == queue_api.MAX_RATE_RETRIES + 1


@respx.mock
def test_long_retry_after_is_reported_not_waited(monkeypatch):
    monkeypatch.setattr("qwen_core.transport.time.sleep", lambda s: pytest.fail("slept"))
    mock_space(respx.mock, join=httpx.Response(429, headers={"Retry-After": "600"}))
    with pytest.raises(qwen_core.RateLimited, match="600"):
        list(qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=BASE))


@respx.mock
def test_connect_failure_is_unavailable():
    respx.get(f"{BASE}/config").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(qwen_core.SpaceUnavailable, match="cannot connect"):
        list(qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=BASE))


@respx.mock
def test_cut_stream_keeps_partial_text_and_cancels():
    msgs = answer_stream("e1", ["one ", "two "])[:-2]  # no completion, no close_stream
    _, _, cancel = mock_space(respx.mock, stream=sse(*msgs))
    got = []
    with pytest.raises(qwen_core.SpaceUnavailable) as info:
        for text in qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=BASE):
            got.append(text)
    assert got == ["one ", "two "] and info.value.partial == "one two "
    assert cancel.called


@respx.mock
def test_malformed_data_line_is_api_changed():
    stream = httpx.Response(200, headers={"content-type": "text/event-stream"},
                            content=b"data: {not json\n\n")
    mock_space(respx.mock, stream=stream)
    with pytest.raises(qwen_core.SpaceAPIChanged, match="malformed"):
        list(qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=BASE))


@respx.mock
def test_websocket_gradio3_space_is_refused_clearly():
    respx.get(f"{BASE}/config").mock(return_value=httpx.Response(
        200, json={"version": "3.50.2", "protocol": "ws", "dependencies": []}))
    with pytest.raises(qwen_core.SpaceAPIChanged, match="Gradio 3.50.2"):
        list(qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=BASE))


@respx.mock
def test_moved_event_is_found_by_api_name_and_shape():
    config = max_config()
    config["dependencies"].insert(0, {"id": 0, "inputs": [1], "outputs": [1], "api_name": "x"})
    config["dependencies"][1]["id"] = 1
    join, _, _ = mock_space(respx.mock, config=config)
    assert "".join(qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=BASE)) == "hahaha"
    assert json.loads(join.calls.last.request.content)["fn_index"] == 1


@respx.mock
def test_changed_event_shape_is_api_changed():
    config = max_config(fn_types=(["textbox"], ["textbox"]))
    mock_space(respx.mock, config=config)
    with pytest.raises(qwen_core.SpaceAPIChanged, match=r"event 0 takes \[textbox\]"):
        list(qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=BASE))


def test_invalid_requests_fail_before_any_io():
    with respx.mock(assert_all_called=False) as router:
        with pytest.raises(qwen_core.InvalidRequest, match="did you mean"):
            qwen_core.stream_chat("qwen-2.5-maxx", MSGS, base_url=BASE)
        with pytest.raises(qwen_core.InvalidRequest, match="last message"):
            qwen_core.stream_chat("qwen-2.5-max", [{"role": "assistant", "content": "x"}])
        with pytest.raises(qwen_core.InvalidRequest, match="at most 1,000,000"):
            qwen_core.stream_chat("qwen-2.5-max", [{"role": "user", "content": "x" * 1_000_001}])
        with pytest.raises(qwen_core.InvalidRequest, match="thinking_budget"):
            qwen_core.stream_chat("qwen3-32b", MSGS, thinking_budget=99)
        with pytest.raises(qwen_core.InvalidRequest, match="unknown option"):
            qwen_core.stream_chat("qwen-2.5-max", MSGS, temperature=1)
        assert not router.calls


@respx.mock
def test_space_urls_env_points_a_space_at_a_local_url(monkeypatch):
    monkeypatch.setenv("QWEN_SPACE_URLS", f"Qwen/Qwen2.5-Max-Demo={BASE}, Qwen/Qwen3-Demo=http://x")
    mock_space(respx.mock)
    assert "".join(qwen_core.stream_chat("qwen-2.5-max", MSGS)) == "hahaha"


@pytest.mark.parametrize(
    ("base_url", "sent"),
    [(None, True), (BASE, True)],
)
def test_token_goes_to_hf_hosts_and_explicit_base_urls(monkeypatch, base_url, sent):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    root = base_url or "https://qwen-qwen2-5-max-demo.hf.space"
    with respx.mock(assert_all_called=False) as router:
        config = router.get(f"{root}/config").mock(
            return_value=httpx.Response(200, json=max_config()))
        router.post(f"{root}{PREFIX}/queue/join").mock(
            return_value=httpx.Response(200, json={"event_id": "e1"}))
        router.get(f"{root}{PREFIX}/queue/data").mock(
            return_value=sse(*answer_stream("e1", ["x"])))
        list(qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=base_url))
        header = config.calls.last.request.headers.get("authorization")
    assert (header == "Bearer hf_secret") is sent


def test_async_generator_yields_the_same_deltas():
    import asyncio

    async def collect():
        return [t async for t in qwen_core.spaces.Qwen_Qwen_2_5_Max.create_async_generator(
            "qwen-2.5-max", MSGS, base_url=BASE)]

    with respx.mock(assert_all_called=False) as router:
        mock_space(router)
        assert asyncio.run(collect()) == ["ha", "ha", "ha"]


def test_seed_classes_expose_the_g4f_attributes():
    from qwen_core.spaces import PROVIDERS

    for cls in PROVIDERS:
        assert cls.url.startswith("https://") and cls.url.endswith(".hf.space")
        assert cls.default_model in cls.models and cls.supports_stream
        for alias, target in cls.model_aliases.items():
            assert cls.get_model(alias) == target
    assert qwen_core.spaces.Qwen_Qwen_2_5_Max.url == "https://qwen-qwen2-5-max-demo.hf.space"
