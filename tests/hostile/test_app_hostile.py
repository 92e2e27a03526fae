"""The page under hostile input (AppTest, in process; the Space is respx-mocked so any
answer can be built): what a visitor sees is a readable message, never a traceback, and
nothing from a URL, a file or a Space is acted on as Markdown or fetched."""

from __future__ import annotations

import json
import time

import httpx
import respx

from qwen_chat.settings import read_settings
from tests.app.conftest import answer_block, chat, new_app, plain, send
from tests.unit.conftest import PREFIX, answer_stream, max_config, sse

BASE = "http://space.test"
MAX = "Qwen/Qwen2.5-Max-Demo"


def mock_max(router: respx.MockRouter, tokens: list[str] | None = None, stream=None) -> None:
    router.get(f"{BASE}/config").mock(return_value=httpx.Response(200, json=max_config()))
    router.post(f"{BASE}{PREFIX}/queue/join").mock(
        return_value=httpx.Response(200, json={"event_id": "e1"}))
    router.get(f"{BASE}{PREFIX}/queue/data").mock(
        return_value=stream or sse(*answer_stream("e1", tokens or ["ok"])))
    router.post(f"{BASE}{PREFIX}/cancel").mock(return_value=httpx.Response(200, json={}))


def everything(at) -> str:
    return json.dumps([str(e) for e in at.main] + [str(e) for e in at.sidebar])


def test_a_shared_link_cannot_put_a_link_or_an_image_on_the_page():
    hostile = ("x) [Session expired - sign in again](http://evil.example/login) "
               "![t](http://evil.example/pixel.png) (")
    at = new_app(model=hostile)
    warning = next(w.value for w in at.warning if "unknown model" in w.value)
    assert "](" not in warning  # the Markdown source holds no live link or image
    assert "Session expired" in plain(warning)  # but the person can read what was asked
    assert chat(at).model == "qwen-2.5-max"


def test_a_message_of_40_kb_of_latex_openers_is_answered_without_freezing(monkeypatch):
    monkeypatch.setenv("QWEN_SPACE_URLS", f"{MAX}={BASE}")
    text = "\\[" * 20_000
    with respx.mock(assert_all_called=False) as router:
        mock_max(router, tokens=list(text[:1000]) + [text[1000:]])
        start = time.perf_counter()
        at = send(new_app(), text)
        took = time.perf_counter() - start
    assert chat(at).messages[-1].content == text
    assert took < 10, took  # 6 s per render (x3 renders) with the quadratic regexes


def test_an_answer_with_a_remote_image_shows_a_link_not_an_image(monkeypatch):
    monkeypatch.setenv("QWEN_SPACE_URLS", f"{MAX}={BASE}")
    leak = "![x](http://127.0.0.1:9/leak?c=SECRET)"
    with respx.mock(assert_all_called=False) as router:
        mock_max(router, tokens=["look: ", "!", "[x](http://127.0.0.1:9/leak?c=SECRET)"])
        at = send(new_app(), "show me")
    assert chat(at).messages[-1].content == "look: " + leak  # stored as the Space sent it
    shown = [m.value for m in answer_block(at).markdown]
    assert shown == ["look: \\" + leak]  # drawn as a link


def test_remote_images_can_be_allowed_by_a_setting(monkeypatch):
    monkeypatch.setenv("QWEN_SPACE_URLS", f"{MAX}={BASE}")
    monkeypatch.setenv("QWEN_REMOTE_IMAGES", "on")
    with respx.mock(assert_all_called=False) as router:
        mock_max(router, tokens=["![x](http://127.0.0.1:9/i.png)"])
        at = send(new_app(), "show me")
    assert [m.value for m in answer_block(at).markdown] == ["![x](http://127.0.0.1:9/i.png)"]


def test_a_space_sending_a_lone_surrogate_does_not_break_the_session(monkeypatch):
    monkeypatch.setenv("QWEN_SPACE_URLS", f"{MAX}={BASE}")
    with respx.mock(assert_all_called=False) as router:
        mock_max(router, tokens=["bad ", "\ud800", " end"])
        at = send(new_app(), "q")
        assert not at.exception
        assert chat(at).messages[-1].content == "bad \ufffd end"
        at.run()  # later reruns still work
        send(at, "again")
    assert not at.exception and len(chat(at).messages) == 4


def test_an_answer_over_the_display_cap_is_cut_with_a_download(monkeypatch):
    monkeypatch.setenv("QWEN_SPACE_URLS", f"{MAX}={BASE}")
    big = "word " * 50_000  # 250,000 characters
    with respx.mock(assert_all_called=False) as router:
        mock_max(router, tokens=[big[i:i + 5000] for i in range(0, len(big), 5000)])
        at = send(new_app(), "long")
    assert chat(at).messages[-1].content == big
    block = answer_block(at)
    assert block.markdown[0].value == big[:200_000].strip()  # st.markdown strips
    assert any("Showing the first 200,000 of 250,000 characters" in c.value
               for c in block.caption)
    assert [b.label for b in block.get("download_button")] == ["Download the whole text"]


def test_a_long_imported_conversation_draws_only_its_last_messages():
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"}
                for i in range(8000)]
    at = new_app()
    at.file_uploader[0].set_value(
        ("long.json", json.dumps(messages).encode(), "application/json")).run()
    assert len(chat(at).messages) == 8000
    assert len(at.chat_message) == 100
    assert at.button(key="show_all_btn").label == "Show 7,900 earlier messages"
    start = time.perf_counter()
    at.run()
    assert time.perf_counter() - start < 5  # 2.1 s per rerun when all 8,000 were drawn
    at.button(key="show_all_btn").click().run()
    assert len(at.chat_message) == 8000


def test_hostile_uploads_are_refused_and_the_session_goes_on():
    cases = {
        "deep.json": ("[" * 100_000).encode(),
        "digits.json": b'{"version": ' + b"9" * 5000 + b', "messages": []}',
        "surrogate.json": b'[{"role": "user", "content": "\\ud800"}]',
    }
    at = new_app()
    for name, data in cases.items():
        at.file_uploader[0].set_value((name, data, "application/json")).run()
        assert not at.exception, at.exception
        errors = [plain(e.value) for e in at.error]
        assert any(f"Could not load {name}" in e for e in errors), errors
        assert "Traceback" not in everything(at)
        at.run()
        assert not at.exception
    assert chat(at).messages == ()


def test_a_malformed_space_url_override_neither_crashes_nor_shows_its_value(monkeypatch):
    monkeypatch.setenv("QWEN_SPACE_URLS",
                       "Qwen/Qwen3-Demo=https://admin:hf_pw_123@[::1,"
                       f"{MAX}=http://[::1")
    at = new_app()
    assert not at.exception
    errors = [plain(e.value) for e in at.sidebar.error]
    assert len(errors) == 2 and all("override is ignored" in e for e in errors), errors
    assert "hf_pw_123" not in everything(at) and "[::1" not in " ".join(errors)


def test_a_password_in_a_configured_url_never_reaches_the_page_or_the_export(monkeypatch):
    monkeypatch.setenv("QWEN_SPACE_URLS", f"{MAX}=http://admin:hf_pw_123@space.test")
    with respx.mock(assert_all_called=False) as router:
        router.get(url__regex=r".*").mock(side_effect=httpx.ConnectError("refused"))
        router.post(url__regex=r".*").mock(side_effect=httpx.ConnectError("refused"))
        at = send(new_app(), "q")
    error = plain(answer_block(at).error[0].value)
    assert "cannot connect" in error and "hf_pw_123" not in error
    assert "hf_pw_123" not in (chat(at).messages[-1].error or "")
    assert "hf_pw_123" not in everything(at)


def test_a_message_over_the_spaces_limit_is_refused_before_sending(monkeypatch):
    """The chat input itself takes at most the Space's limit (the browser enforces
    ``max_chars``; AppTest cuts the text like it); with the system prompt the conversation
    is still over it, so nothing is sent and the error says so; the question is kept."""
    monkeypatch.setenv("QWEN_SPACE_URLS", f"{MAX}={BASE}")
    with respx.mock(assert_all_called=False) as router:
        mock_max(router)
        at = send(new_app(), "x" * 1_000_001)
        assert not router.routes[1].called  # nothing joined the queue
    assert at.chat_input[0].max_chars == 1_000_000
    question, answer = chat(at).messages
    assert len(question.content) == 1_000_000 and answer.content == ""
    assert "accepts at most 1,000,000" in plain(answer_block(at).error[0].value)


def test_settings_never_show_the_token_or_the_database_password():
    settings = read_settings(
        {"connections": {"chats": {"url": "postgresql://u:db_pw@h/db"}}},
        {"HF_TOKEN": "hf_secret_token", "QWEN_API_KEYS": "sk-one,sk-two"},
    )
    text = repr(settings) + str(settings)
    assert settings.hf_token == "hf_secret_token" and settings.api_keys == ("sk-one", "sk-two")
    for secret in ("hf_secret_token", "db_pw", "sk-one"):
        assert secret not in text
