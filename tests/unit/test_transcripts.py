"""Replays SSE transcripts recorded from the replica Spaces (real Gradio 4/5/6 servers,
tests/replicas/transcripts) through the whole client with respx: the request we build
must equal what the Space's page sent, and the recorded stream must give its answer."""

import json
from pathlib import Path

import httpx
import pytest
import respx

import qwen_core
from qwen_core.events import Done, TextDelta, TextReplaced

from .conftest import BASE

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "replicas" / "transcripts"
MODELS = {
    "max_g5": "qwen-2.5-max", "max_g6": "qwen-2.5-max", "qwen25_g4": "qwen-2.5",
    "qwen2_72b_g4": "qwen-2-72b", "1m_g4": "qwen-2.5-1m", "qwen3_g5": "qwen3-235b-a22b",
}
# the conversation the transcripts were recorded with
MESSAGES = [{"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "2+2 equals 4."},
            {"role": "user", "content": "Hi"}]
# what the Qwen3 adapter must send as its one message for MESSAGES (Qwen3-Demo takes no
# history: the earlier turn is written into the prompt, then the new question)
QWEN3_FLATTENED = (
    "Earlier in this conversation:\n"
    "User: What is 2+2?\n"
    "Assistant: 2+2 equals 4.\n"
    "\n"
    "Now answer the user's new message:\n"
    "Hi"
)


def serve(router, name, kind):
    config = json.loads((TRANSCRIPTS / f"{name}.config.json").read_text())
    body = (TRANSCRIPTS / f"{name}.{kind}.sse").read_bytes()
    event_id = next(json.loads(line[5:])["event_id"] for line in body.decode().splitlines()
                    if line.startswith("data:") and '"event_id": null' not in line
                    and json.loads(line[5:]).get("event_id"))
    prefix = config.get("api_prefix", "")
    router.get(f"{BASE}/config").mock(return_value=httpx.Response(200, json=config))
    join = router.post(f"{BASE}{prefix}/queue/join").mock(
        return_value=httpx.Response(200, json={"event_id": event_id}))
    router.get(f"{BASE}{prefix}/queue/data").mock(return_value=httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=body))
    router.post(f"{BASE}{prefix}/cancel").mock(return_value=httpx.Response(200, json={}))
    return join


@pytest.mark.parametrize("name", list(MODELS))
def test_request_matches_the_spaces_page_and_stream_gives_the_answer(name):
    recorded = json.loads((TRANSCRIPTS / f"{name}.echo.request.json").read_text())
    with respx.mock(assert_all_called=False) as router:
        join = serve(router, name, "echo")
        events = list(qwen_core.stream_events(MODELS[name], MESSAGES, base_url=BASE))
    sent = json.loads(join.calls.last.request.content)
    if name == "qwen3_g5":
        # The page sent only "Hi" (its history lives in server-side state); a client has
        # no such state, so the earlier turn and the question are flattened into the one
        # message the Space takes. Everything else must be what the page sent.
        assert recorded["data"][0] == "Hi"
        recorded["data"][0] = QWEN3_FLATTENED
    assert sent["data"] == recorded["data"] and sent["fn_index"] == recorded["fn_index"]
    deltas = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert isinstance(events[-1], Done) and events[-1].text == deltas
    assert deltas.startswith("ECHO query=") and "What is 2+2?" in deltas
    assert not any(isinstance(e, TextReplaced) for e in events)


@pytest.mark.parametrize("name", list(MODELS))
def test_recorded_space_error_is_a_generation_error_with_its_words(name):
    with respx.mock(assert_all_called=False) as router:
        serve(router, name, "error")
        with pytest.raises(qwen_core.GenerationError) as info:
            list(qwen_core.stream_chat(MODELS[name], MESSAGES, base_url=BASE))
    assert info.value.space_message == "Quota exceeded for this model (scripted)"
