import json

import httpx
import pytest

from qwen_core import queue_api

BASE = "http://space.test"
PREFIX = "/gradio_api"


@pytest.fixture(autouse=True)
def _clean_env_and_cache(monkeypatch):
    monkeypatch.delenv("QWEN_SPACE_URLS", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    queue_api.config_cache.clear()
    yield
    queue_api.config_cache.clear()


def max_config(version="5.50.0", protocol="sse_v3", prefix=PREFIX, fn_types=None):
    """A /config like the Qwen2.5-Max Space's: event 0 = [textbox, chatbot, textbox]."""
    types = fn_types or (["textbox", "chatbot", "textbox"], ["textbox", "chatbot", "textbox"])
    comps = [{"id": 1, "type": "textbox", "props": {}},
             {"id": 2, "type": "chatbot", "props": {"type": "tuples"}},
             {"id": 3, "type": "textbox", "props": {}}]
    ids = {"textbox": [1, 3], "chatbot": [2]}

    def pick(names):
        counters = {k: 0 for k in ids}
        out = []
        for n in names:
            pool = ids.get(n) or [99]
            out.append(pool[counters.get(n, 0) % len(pool)])
            counters[n] = counters.get(n, 0) + 1
        return out

    config = {"version": version, "protocol": protocol, "components": comps,
              "dependencies": [{"id": 0, "inputs": pick(types[0]), "outputs": pick(types[1]),
                                "api_name": "model_chat", "queue": None}]}
    if prefix is not None:
        config["api_prefix"] = prefix
    return config


def sse(*messages):
    body = "".join(f"data: {json.dumps(m)}\n\n" for m in messages)
    return httpx.Response(200, headers={"content-type": "text/event-stream"},
                          content=body.encode())


def answer_stream(eid, tokens, history=()):
    pairs = [list(p) for p in history]
    msgs = [{"msg": "process_starts", "event_id": eid},
            {"msg": "process_generating", "event_id": eid,
             "output": {"data": ["", [*pairs, ["q", ""]], "s"]}, "success": True}]
    text = ""
    n = len(pairs)
    for tok in tokens:
        text += tok
        msgs.append({"msg": "process_generating", "event_id": eid, "success": True,
                     "output": {"data": [[], [["append", [n, 1], tok]], []]}})
    msgs.append({"msg": "process_completed", "event_id": eid, "success": True,
                 "output": {"data": ["", [*pairs, ["q", text]], "s"]}})
    msgs.append({"msg": "close_stream", "event_id": None})
    return msgs
