"""The Streamlit app driven by AppTest against replica Spaces on 127.0.0.1.

AppTest cannot press Stop while a run is in progress (``run()`` blocks until the script
ends), so the stop tests make Streamlit itself request the stop (or a rerun) mid-stream
through the running script's own ``ScriptRequests`` — exactly what the Stop button and a
widget click do — and Streamlit then raises StopException/RerunException at the app's
next Streamlit call. The browser test presses the real Stop button.
"""

from __future__ import annotations

import json
import time

import pytest
import streamlit as st
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
from streamlit.testing.v1 import AppTest

import qwen_core
from qwen_chat import conversation as cs
from qwen_chat import files as cf
from qwen_core.conversation import Conversation, flatten_history
from tests.replicas import script

from .conftest import (
    APP,
    answer_block,
    captions,
    chat,
    new_app,
    plain,
    send,
    shown_answer,
)

MAX_SYSTEM = "You are a helpful assistant."
QWEN3_SYSTEM = "You are a helpful and harmless assistant."

pytestmark = pytest.mark.replica


def max_echo(query: str, history=(), system: str = MAX_SYSTEM) -> str:
    return script.expected_answer(query, system=system, history=[list(p) for p in history])


def test_a_full_turn_streams_the_exact_echo_into_the_last_message(spaces):
    at = send(new_app(), "Hello *there*, what is $x^2$?")
    expected = max_echo("Hello *there*, what is $x^2$?")
    assert shown_answer(at) == expected.strip()
    assert chat(at).messages[-1].content == expected
    assert captions(at) == ["Qwen2.5-Max · qwen-2.5-max"]
    created = chat(at).messages[-1].created
    assert captions(at, with_time=True) == [
        "Qwen2.5-Max · qwen-2.5-max · " + time.strftime("%H:%M", time.localtime(created))]
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert not answer_block(at).markdown[0].proto.allow_html  # model output never as HTML


def test_history_reaches_the_space_on_the_second_turn(spaces):
    at = send(new_app(), "first question")
    first = chat(at).messages[-1].content
    send(at, "second question")
    assert shown_answer(at) == max_echo("second question", [("first question", first)]).strip()
    assert len(at.chat_message) == 4


def test_switching_models_keeps_history_and_records_who_wrote_each_answer(spaces):
    at = send(new_app(), "question one")
    first = chat(at).messages[-1].content
    at.selectbox(key="pick_space").set_value("Qwen/Qwen3-Demo").run()
    assert at.query_params["model"] == "qwen3-235b-a22b"  # the URL follows the choice
    assert at.text_area(key="w_system").value == QWEN3_SYSTEM  # the Space's own default
    assert at.slider(key="w_budget").value == 38
    at.slider(key="w_budget").set_value(12).run()
    send(at, "question two")

    # Qwen3's event takes no history: qwen_core folds the earlier turn into the prompt
    folded = flatten_history(
        Conversation(system=None, turns=(("question one", first),), prompt="question two")
    )
    expected = script.expected_answer(
        folded, system=QWEN3_SYSTEM, variant="qwen3-235b-a22b", thinking_budget=12
    )
    assert shown_answer(at) == expected.strip()
    assert captions(at, 0) == ["Qwen2.5-Max · qwen-2.5-max"]
    assert captions(at, 1) == [f"{qwen_core.MODELS['qwen3-235b-a22b'].label} · qwen3-235b-a22b"]
    # the reasoning is in a collapsed "Thinking" expander, not in the answer
    thinking = answer_block(at, 1).expander[0]
    assert thinking.label == "Thinking"
    assert thinking.markdown[0].value == script.expected_reasoning(
        folded, thinking_budget=12
    ).strip()
    assert "THINK" not in chat(at).messages[-1].content


def test_a_space_error_shows_its_words_keeps_the_partial_answer_and_retry_asks_again(spaces):
    replica = spaces["max"]
    at = send(new_app(), "script:error:3")
    error = plain(answer_block(at).error[0].value)
    assert script.ERROR_MESSAGE in error and "Qwen/Qwen2.5-Max-Demo" in error
    assert shown_answer(at) == "e0 e1 e2"
    assert at.chat_message[0].markdown[0].value == "script:error:3"  # the question stays
    assert "failed" in captions(at)[0]

    starts = sum(1 for e in replica.events() if e["event"] == "start")
    retry = at.button(key="regenerate")
    assert retry.label == "Retry"
    retry.click().run()
    assert sum(1 for e in replica.events() if e["event"] == "start") == starts + 1
    assert [m.name for m in at.chat_message] == ["user", "assistant"]  # replaced, not added
    assert script.ERROR_MESSAGE in plain(answer_block(at).error[0].value)


def _stream_events_that_interrupt(monkeypatch, *, after: int, how: str) -> None:
    """Patch qwen_core.stream_events so that in its first turn, after ``after`` answer
    deltas, Streamlit is asked to stop the script (the Stop button) or to rerun it (any
    widget click). Later turns stream normally."""
    real = qwen_core.stream_events
    calls = []

    def patched(*args, **kwargs):
        inner = real(*args, **kwargs)
        calls.append(1)
        if len(calls) > 1:
            return inner

        def events():
            seen = 0
            try:
                for event in inner:
                    if type(event) is qwen_core.events.TextDelta:
                        seen += 1
                        if seen == after:
                            requests = get_script_run_ctx().script_requests
                            if how == "stop":
                                requests.request_stop()
                            else:
                                requests.request_rerun(RerunData())
                    yield event
            finally:
                inner.close()

        return qwen_core.EventStream(events())

    monkeypatch.setattr(qwen_core, "stream_events", patched)


@pytest.mark.parametrize("how", ["stop", "rerun"])
def test_stopping_mid_answer_keeps_the_partial_answer_and_cancels_the_job(
    spaces, monkeypatch, how
):
    replica = spaces["max"]
    _stream_events_that_interrupt(monkeypatch, after=3, how=how)
    at = new_app()
    since = time.time()
    at.chat_input[0].set_value("script:slow:200:50").run()
    if how == "stop":
        at.run()  # the page's own timer reruns it after a Stop; AppTest has no timers
    assert not at.exception

    stored = chat(at).messages[-1]
    assert stored.stopped and stored.error is None
    full = script.expected_answer("script:slow:200:50", system=MAX_SYSTEM)
    assert stored.content.startswith("s0 s1 s2 ") and full.startswith(stored.content)
    assert len(stored.content) < len(full)
    assert shown_answer(at) == stored.content.strip()
    assert "stopped" in captions(at)[0]
    # closing the stream cancelled the Space's job: its generator was stopped early
    end = replica.wait_event(
        lambda e: e["event"] == "end" and e["query"] == "script:slow:200:50"
        and e["t"] >= since,
        timeout=10,
    )
    assert end["how"] == "closed"
    # and the conversation goes on
    send(at, "after the stop")
    assert "after the stop" in shown_answer(at)


def test_regenerate_and_edit_the_last_question(spaces):
    replica = spaces["max"]
    at = send(new_app(), "original question")
    starts = sum(1 for e in replica.events() if e["event"] == "start")
    at.button(key="regenerate").click().run()
    assert sum(1 for e in replica.events() if e["event"] == "start") == starts + 1
    assert len(at.chat_message) == 2

    at.button(key="edit").click().run()
    assert at.text_area(key="edit_text").value == "original question"
    at.text_area(key="edit_text").set_value("edited question")
    at.button(key="edit_send").click().run()
    assert not at.exception
    assert [m.markdown[0].value for m in at.chat_message][0] == "edited question"
    assert shown_answer(at) == max_echo("edited question").strip()
    assert len(at.chat_message) == 2

    at.button[[b.label for b in at.button].index("New chat")].click().run()
    assert len(at.chat_message) == 0


def test_export_then_import_continues_the_conversation(spaces):
    at = send(new_app(), "remember this")
    at.text_area(key="w_system").set_value("Be brief.").run()
    labels = [b.label for b in at.sidebar.get("download_button")]
    assert labels == ["Markdown", "JSON"]
    saved = cf.to_json(chat(at), "Be brief.")
    markdown = cf.to_markdown(chat(at), "Be brief.")
    assert "remember this" in markdown and "Be brief." in markdown

    other = new_app()
    other.file_uploader[0].set_value(("chat.json", saved.encode(), "application/json")).run()
    assert not other.exception
    assert chat(other).messages == chat(at).messages
    assert other.text_area(key="w_system").value == "Be brief."
    assert any("Loaded chat.json" in plain(s.value) for s in other.success)
    send(other, "what did I say?")
    first = chat(at).messages[-1].content
    assert shown_answer(other) == max_echo(
        "what did I say?", [("remember this", first)], system="Be brief."
    ).strip()


def test_a_click_sent_before_the_new_pickers_were_drawn_does_not_switch_back_or_fail(
    spaces, monkeypatch
):
    """A Space change, then Regenerate at once: the browser sends every widget's value
    with the click, and the Model picker's is still the old Space's label, which the new
    options lack. The page must answer with the new model, not fail or switch back."""
    at = send(new_app(), "two versions")
    at.selectbox(key="pick_space").set_value("Qwen/Qwen3-Demo").run()
    picker = at.selectbox(key="pick_model")
    stale = WidgetState(id=picker.id, string_value="Qwen2.5-Max")  # what the browser had
    shown_state = type(picker)._widget_state
    monkeypatch.setattr(type(picker), "_widget_state", property(
        lambda self: stale if self.id == picker.id else shown_state.fget(self)))
    at.button(key="regenerate").click().run()
    assert not at.exception
    assert chat(at).model == "qwen3-235b-a22b"
    assert at.query_params["model"] == "qwen3-235b-a22b"
    assert "variant=qwen3-235b-a22b" in chat(at).messages[-1].content
    assert at.text_area(key="w_system").value == QWEN3_SYSTEM


def test_a_bad_upload_is_refused_with_a_clear_message_and_nothing_is_lost(spaces):
    at = send(new_app(), "keep me")
    before = chat(at)
    bad = json.dumps({"format": "qwen-spaces-chat", "messages": [{"role": "bot"}]})
    at.file_uploader[0].set_value(("bad.json", bad.encode(), "application/json")).run()
    assert chat(at) == before
    assert any("Could not load bad.json" in plain(e.value) and "message 1" in plain(e.value)
               for e in at.error)


def test_a_model_in_the_url_is_preselected_and_an_unknown_one_is_reported():
    at = new_app(model="qwen3-32b")
    assert at.selectbox(key="pick_space").value == "Qwen/Qwen3-Demo"
    assert at.selectbox(key="pick_model").value == "qwen3-32b"
    assert chat(at).model == "qwen3-32b"
    at.selectbox(key="pick_model").set_value("qwen3-8b").run()
    assert at.query_params["model"] == "qwen3-8b"

    alias = new_app(model="qwen-max")  # aliases work too; the URL shows the canonical id
    assert chat(alias).model == "qwen-2.5-max"
    assert alias.query_params["model"] == "qwen-2.5-max"

    unknown = new_app(model="qwen-9000")
    assert chat(unknown).model == cs.DEFAULT_MODEL
    assert any("qwen-9000" in plain(w.value) for w in unknown.warning)


def test_a_space_without_system_prompt_disables_the_editor_and_keeps_status_out(spaces):
    at = new_app(model="qwen-2.5-1m")
    editor = at.text_area(key="w_system")
    assert editor.disabled
    assert any("takes no system prompt" in c.value for c in at.sidebar.caption)
    assert not any(s.key == "w_budget" for s in at.slider)
    send(at, "long document question")
    answer = chat(at).messages[-1]
    assert answer.content == script.expected_answer("long document question", system="")
    assert script.THINKING_PLACEHOLDER not in answer.content
    assert "<summary>" in answer.reasoning  # the 1M demo's tail goes to Thinking


def test_settings_come_from_secrets_and_the_token_is_never_shown(
    monkeypatch, replica_max_g5
):
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["HF_TOKEN"] = "hf_secret_token_value"
    at.secrets["space_urls"] = {"Qwen/Qwen2.5-Max-Demo": replica_max_g5.base_url}
    at.run()
    send(at, "from secrets")
    assert shown_answer(at) == max_echo("from secrets").strip()
    everything = json.dumps([str(e) for e in at.main] + [str(e) for e in at.sidebar])
    assert "hf_secret_token_value" not in everything
    assert any("local" in c.value for c in at.sidebar.caption)


def test_a_bad_space_url_setting_is_reported_not_fatal(monkeypatch):
    monkeypatch.setenv("QWEN_SPACE_URLS", "not a mapping")
    at = new_app()
    assert any("QWEN_SPACE_URLS" in plain(e.value) and "override is ignored" in plain(e.value)
               for e in at.sidebar.error)


def test_space_states_come_from_the_hub_unless_overridden_or_offline(monkeypatch):
    """With the Hub allowed, only Spaces without an override are asked (here: through a
    stand-in for httpx.get; the loopback guard would catch any real lookup)."""
    import httpx

    asked: list[str] = []

    def fake_get(url, **kwargs):
        asked.append(url)
        assert kwargs["timeout"] == 2.0
        stage = "SLEEPING" if url.endswith("Qwen3-Demo") else "RUNNING"
        return httpx.Response(200, json={"runtime": {"stage": stage}},
                              request=httpx.Request("GET", url))

    checked: list[tuple[str, ...]] = []

    def fake_check_all(spaces, **kwargs):  # the doctor (its own tests run it for real)
        checked.append(tuple(spaces))
        return [qwen_core.SpaceCheck(space_id=s, label=s, base_url="", detail="x",
                                     state="changed" if s.endswith("Qwen3-Demo") else "fits")
                for s in spaces]

    monkeypatch.delenv("QWEN_OFFLINE")
    monkeypatch.setenv("QWEN_SPACE_URLS", "Qwen/Qwen2.5-Max-Demo=http://127.0.0.1:9")
    monkeypatch.setattr(httpx, "get", fake_get)
    monkeypatch.setattr(qwen_core, "check_all", fake_check_all)
    st.cache_data.clear()
    try:
        at = new_app(model="qwen3-8b")
    finally:
        st.cache_data.clear()
    assert sorted(asked) == sorted(
        f"https://huggingface.co/api/spaces/{space}"
        for space in {m.space_id for m in qwen_core.MODELS.values()}
        if space != "Qwen/Qwen2.5-Max-Demo"
    )
    assert any("sleeping" in c.value for c in at.sidebar.caption)
    listing = " ".join(m.value for m in at.sidebar.expander[0].markdown)
    assert "Qwen2.5-Max** — local" in listing and "Qwen2.5** — running" in listing
    assert checked == [tuple(dict.fromkeys(m.space_id for m in qwen_core.MODELS.values()))]
    verdicts = [m.value.rsplit("Adapter:", 1)[1].strip() for m in at.sidebar.expander[0].markdown]
    assert sum("changed" in v for v in verdicts) == 1 and sum("fits" in v for v in verdicts) == 4


def test_offline_nothing_is_asked_and_states_read_unknown(monkeypatch):
    import httpx

    monkeypatch.setattr(httpx, "get", lambda *a, **k: pytest.fail("asked the Hub offline"))
    at = new_app()
    assert any("unknown" in c.value for c in at.sidebar.caption)
