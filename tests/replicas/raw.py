"""A minimal raw Gradio queue client (plain httpx) for proving the replicas' wire format.

Deliberately independent of ``qwen_core`` and ``gradio_client``: it does exactly what the
browser does (``POST {prefix}/queue/join`` then ``GET {prefix}/queue/data`` as SSE) and
keeps every ``data:`` line verbatim, so tests and recorded transcripts show the bytes the
Space sends.
"""

from __future__ import annotations

import copy
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx

DEFAULT_TIMEOUT = 60.0


def new_session_hash() -> str:
    return secrets.token_hex(6)[:11]


def get_config(base_url: str, *, client: httpx.Client | None = None) -> dict[str, Any]:
    own = client is None
    client = client or httpx.Client(timeout=DEFAULT_TIMEOUT)
    try:
        response = client.get(f"{base_url}/config")
        response.raise_for_status()
        return response.json()
    finally:
        if own:
            client.close()


def api_prefix(config: dict[str, Any]) -> str:
    """``/gradio_api`` for Gradio 5/6, ``""`` for Gradio 4 (no ``api_prefix`` key)."""
    return str(config.get("api_prefix") or "").rstrip("/")


def apply_diff(value: Any, ops: list[list[Any]]) -> Any:
    """Apply Gradio's streaming diff ops (``replace``/``append``/``add``/``delete``) to a
    deep copy of ``value`` (same semantics as ``gradio_client.utils.apply_diff``)."""
    value = copy.deepcopy(value)
    for action, path, new in ops:
        if not path:
            if action == "replace":
                value = new
            elif action == "append":
                value = value + new
            else:
                raise ValueError(f"unsupported root action {action!r}")
            continue
        target = value
        for key in path[:-1]:
            target = target[key]
        last = path[-1]
        if action == "replace":
            target[last] = new
        elif action == "append":
            target[last] += new
        elif action == "add":
            if isinstance(target, list):
                target.insert(int(last), new)
            else:
                target[last] = new
        elif action == "delete":
            if isinstance(target, list):
                del target[int(last)]
            else:
                del target[last]
        else:
            raise ValueError(f"unknown diff action {action!r}")
    return value


@dataclass
class Transcript:
    """Everything one queued call produced."""

    session_hash: str
    event_id: str
    lines: list[str] = field(default_factory=list)  # raw ``data: ...`` lines, in order
    messages: list[dict[str, Any]] = field(default_factory=list)  # parsed, ours only

    @property
    def completed(self) -> dict[str, Any]:
        for message in self.messages:
            if message.get("msg") == "process_completed":
                return message
        raise AssertionError(f"no process_completed in {self.lines!r}")

    @property
    def generating(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("msg") == "process_generating"]

    def outputs_by_step(self) -> list[list[Any]]:
        """The full output data after each process_generating message (diffs applied)."""
        states: list[list[Any]] = []
        current: list[Any] | None = None
        for message in self.generating:
            data = message["output"]["data"]
            if current is None:
                current = copy.deepcopy(data)
            else:
                current = [apply_diff(old, ops) for old, ops in zip(current, data, strict=True)]
            states.append(current)
        return states


def run_queued(
    base_url: str,
    fn_index: int,
    data: list[Any],
    *,
    prefix: str | None = None,
    session_hash: str | None = None,
    trigger_id: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    client: httpx.Client | None = None,
) -> Transcript:
    """Join the queue with ``data`` and read ``/queue/data`` until our process_completed
    (or ``close_stream``)."""
    own = client is None
    client = client or httpx.Client(timeout=timeout)
    try:
        if prefix is None:
            prefix = api_prefix(get_config(base_url, client=client))
        session_hash = session_hash or new_session_hash()
        body = {
            "data": data,
            "fn_index": fn_index,
            "session_hash": session_hash,
            "event_data": None,
            "trigger_id": trigger_id,
        }
        joined = client.post(f"{base_url}{prefix}/queue/join", json=body)
        joined.raise_for_status()
        event_id = str(joined.json()["event_id"])
        return read_stream(
            base_url, prefix=prefix, session_hash=session_hash, event_id=event_id, client=client
        )
    finally:
        if own:
            client.close()


def read_stream(
    base_url: str,
    *,
    prefix: str,
    session_hash: str,
    event_id: str,
    timeout: float = DEFAULT_TIMEOUT,
    client: httpx.Client | None = None,
) -> Transcript:
    """Read ``GET {prefix}/queue/data?session_hash=...`` (SSE) until ``close_stream``,
    keeping our event's messages (and heartbeats). Gradio buffers a session's messages
    until this stream connects, so it may be opened after the join."""
    own = client is None
    client = client or httpx.Client(timeout=timeout)
    transcript = Transcript(session_hash=session_hash, event_id=event_id)
    try:
        url = f"{base_url}{prefix}/queue/data"
        with client.stream("GET", url, params={"session_hash": session_hash}) as stream:
            stream.raise_for_status()
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[len("data:") :])
                if message.get("event_id") not in (event_id, None):
                    continue
                transcript.lines.append(line)
                transcript.messages.append(message)
                # Gradio sends close_stream (event_id null) right after the session's last
                # pending event completes: read up to it so transcripts show it.
                if message.get("msg") == "close_stream":
                    break
        return transcript
    finally:
        if own:
            client.close()


def join(
    base_url: str,
    fn_index: int,
    data: list[Any],
    *,
    prefix: str,
    session_hash: str,
    trigger_id: int | None = None,
) -> str:
    """``POST {prefix}/queue/join``; returns the event id."""
    body = {
        "data": data,
        "fn_index": fn_index,
        "session_hash": session_hash,
        "event_data": None,
        "trigger_id": trigger_id,
    }
    response = httpx.post(f"{base_url}{prefix}/queue/join", json=body, timeout=DEFAULT_TIMEOUT)
    response.raise_for_status()
    return str(response.json()["event_id"])


def run_predict(
    base_url: str,
    fn_index: int,
    data: list[Any],
    *,
    prefix: str = "",
    session_hash: str | None = None,
    trigger_id: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """``POST {prefix}/run/predict`` for a non-queued event (e.g. Qwen2.5-1M's fn 1)."""
    body = {
        "data": data,
        "fn_index": fn_index,
        "session_hash": session_hash or new_session_hash(),
        "event_data": None,
        "trigger_id": trigger_id,
    }
    response = httpx.post(f"{base_url}{prefix}/run/predict", json=body, timeout=timeout)
    response.raise_for_status()
    return response.json()


def cancel(
    base_url: str, *, prefix: str, session_hash: str, fn_index: int, event_id: str
) -> dict[str, Any]:
    """``POST {prefix}/cancel`` (body ``{session_hash, fn_index, event_id}``)."""
    response = httpx.post(
        f"{base_url}{prefix}/cancel",
        json={"session_hash": session_hash, "fn_index": fn_index, "event_id": event_id},
        timeout=DEFAULT_TIMEOUT,
    )
    response.raise_for_status()
    return response.json()
