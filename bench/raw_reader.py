"""The floor: a hand-written Gradio queue reader (httpx + httpx-sse, nothing else).

``GET /config`` (JSON-decoded, ``api_prefix`` read from it), one ``POST queue/join``, one
``GET queue/data`` stream, ``json.loads`` per message, and only what the Max replica's
layout needs to follow the answer: the assistant message's text in the first full
update, then the ``append`` edits on that leaf. No validation, no error mapping, no
cancel: it is what any client must at least do, so its times are the floor."""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Iterator

import httpx
from httpx_sse import connect_sse

ALPHABET = string.ascii_lowercase + string.digits
FN_INDEX = 0  # the Max replica's chat event
CHATBOT = 1  # output index of its Chatbot


def stream(
    base_url: str, query: str, system: str = "You are a helpful assistant."
) -> Iterator[str]:
    """Yield the answer's text deltas for ``query`` sent to the Max (Gradio 6) replica."""
    base_url = base_url.rstrip("/")
    with httpx.Client(timeout=httpx.Timeout(10.0, read=60.0), follow_redirects=True) as client:
        config = json.loads(client.get(f"{base_url}/config").content)
        prefix = base_url + config.get("api_prefix", "")
        session = "".join(secrets.choice(ALPHABET) for _ in range(11))
        join = client.post(f"{prefix}/queue/join", json={
            "data": [query, [], system], "event_data": None, "fn_index": FN_INDEX,
            "trigger_id": None, "session_hash": session,
        })
        event_id = json.loads(join.content)["event_id"]
        leaf: list | None = None  # path of the answer's text leaf inside output CHATBOT
        with connect_sse(client, "GET", f"{prefix}/queue/data",
                         params={"session_hash": session}) as source:
            for sse in source.iter_sse():
                msg = json.loads(sse.data)
                if msg.get("event_id") != event_id:
                    continue
                kind = msg["msg"]
                if kind == "process_generating":
                    data = msg["output"]["data"]
                    if leaf is None:  # first update: full outputs
                        messages = data[CHATBOT]
                        leaf = [len(messages) - 1, "content", 0, "text"]
                        text = messages[-1]["content"][0]["text"]
                        if text:
                            yield text
                        continue
                    for op, path, value in data[CHATBOT]:
                        if op == "append" and path == leaf:
                            yield value
                elif kind == "process_completed":
                    return
