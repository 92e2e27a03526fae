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


HF_ROOT = "https://qwen-qwen2-5-max-demo.hf.space"  # the public Space's default host
ELSEWHERE = "https://mirror.elsewhere.test"  # not a Hugging Face host


def mock_root(router, root):
    """The Qwen2.5-Max Space served at ``root``; returns the routes by name."""
    return {
        "config": router.get(f"{root}/config").mock(
            return_value=httpx.Response(200, json=max_config())),
        "join": router.post(f"{root}{PREFIX}/queue/join").mock(
            return_value=httpx.Response(200, json={"event_id": "e1"})),
        "data": router.get(f"{root}{PREFIX}/queue/data").mock(
            return_value=sse(*answer_stream("e1", ["x"]))),
        "cancel": router.post(f"{root}{PREFIX}/cancel").mock(
            return_value=httpx.Response(200, json={})),
    }


def sent_auth(router):
    """(url, Authorization header or None) of every request that went out, in order."""
    return [(str(call.request.url).split("?")[0], call.request.headers.get("authorization"))
            for call in router.calls]


def default_host(monkeypatch, url):
    """Make the Qwen2.5-Max adapter's *default* (public Space) URL ``url``."""
    from qwen_core.spaces.qwen25_max import Qwen25Max

    monkeypatch.setattr(Qwen25Max, "url", classmethod(lambda cls: url))


@pytest.mark.parametrize("via", ["env", "argument"])
@pytest.mark.parametrize("host", [
    BASE,                                                 # plain non-HF host
    "https://qwen-qwen2-5-max-demo.hf.space.evil.test",   # HF names as a prefix
    "https://huggingface.co.evil.test",
    "https://evilhuggingface.co",                         # HF name without the dot
    "https://hf.space.evil.test",
])
def test_token_is_withheld_from_a_non_hf_host_that_was_not_configured(monkeypatch, host, via):
    """Neither base_url nor QWEN_SPACE_URLS names the host: it is the adapter's default,
    and it is not a Hugging Face host, so the token must not be sent there."""
    default_host(monkeypatch, host)
    kwargs = {}
    if via == "env":
        monkeypatch.setenv("HF_TOKEN", "hf_secret")
    else:
        kwargs["hf_token"] = "hf_secret"
    with respx.mock(assert_all_called=False) as router:
        mock_root(router, host)
        assert "".join(qwen_core.stream_chat("qwen-2.5-max", MSGS, **kwargs)) == "x"
        seen = sent_auth(router)
    assert [url for url, _ in seen] == [f"{host}/config", f"{host}{PREFIX}/queue/join",
                                        f"{host}{PREFIX}/queue/data"]
    assert [auth for _, auth in seen] == [None, None, None]


def test_token_is_sent_on_every_request_to_the_public_space(monkeypatch):
    """The counterpart of the test above: same calls, HF default host, token on each."""
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    with respx.mock(assert_all_called=False) as router:
        mock_root(router, HF_ROOT)
        stream = qwen_core.stream_chat("qwen-2.5-max", MSGS)
        next(stream)
        stream.close()  # the cancel goes with it too
        seen = sent_auth(router)
    assert [url for url, _ in seen] == [
        f"{HF_ROOT}/config", f"{HF_ROOT}{PREFIX}/queue/join", f"{HF_ROOT}{PREFIX}/queue/data",
        f"{HF_ROOT}{PREFIX}/cancel"]
    assert {auth for _, auth in seen} == {"Bearer hf_secret"}


@pytest.mark.parametrize("path", ["/config", f"{PREFIX}/queue/join", f"{PREFIX}/queue/data"])
@pytest.mark.parametrize("root", [HF_ROOT, BASE])
def test_token_does_not_follow_a_redirect_to_another_host(monkeypatch, root, path):
    """httpx drops Authorization when a redirect leaves the origin (scheme, host, port;
    only a plain http -> https upgrade of the same host keeps it). A Space (HF or an
    explicit base URL) redirecting one of our requests elsewhere must not leak the token."""
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    with respx.mock(assert_all_called=False) as router:
        routes = mock_root(router, root)
        mock_root(router, ELSEWHERE)
        routes[path.rsplit("/", 1)[-1]].mock(return_value=httpx.Response(
            307, headers={"Location": f"{ELSEWHERE}{path}"}))
        base_url = None if root == HF_ROOT else root
        assert "".join(qwen_core.stream_chat("qwen-2.5-max", MSGS, base_url=base_url)) == "x"
        seen = sent_auth(router)
    redirected = seen.index((f"{root}{path}", "Bearer hf_secret"))  # sent to the Space...
    assert seen[redirected + 1] == (f"{ELSEWHERE}{path}", None)  # ...not to where it points
    assert all(auth is None for url, auth in seen if url.startswith(ELSEWHERE))
    assert all(auth == "Bearer hf_secret" for url, auth in seen if url.startswith(root))


def test_token_follows_a_redirect_within_the_same_host(monkeypatch):
    """Control for the test above: a same-origin redirect keeps the header, so its absence
    there is the cross-host rule, not redirects losing headers in general."""
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    with respx.mock(assert_all_called=False) as router:
        routes = mock_root(router, HF_ROOT)
        moved = router.get(f"{HF_ROOT}/moved/config").mock(
            return_value=httpx.Response(200, json=max_config()))
        routes["config"].mock(return_value=httpx.Response(
            307, headers={"Location": f"{HF_ROOT}/moved/config"}))
        assert "".join(qwen_core.stream_chat("qwen-2.5-max", MSGS)) == "x"
    assert moved.calls.last.request.headers["authorization"] == "Bearer hf_secret"


@pytest.mark.parametrize(
    ("default", "base_url", "space_urls", "expected_url", "token_sent"),
    [
        (None, None, {}, HF_ROOT, True),                        # public Space (HF host)
        (None, "http://127.0.0.1:7860", {}, "http://127.0.0.1:7860", True),  # explicit
        (None, None, {"Qwen/Qwen2.5-Max-Demo": BASE}, BASE, True),  # configured
        (None, None, {"Qwen/Qwen3-Demo": BASE}, HF_ROOT, True),  # another Space's entry
        ("https://x.hf.space", None, {}, "https://x.hf.space", True),
        ("https://hub.huggingface.co", None, {}, "https://hub.huggingface.co", True),
        (BASE, None, {}, BASE, False),                          # default, not HF: withheld
        ("https://x.hf.space.evil.test", None, {}, "https://x.hf.space.evil.test", False),
        ("https://huggingface.co.evil.test/", None, {}, "https://huggingface.co.evil.test",
         False),
        (BASE, None, {"Qwen/Qwen3-Demo": "https://x.hf.space"}, BASE, False),
    ],
)
def test_resolve_endpoint_decides_where_the_token_may_go(
    monkeypatch, default, base_url, space_urls, expected_url, token_sent
):
    from qwen_core.settings import resolve_endpoint
    from qwen_core.spaces.qwen25_max import Qwen25Max

    adapter = Qwen25Max
    if default is not None:
        adapter = type("Overridden", (Qwen25Max,), {"url": classmethod(lambda cls: default)})
    for token_kw, env in ((None, "hf_env"), ("hf_arg", None)):
        if env:
            monkeypatch.setenv("HF_TOKEN", env)
        else:
            monkeypatch.delenv("HF_TOKEN", raising=False)
        endpoint = resolve_endpoint(adapter, base_url, token_kw, space_urls)
        assert endpoint.base_url == expected_url
        expected = f"Bearer {token_kw or env}"
        assert endpoint.headers() == ({"Authorization": expected} if token_sent else {})
        assert endpoint.token == (token_kw or env if token_sent else None)


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
