"""The Streamlit app under Space faults (AppTest against the fake Space).

For every fault the page shows a readable error (the SpaceError's text) with a Retry
button; the user's question and the partial answer are kept; once the fault clears,
Retry answers in place of the failed answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import plain

from .fake_space import (
    ERROR_MESSAGE,
    UNEXPECTED_MESSAGE,
    FakeSpace,
    answer_for,
    free_port,
    tokenize,
)
from .test_faults import first_tokens

APP = Path(__file__).resolve().parents[2] / "qwen_chat" / "page.py"
SPACE_ID = "Qwen/Qwen2.5-Max-Demo"


def new_app(monkeypatch: pytest.MonkeyPatch, base_url: str) -> AppTest:
    monkeypatch.setenv("QWEN_SPACE_URLS", f"{SPACE_ID}={base_url}")
    monkeypatch.setenv("QWEN_OFFLINE", "1")
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    assert not at.exception
    return at


def page(at: AppTest) -> list[tuple[str, str]]:
    """The conversation as the page shows it: (role, text) per chat message; an answer
    that has no text (the fault struck before the first token) shows as ""."""
    shown = []
    for message in at.chat_message:
        texts = [m.value for m in message.markdown]
        shown.append((message.name, texts[0] if texts else ""))
    return shown


def assert_failed_turn(
    at: AppTest, earlier: list[tuple[str, str]], question: str, partial: str, fragment: str
) -> None:
    """The failed turn shows the question, the partial answer and a readable error with
    Retry; earlier turns are untouched."""
    assert not at.exception, at.exception
    # st.markdown shows its text stripped, hence .strip()
    assert page(at) == [*conversation(earlier), ("user", question),
                        ("assistant", partial.strip())]
    errors = at.chat_message[-1].error
    assert len(errors) == 1 and len(at.error) == 1, [e.value for e in at.error]
    message = plain(errors[0].value)
    assert message.startswith(f"[{SPACE_ID}] ") and fragment in message
    assert "Traceback" not in message
    assert at.button(key="regenerate").label == "Retry"


def conversation(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [item for q, a in turns for item in (("user", q), ("assistant", a.strip()))]


def assert_answered(at: AppTest, turns: list[tuple[str, str]]) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert page(at) == conversation(turns)
    assert at.button(key="regenerate").label == "Regenerate"


APP_FAULTS = [
    pytest.param("fault", "join503", "queue is full", 0, id="queue-full"),
    pytest.param("fault", "429:99:120", "rate limiting", 0, id="rate-limited"),
    pytest.param("config", "html", "asleep", 0, id="sleeping-space"),
    pytest.param("fault", "joinhtml", "web page", 0, id="join-web-page"),
    pytest.param("fault", "cut:3", "cut", 3, id="stream-cut"),
    pytest.param("fault", "eof:4", "closed the stream", 4, id="stream-ended"),
    pytest.param("fault", "fail:3", ERROR_MESSAGE, 3, id="generation-error"),
    pytest.param("fault", "unexpected:2", UNEXPECTED_MESSAGE, 2, id="unexpected-error"),
    pytest.param("fault", "lost", "Session not found", 0, id="session-lost"),
    pytest.param("fault", "malformed:2", "malformed", 2, id="malformed-sse"),
    pytest.param("fault", "badop:2", "frobnicate", 2, id="unknown-diff-op"),
    pytest.param("config", "nofn", "model_chat", 0, id="event-missing"),
    pytest.param("config", "gradio3", "Gradio 3", 0, id="gradio-3"),
]


@pytest.mark.parametrize(("where", "fault", "fragment", "k"), APP_FAULTS)
def test_fault_shows_a_readable_error_with_retry_that_works_once_cleared(
    monkeypatch, space, where, fault, fragment, k
):
    at = new_app(monkeypatch, space.base_url)
    if where == "config":
        space.config_mode = fault
    else:
        space.fault = fault
    at.chat_input[0].set_value("hello").run()
    assert_failed_turn(at, [], "hello", first_tokens("hello", k), fragment)

    space.fault, space.config_mode = None, "ok"
    at.button(key="regenerate").click().run()
    assert_answered(at, [("hello", answer_for("hello"))])


def test_connection_refused_then_the_space_comes_up_and_retry_answers(monkeypatch):
    port = free_port()
    at = new_app(monkeypatch, f"http://127.0.0.1:{port}")
    at.chat_input[0].set_value("anyone there?").run()
    assert_failed_turn(at, [], "anyone there?", "", "cannot connect")
    with FakeSpace(port=port):
        at.button(key="regenerate").click().run()
        assert_answered(at, [("anyone there?", answer_for("anyone there?"))])


def test_failure_in_a_later_turn_keeps_the_history_and_retry_sends_it(monkeypatch, space):
    at = new_app(monkeypatch, space.base_url)
    at.chat_input[0].set_value("first").run()
    first = answer_for("first")
    assert_answered(at, [("first", first)])

    space.fault = "cut:5"
    at.chat_input[0].set_value("second").run()
    partial = "".join(tokenize(answer_for("second", history=[["first", first]]))[:5])
    assert_failed_turn(at, [("first", first)], "second", partial, "cut")

    space.fault = None
    at.button(key="regenerate").click().run()
    assert_answered(at, [("first", first),
                         ("second", answer_for("second", history=[["first", first]]))])
    # the failed partial answer was not sent back to the Space as history
    assert space.joins[-1].history == [["first", first]]
