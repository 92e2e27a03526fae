"""An OpenAI-compatible API over qwen_core, served by ``streamlit run streamlit_app.py`` on
the chat page's port (``st.App(..., routes=routes(), lifespan=lifespan)``):

- ``GET /v1/models`` (and ``GET /v1/models/{id}``): every model of ``qwen_core.MODELS``;
- ``POST /v1/chat/completions``: one chat turn on the model's Space, as one
  ``chat.completion`` or as ``chat.completion.chunk`` server-sent events.

Async end to end: each turn is ``qwen_core.astream_events`` on the server's event loop (no
thread per request), over one pooled ``httpx.AsyncClient`` opened by :func:`lifespan`.
Text deltas go out as the Space sends them. A client that disconnects, a stop sequence and
a server shutdown all close the turn's event stream, which cancels the Space's job.

Who may call it: with API keys configured (``QWEN_API_KEYS`` / secrets ``api_keys``) every
``/v1`` request needs ``Authorization: Bearer <key>``; with none, only requests made on this
machine (loopback client, loopback ``Host``, no proxy header) are served. Keys are compared
in constant time and never logged. Errors use OpenAI's shape ``{"error": {"message",
"type", "code", "param"}}`` and carry the Space's own words."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import reprlib
import secrets
import signal
import socket
import stat
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _esc
from typing import Any

import httpx
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Mount
from starlette.types import Message, Receive, Scope, Send

import qwen_core
from qwen_core.events import (
    Done,
    ProcessStarted,
    QueueStatus,
    ReasoningDelta,
    ReasoningReplaced,
    Status,
    TextDelta,
    TextReplaced,
)

from .settings import Settings, current_settings

__all__ = [
    "routes", "lifespan", "OpenAIApi", "ApiError", "StopCutter", "ChatRequest",
    "parse_chat_request", "error_for", "MAX_BODY_BYTES", "MAX_MESSAGES", "PREFIX",
]

log = logging.getLogger(__name__)

PREFIX = "/v1"
MAX_BODY_BYTES = 12 * 1024 * 1024  # the 1M Space takes ~10M characters of input
MAX_MESSAGES = 10_000
MAX_STOPS = 4  # as OpenAI
MAX_STOP_CHARS = 256
MAX_MODEL_CHARS = 200  # longer names are not looked up (fuzzy matching is quadratic)
BODY_SECONDS = 60.0  # the longest a client may take to send its request body
HEADER_WAIT = 10.0  # a stream starts (headers + role chunk) at the latest after this
KEEPALIVE = 10.0  # then a comment line at least this often while the Space is silent
STOP_GRACE = 5.0  # how long a stopped turn may take to close (cancel the Space's job)
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
                 "x-real-ip", "true-client-ip", "cf-connecting-ip", "x-client-ip")
JSON_TYPES = ("application/json",)
SHUTDOWN = "shutdown"
DISCONNECT = "disconnect"
_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_short.maxlevel = 2


# -- errors ---------------------------------------------------------------------------------


class ApiError(Exception):
    """An answer in OpenAI's error shape: ``{"error": {"message", "type", "code", "param"}}``."""

    def __init__(
        self, status: int, message: str, *, type: str = "invalid_request_error",
        code: str | None = None, param: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code,
                          "param": self.param}}


def bad(message: str, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def error_for(exc: qwen_core.SpaceError) -> ApiError:
    """A qwen_core failure as the HTTP status and error body a client can act on. The
    message is qwen_core's (``[Space id] ...``), which quotes the Space's own words."""
    message = str(exc)
    said = exc.space_message
    if said and said not in message:
        message = f"{message} (the Space said: {said})"
    if isinstance(exc, qwen_core.RateLimited):
        wait = exc.retry_after
        seconds = str(max(1, math.ceil(wait))) if wait is not None else "30"
        return ApiError(429, message, type="rate_limit_error", code="space_rate_limited",
                        headers=(("retry-after", seconds),))
    if isinstance(exc, qwen_core.QueueFull):
        return ApiError(503, message, type="server_error", code="space_queue_full")
    if isinstance(exc, qwen_core.SpaceUnavailable):
        return ApiError(503, message, type="server_error", code="space_unavailable")
    if isinstance(exc, qwen_core.GenerationError):
        return ApiError(502, message, type="server_error", code="space_generation_error")
    if isinstance(exc, qwen_core.SpaceAPIChanged):
        return ApiError(502, message, type="server_error", code="space_api_changed")
    if isinstance(exc, qwen_core.InvalidRequest):
        return ApiError(400, message, code="invalid_request")
    code = "space_" + "".join("_" + c.lower() if c.isupper() else c
                              for c in type(exc).__name__).lstrip("_")
    return ApiError(502, message, type="server_error", code=code)


def _shutdown_error() -> ApiError:
    return ApiError(503, "the server is shutting down; the answer was cut short. Try again "
                    "in a moment", type="server_error", code="server_shutting_down")


# -- the request ----------------------------------------------------------------------------


@dataclass
class ChatRequest:
    """A validated ``POST /v1/chat/completions`` body."""

    model: qwen_core.Model
    messages: list[dict[str, str]]
    stream: bool = False
    stop: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})
_AUDIO_PARTS = frozenset({"input_audio", "audio"})
_FILE_PARTS = frozenset({"file", "input_file"})
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _content(content: Any, where: str, role: str) -> str:
    if isinstance(content, str):
        return content
    if content is None and role == "assistant":
        return ""
    if not isinstance(content, list):
        raise bad(f"{where}.content must be a string or a list of text parts, got "
                  f"{type(content).__name__}", "messages")
    texts: list[str] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        elif kind in _IMAGE_PARTS:
            raise bad(f"{at}: image parts are not supported: the Qwen Spaces behind this API "
                      "take text only", "messages", "unsupported_content")
        elif kind in _AUDIO_PARTS:
            raise bad(f"{at}: audio parts are not supported: the Qwen Spaces behind this API "
                      "take text only", "messages", "unsupported_content")
        elif kind in _FILE_PARTS:
            raise bad(f"{at}: file parts are not supported: send the text itself",
                      "messages", "unsupported_content")
        else:
            raise bad(f"{at} must be {{\"type\": \"text\", \"text\": \"...\"}}, got "
                      f"{_short.repr(part)}", "messages")
    return "".join(texts)


def _messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        raise bad("messages must be a list of {\"role\", \"content\"} objects", "messages")
    if not raw:
        raise bad("messages is empty: send at least one user message", "messages")
    if len(raw) > MAX_MESSAGES:
        raise bad(f"too many messages: {len(raw):,} (at most {MAX_MESSAGES:,})", "messages")
    out: list[dict[str, str]] = []
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise bad(f"{where} must be an object with role and content", "messages")
        role = message.get("role")
        if role in ("tool", "function"):
            raise bad(f"{where}: {role} messages are not supported: this API has no tools",
                      "messages", "unsupported_parameter")
        if not isinstance(role, str) or role not in _ROLES:
            raise bad(f"{where}.role must be system, developer, user or assistant, got "
                      f"{_short.repr(role)}", "messages")
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            raise bad(f"{where}: tool calls are not supported: this API has no tools",
                      "messages", "unsupported_parameter")
        text = _content(message.get("content"), where, role)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise bad(f"{where}.content holds a lone UTF-16 surrogate (an unpaired \\ud8xx-"
                      "\\udfff escape), which is not text", "messages") from None
        out.append({"role": _ROLES[role], "content": text})
    return out


def _stops(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise bad("stop must be a string or a list of strings", "stop")
    stops = tuple(dict.fromkeys(s for s in items if s))
    if len(stops) > MAX_STOPS:
        raise bad(f"stop takes at most {MAX_STOPS} sequences, got {len(stops)}", "stop")
    if any(len(s) > MAX_STOP_CHARS for s in stops):
        raise bad(f"a stop sequence may have at most {MAX_STOP_CHARS} characters", "stop")
    return stops


def _model(raw: Any) -> qwen_core.Model:
    if not isinstance(raw, str) or not raw.strip():
        raise bad("you must provide a model parameter (GET /v1/models lists them)", "model",
                  "missing_required_parameter" if raw is None else "invalid_value")
    if len(raw) > MAX_MODEL_CHARS:
        raise ApiError(404, f"the model {_short.repr(raw)} does not exist (GET /v1/models "
                       "lists every model)", code="model_not_found", param="model")
    try:
        return qwen_core.resolve_model(raw)
    except qwen_core.InvalidRequest as exc:
        message = str(exc).replace("python -m qwen_core --list shows every model",
                                   "GET /v1/models lists every model")
        raise ApiError(404, message, code="model_not_found", param="model") from None


def parse_chat_request(body: bytes) -> ChatRequest:
    """Validate a chat completions body; every refusal is an :class:`ApiError` (400, or
    404 for an unknown model). Fields this API cannot honour but that change nothing
    essential (sampling, limits, ``user``, ``seed``...) are accepted and ignored."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise bad("the JSON body is nested too deeply", code="invalid_json") from None
    except ValueError as exc:
        raise bad(f"the body is not valid JSON: {str(exc)[:200]}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise bad("the body must be a JSON object", code="invalid_json")
    model = _model(data.get("model"))
    messages = _messages(data.get("messages"))
    stream = data.get("stream")
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad("stream must be true or false", "stream")
    n = data.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise bad("n must be a positive whole number", "n")
    if n is not None and n > 1:
        raise bad("n > 1 is not supported: the Spaces give one answer per request", "n",
                  "unsupported_value")
    for name in ("tools", "functions"):
        if data.get(name):
            raise bad(f"{name} are not supported: the Qwen Spaces behind this API cannot "
                      "call tools", name, "unsupported_parameter")
    for name in ("tool_choice", "function_call"):
        if data.get(name) not in (None, "none", "auto"):
            raise bad(f"{name} is not supported: this API has no tools", name,
                      "unsupported_parameter")
    response_format = data.get("response_format")
    if response_format is not None and not (
        isinstance(response_format, Mapping) and response_format.get("type") == "text"
    ):
        raise bad("response_format: only {\"type\": \"text\"} is supported (the Spaces cannot "
                  "be held to JSON output)", "response_format", "unsupported_value")
    modalities = data.get("modalities")
    if modalities is not None and (not isinstance(modalities, list)
                                   or any(m != "text" for m in modalities)):
        raise bad("modalities: only [\"text\"] is supported", "modalities", "unsupported_value")
    if data.get("audio") is not None:
        raise bad("audio output is not supported", "audio", "unsupported_parameter")
    options: dict[str, Any] = {}
    budget = data.get("thinking_budget")
    if budget is not None and "thinking_budget" in model.adapter.options:
        options["thinking_budget"] = budget
    return ChatRequest(model, messages, stream, _stops(data.get("stop")), options)


# -- stop sequences -------------------------------------------------------------------------


class StopCutter:
    """Cuts the answer at the first stop sequence, also one split across deltas. Text goes
    out at once unless its tail could begin a stop sequence; only that tail is held back
    (at most the longest stop minus one character). Work per delta is bounded by its length
    plus the (capped) stop lengths, so the whole answer is processed in linear time."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self.pending = ""
        self.hit = False

    def feed(self, text: str) -> str:
        """The text that may go out now; after a hit, the text before the stop sequence."""
        buf = self.pending + text if self.pending else text
        cut = -1
        for stop in self.stops:
            i = buf.find(stop)
            if i != -1 and (cut == -1 or i < cut):
                cut = i
        if cut != -1:
            self.hit = True
            self.pending = ""
            return buf[:cut]
        hold = self._hold(buf)
        if hold:
            self.pending = buf[-hold:]
            return buf[:-hold]
        self.pending = ""
        return buf

    def _hold(self, buf: str) -> int:
        """Length of the longest tail of ``buf`` that is a proper prefix of a stop."""
        n = len(buf)
        best = 0
        for stop in self.stops:
            j = buf.find(stop[0], max(0, n - len(stop) + 1))
            while j != -1 and n - j > best:
                if stop.startswith(buf[j:]):
                    best = n - j
                    break
                j = buf.find(stop[0], j + 1)
        return best

    def flush(self) -> str:
        """The held-back tail, at the end of the answer (it was no stop after all)."""
        tail, self.pending = self.pending, ""
        return tail

    def reset(self) -> None:
        self.pending = ""


# -- who may call ---------------------------------------------------------------------------


def _is_loopback_ip(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(mapped is not None and mapped.is_loopback)


def _is_loopback_name(host: str) -> bool:
    """``Host`` header names this machine (defeats DNS rebinding without keys)."""
    name = host.strip()
    if name.startswith("["):
        name = name[1:name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    name = name.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost") or _is_loopback_ip(name)


def _digest(value: str | bytes) -> bytes:
    raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    return hashlib.sha256(raw).digest()


NO_KEY_HELP = (
    "This API serves only requests made on this machine while no API key is set. To call "
    "it from elsewhere or through a proxy, set keys: QWEN_API_KEYS=key1,key2 in the "
    "environment, or api_keys = [\"key1\"] in .streamlit/secrets.toml (on Streamlit "
    "Community Cloud: the app's Settings > Secrets), then send "
    "\"Authorization: Bearer <key>\"."
)


def authorize(scope: Scope, headers: Headers, settings: Settings) -> str:
    """Who is calling (a caller id for the per-key stream limit), or an ApiError: 401 for
    a missing/wrong key when keys are set, 403 for a non-local request when none is."""
    keys = settings.api_keys
    if keys:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "You didn't provide an API key. Send it as \"Authorization: "
                           "Bearer <key>\".", code="invalid_api_key")
        presented = _digest(token)
        matched: bytes | None = None
        for key in keys:  # every key is compared: no early exit, constant time per key
            mine = _digest(key)
            if hmac.compare_digest(presented, mine) and matched is None:
                matched = mine
        if matched is None:
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
        return "key:" + matched.hex()[:16]
    client = scope.get("client")
    host = client[0] if client else ""
    if not _is_loopback_ip(str(host or "")):
        raise ApiError(403, NO_KEY_HELP, type="permission_error", code="api_key_required")
    if any(name in headers for name in PROXY_HEADERS):
        raise ApiError(403, "The request came through a proxy. " + NO_KEY_HELP,
                       type="permission_error", code="api_key_required")
    host_header = headers.get("host")
    if host_header is not None and not _is_loopback_name(host_header):
        raise ApiError(403, "The request names another host than this machine. "
                       + NO_KEY_HELP, type="permission_error", code="api_key_required")
    return "local"


def _cors(headers: Headers, settings: Settings) -> list[tuple[bytes, bytes]]:
    """CORS response headers for an allowed ``Origin`` (none when CORS is off)."""
    origins = settings.cors_origins
    origin = headers.get("origin")
    if not origins or origin is None:
        return []
    if "*" in origins:
        return [(b"access-control-allow-origin", b"*"),
                (b"access-control-expose-headers", b"retry-after, x-request-id")]
    if origin in origins:
        return [(b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-expose-headers", b"retry-after, x-request-id"),
                (b"vary", b"Origin")]
    return []


# -- responses ------------------------------------------------------------------------------


def _headers(pairs: tuple[tuple[str, str], ...]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


async def send_json(
    send: Send, status: int, payload: Any, extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()  # ASCII: lone surrogates too
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"), *extra]})
    await send({"type": "http.response.body", "body": body})


def _model_object(model: qwen_core.Model) -> dict[str, Any]:
    return {"id": model.id, "object": "model", "created": 0, "owned_by": model.space_id}


def models_list() -> dict[str, Any]:
    return {"object": "list", "data": [_model_object(m) for m in qwen_core.MODELS.values()]}


class _ClientGone(Exception):
    """The client disconnected while sending its request."""


async def read_body(receive: Receive, headers: Headers, cap: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused (413) before it is read whole when it is over ``cap``: the
    declared Content-Length first, then the bytes as they arrive."""
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise bad("Content-Length is not a number", code="invalid_request")
        if int(declared) > cap:
            raise ApiError(413, f"the request body is {int(declared):,} bytes; at most "
                           f"{cap:,} are accepted", code="request_too_large",
                           headers=(("connection", "close"),))
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > cap:
                    raise ApiError(413, f"the request body is over {cap:,} bytes",
                                   code="request_too_large", headers=(("connection", "close"),))
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise ApiError(408, f"the request body took longer than {BODY_SECONDS:g} s to arrive",
                       code="request_timeout", headers=(("connection", "close"),)) from None
    return b"".join(chunks)


# -- one chat turn --------------------------------------------------------------------------

_TIMEOUT = object()
_END = object()
_CONTENT = (TextDelta, TextReplaced, ReasoningDelta, ReasoningReplaced, Done)


async def _anext(gen: AsyncIterator[Any]) -> Any:
    return await gen.__anext__()


def _comment(text: str) -> str:
    line = " ".join(text.split())[:200]
    return f": {line}\n\n"


class _Rewritten(Exception):
    """The Space rewrote answer text that was already streamed to the client."""


class Turn:
    """One chat completion in flight: pulls qwen_core events and writes the response.
    Runs in its own task so that a disconnect or shutdown can stop it (cancelling that task
    closes the event stream, which cancels the Space's job)."""

    def __init__(
        self, request: ChatRequest, events: AsyncGenerator[Any, None], send: Send,
        extra: list[tuple[bytes, bytes]],
    ) -> None:
        self.request = request
        self.events = events
        self.send = send
        self.extra = extra
        self.id = "chatcmpl-" + secrets.token_hex(12)
        self.created = int(time.time())
        self.cutter = StopCutter(request.stop) if request.stop else None
        self.reason: str | None = None  # why it was stopped from outside
        self.task: asyncio.Task[None] | None = None
        self.started = False  # response headers sent
        self.complete = False  # the last byte of the response sent
        self._next: asyncio.Task[Any] | None = None
        self._sent: list[str] = []  # answer text the client has (for rewrites)
        self._reasoning: list[str] = []
        self._head = (
            f'data: {{"id":"{self.id}","object":"chat.completion.chunk","created":'
            f'{self.created},"model":{_esc(request.model.id)},"system_fingerprint":null,'
            '"choices":[{"index":0,"delta":'
        )
        self._tail = ',"logprobs":null,"finish_reason":null}]}\n\n'

    # -- control from outside --

    def stop(self, reason: str) -> None:
        if self.reason is None and not self.complete and self.task is not None:
            self.reason = reason
            self.task.cancel()

    async def run(self) -> None:
        try:
            if self.request.stream:
                await self._stream()
            else:
                await self._collect()
        except asyncio.CancelledError:
            if self.reason != SHUTDOWN:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await self._close()
            await self._fail(_shutdown_error())
        except qwen_core.SpaceError as exc:
            await self._close()
            await self._fail(error_for(exc))
        except _Rewritten:
            await self._close()
            await self._fail(ApiError(
                502, "the Space rewrote answer text it had already streamed, which a "
                "streamed completion cannot take back; ask again with stream=false to get "
                "the Space's final text", type="server_error", code="answer_rewritten"))
        except Exception:  # noqa: BLE001 - a bug must still end the response cleanly
            log.exception("chat completion %s failed", self.id)
            await self._close()
            await self._fail(ApiError(500, "internal error in the API server",
                                      type="server_error", code="internal_error"))
        finally:
            await self._close()

    async def _close(self) -> None:
        """Close the event stream (cancels the Space's job if it still runs)."""
        pending, self._next = self._next, None
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.wait((pending,))
        if pending is not None and pending.done() and not pending.cancelled():
            pending.exception()  # retrieved: no "never retrieved" warning
        await self.events.aclose()

    async def _fail(self, error: ApiError) -> None:
        if self.complete or self.reason == DISCONNECT:
            return
        if not self.started:
            self.started = self.complete = True
            await send_json(self.send, error.status, error.body(),
                            [*_headers(error.headers), *self._id_header(), *self.extra])
            return
        self.complete = True
        body = b"data: " + json.dumps(error.body(), separators=(",", ":")).encode() + b"\n\n"
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

    def _id_header(self) -> list[tuple[bytes, bytes]]:
        return [(b"x-request-id", self.id.encode())]

    # -- streaming --

    async def _pull(self, wait: float) -> Any:
        """The next event, ``_TIMEOUT`` after ``wait`` seconds (the pull stays pending,
        nothing is lost) or ``_END``."""
        task = self._next
        if task is None:
            task = self._next = asyncio.ensure_future(_anext(self.events))
        done, _ = await asyncio.wait((task,), timeout=wait)
        if not done:
            return _TIMEOUT
        self._next = None
        try:
            return task.result()
        except StopAsyncIteration:
            return _END

    async def _write(self, data: str) -> None:
        await self.send({"type": "http.response.body", "more_body": True,
                         "body": data.encode("utf-8", "replace")})

    def _start_bytes(self) -> str:
        return self._head + '{"role":"assistant","content":"","refusal":null}' + self._tail

    async def _start(self, first: str = "") -> None:
        self.started = True
        await self.send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"),
            *self._id_header(), *self.extra]})
        await self._write(self._start_bytes() + first)

    async def _stream(self) -> None:
        """Headers wait for the first answer or reasoning text (so a failure before it is
        an HTTP error status), but at most HEADER_WAIT seconds; then comments keep the
        connection alive while the Space is silent (e.g. queued)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HEADER_WAIT
        while True:
            wait = KEEPALIVE if self.started else max(0.0, deadline - loop.time())
            item = await self._pull(wait)
            if item is _TIMEOUT:
                if self.started:
                    await self._write(": keep-alive\n\n")
                else:
                    await self._start()
                continue
            if item is _END:
                if not self.started:
                    await self._start()
                await self._finish()
                return
            if isinstance(item, _CONTENT):
                chunk = self._chunk_for(item)
                if not self.started:
                    await self._start(chunk)
                elif chunk:
                    await self._write(chunk)
                if self._ended(item):
                    await self._end_of_answer(item)
                    return
                break
            if self.started:
                await self._note(item)
        # the answer is flowing: plain iteration, one write per delta
        send = self.send
        head, tail = self._head, self._tail
        sent = self._sent
        cutter = self.cutter
        async for event in self.events:
            if type(event) is TextDelta and cutter is None:
                sent.append(event.text)
                await send({"type": "http.response.body", "more_body": True, "body": (
                    head + '{"content":' + _esc(event.text) + "}" + tail).encode()})
                continue
            if isinstance(event, _CONTENT):
                chunk = self._chunk_for(event)
                if chunk:
                    await self._write(chunk)
                if self._ended(event):
                    await self._end_of_answer(event)
                    return
            else:
                await self._note(event)
        await self._finish()

    def _content_chunk(self, text: str) -> str:
        self._sent.append(text)
        return self._head + '{"content":' + _esc(text) + "}" + self._tail

    def _chunk_for(self, event: Any) -> str:
        """The SSE text for one content event ('' when nothing goes out)."""
        kind = type(event)
        if kind is ReasoningDelta:
            self._reasoning.append(event.text)
            return self._head + '{"reasoning_content":' + _esc(event.text) + "}" + self._tail
        if kind is ReasoningReplaced:
            before = "".join(self._reasoning)
            if event.text.startswith(before) and len(event.text) > len(before):
                extra = event.text[len(before):]
                self._reasoning = [event.text]
                return self._head + '{"reasoning_content":' + _esc(extra) + "}" + self._tail
            self._reasoning = [event.text]  # not an extension: the final message has it
            return ""
        if kind is Done:
            return ""  # held-back text (a stop's possible start) goes out in _finish
        if kind is TextReplaced:
            shown = "".join(self._sent)
            if not event.text.startswith(shown):
                raise _Rewritten
            self._sent = [shown]
            text = event.text[len(shown):]
            if self.cutter is not None:
                self.cutter.reset()
        else:
            text = event.text
        if self.cutter is not None:
            text = self.cutter.feed(text)
        return self._content_chunk(text) if text else ""

    def _ended(self, event: Any) -> bool:
        return type(event) is Done or (self.cutter is not None and self.cutter.hit)

    async def _end_of_answer(self, event: Any) -> None:
        if type(event) is not Done:  # a stop sequence: cancel the Space's job at once
            await self._close()
        await self._finish()

    async def _finish(self) -> None:
        cutter = self.cutter
        held = cutter.flush() if cutter is not None and not cutter.hit else ""
        self.complete = True
        body = ((self._content_chunk(held) if held else "")
                + self._head + "{}" + ',"logprobs":null,"finish_reason":"stop"}]}\n\n'
                + "data: [DONE]\n\n")
        await self.send({"type": "http.response.body", "body": body.encode(),
                         "more_body": False})

    async def _note(self, event: Any) -> None:
        """Queue and status events as SSE comments (clients ignore them; proxies see life)."""
        if type(event) is QueueStatus:
            where = f"queue position {event.rank}" if event.rank is not None else "queued"
            if event.queue_size is not None:
                where += f" of {event.queue_size}"
            await self._write(_comment(where))
        elif type(event) is ProcessStarted:
            await self._write(": the Space started answering\n\n")
        elif type(event) is Status and event.text:
            await self._write(_comment("status: " + event.text))

    # -- one JSON answer --

    async def _collect(self) -> None:
        text: list[str] = []
        reasoning: list[str] = []
        cutter = self.cutter
        final: str | None = None
        async for event in self.events:
            kind = type(event)
            if kind is TextDelta:
                piece = event.text if cutter is None else cutter.feed(event.text)
                text.append(piece)
            elif kind is TextReplaced:
                if cutter is not None:
                    cutter = self.cutter = StopCutter(self.request.stop)
                text = [event.text if cutter is None else cutter.feed(event.text)]
            elif kind is ReasoningDelta:
                reasoning.append(event.text)
            elif kind is ReasoningReplaced:
                reasoning = [event.text]
            elif kind is Done:
                if cutter is None:
                    text, reasoning = [event.text], [event.reasoning]
                else:
                    text.append(cutter.flush())
                    reasoning = [event.reasoning]
                final = "".join(text)
                break
            if cutter is not None and cutter.hit:
                await self._close()  # cancel the Space's job at once
                final = "".join(text)
                break
        if final is None:
            final = "".join(text) + (cutter.flush() if cutter is not None else "")
        await self._answer(final, "".join(reasoning))

    async def _answer(self, text: str, reasoning: str) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if reasoning:
            message["reasoning_content"] = reasoning
        payload = {
            "id": self.id, "object": "chat.completion", "created": self.created,
            "model": self.request.model.id,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "system_fingerprint": None,
        }
        self.started = self.complete = True
        await send_json(self.send, 200, payload, [*self._id_header(), *self.extra])


# -- the server-wide state ------------------------------------------------------------------


class ApiState:
    """What the routes share: the pooled HTTP client, the turns in flight (to stop them
    at shutdown) and the per-caller stream counts."""

    def __init__(self) -> None:
        self.client: httpx.AsyncClient | None = None
        self.turns: set[Turn] = set()
        self.streams: dict[str, int] = {}
        self.closing = False

    @contextlib.contextmanager
    def slot(self, caller: str, limit: int) -> Iterator[None]:
        count = self.streams.get(caller, 0)
        if count >= limit:
            raise ApiError(429, f"too many concurrent requests for this API key: at most "
                           f"{limit} at once (api_streams_per_key); wait for one to finish",
                           type="rate_limit_error", code="too_many_streams",
                           headers=(("retry-after", "1"),))
        self.streams[caller] = count + 1
        try:
            yield
        finally:
            left = self.streams.get(caller, 1) - 1
            if left > 0:
                self.streams[caller] = left
            else:
                self.streams.pop(caller, None)

    def begin_shutdown(self) -> None:
        """Stop every turn in flight: open streams end with an error event, waiting
        requests get 503; new requests are refused."""
        self.closing = True
        for turn in list(self.turns):
            turn.stop(SHUTDOWN)

    async def run(self, turn: Turn, receive: Receive) -> None:
        """Run ``turn`` in its own task while watching for the client to disconnect."""
        turn.task = asyncio.create_task(turn.run())
        self.turns.add(turn)
        gone = asyncio.create_task(_disconnected(receive))
        try:
            await asyncio.wait((turn.task, gone), return_when=asyncio.FIRST_COMPLETED)
            if not turn.task.done():  # the client left before the answer was complete
                turn.stop(DISCONNECT)
                await asyncio.wait((turn.task,), timeout=STOP_GRACE)
        except asyncio.CancelledError:  # the server cancelled this request
            turn.stop(DISCONNECT)
            with contextlib.suppress(BaseException):
                await asyncio.wait((turn.task,), timeout=STOP_GRACE)
            raise
        finally:
            self.turns.discard(turn)
            gone.cancel()
            if turn.task.done() and not turn.task.cancelled():
                turn.task.exception()


async def _disconnected(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


STATE = ApiState()


# -- the ASGI app and its wiring ------------------------------------------------------------


class OpenAIApi:
    """The ``/v1`` ASGI app (mounted by :func:`routes`)."""

    def __init__(self, state: ApiState = STATE,
                 settings: Callable[[], Settings] = current_settings) -> None:
        self.state = state
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        root = scope.get("root_path", "")
        path = scope["path"]
        if root and path.startswith(root):
            path = path[len(root):]
        method = scope["method"]
        headers = Headers(scope=scope)
        settings = self.settings()
        extra = _cors(headers, settings)
        try:
            if method == "OPTIONS":
                await self._preflight(send, headers, settings)
                return
            caller = authorize(scope, headers, settings)
            if path in ("/models", "/models/"):
                self._method(method, ("GET",), path)
                await send_json(send, 200, models_list(), extra)
            elif path.startswith("/models/"):
                self._method(method, ("GET",), path)
                await send_json(send, 200, _model_object(_model(path[len("/models/"):])), extra)
            elif path in ("/chat/completions", "/chat/completions/"):
                self._method(method, ("POST",), path)
                await self._chat(receive, send, headers, settings, caller, extra)
            else:
                raise ApiError(404, f"Invalid URL ({method} {PREFIX}{path})",
                               code="unknown_url")
        except ApiError as exc:
            await send_json(send, exc.status, exc.body(), [*_headers(exc.headers), *extra])
        except _ClientGone:
            return

    @staticmethod
    def _method(method: str, allowed: tuple[str, ...], path: str) -> None:
        if method not in allowed:
            raise ApiError(405, f"{method} is not allowed on {PREFIX}{path} (use "
                           f"{', '.join(allowed)})", code="method_not_allowed",
                           headers=(("allow", ", ".join(allowed)),))

    async def _preflight(self, send: Send, headers: Headers, settings: Settings) -> None:
        """A CORS preflight (no key needed: browsers send none): allowed origins get the
        methods and the headers they ask for; anything else is refused."""
        allow = _cors(headers, settings)
        asked = headers.get("access-control-request-method")
        if not settings.cors_origins:
            raise ApiError(405, "CORS is off: set cors_origins (QWEN_CORS_ORIGINS) to call "
                           "this API from a web page", code="method_not_allowed")
        if not allow or asked is None:
            raise ApiError(400, "Disallowed CORS origin or not a preflight request",
                           code="cors_refused")
        pairs = [*allow, (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                 (b"access-control-max-age", b"600")]
        wanted = headers.get("access-control-request-headers")
        if wanted:
            pairs.append((b"access-control-allow-headers", wanted.encode("latin-1")))
            pairs.append((b"vary", b"Access-Control-Request-Headers"))
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-length", b"2"), (b"content-type", b"text/plain"), *pairs]})
        await send({"type": "http.response.body", "body": b"OK"})

    async def _chat(
        self, receive: Receive, send: Send, headers: Headers, settings: Settings,
        caller: str, extra: list[tuple[bytes, bytes]],
    ) -> None:
        state = self.state
        if state.closing:
            raise _shutdown_error()
        kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind not in JSON_TYPES and not kind.endswith("+json"):
            raise ApiError(415, "send the request as JSON with \"Content-Type: "
                           "application/json\"", code="unsupported_content_type")
        request = parse_chat_request(await read_body(receive, headers))
        model = request.model
        try:
            events = qwen_core.astream_events(
                model, request.messages, base_url=settings.space_urls.get(model.space_id),
                hf_token=settings.hf_token, client=state.client,
                limits=qwen_core.Limits(max_answer_chars=settings.max_answer_chars,
                                        max_turn_seconds=settings.max_turn_seconds),
                **request.options,
            )
        except qwen_core.InvalidRequest as exc:
            param = "thinking_budget" if "thinking_budget" in str(exc) else "messages"
            raise ApiError(400, str(exc), code="invalid_request", param=param) from None
        with state.slot(caller, settings.api_streams_per_key):
            await state.run(Turn(request, events, send, extra), receive)


API = OpenAIApi()


def routes() -> list[BaseRoute]:
    """The routes for ``st.App(..., routes=routes())``: the API under ``/v1``."""
    return [Mount(PREFIX, app=API)]


def _chain_signals(on_signal: Callable[[], None]) -> Callable[[], None]:
    """Call ``on_signal`` (on the loop) when SIGINT/SIGTERM arrives, then the handler that
    was installed (uvicorn's, which starts the graceful shutdown). uvicorn waits for open
    connections before it runs the lifespan's shutdown, so open streams must hear of the
    shutdown here, from the signal itself. Returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    mine: dict[int, tuple[Any, Any]] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum: int, frame: Any, _previous: Any = previous) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(on_signal)
            _previous(signum, frame)

        signal.signal(sig, handler)
        mine[sig] = (previous, handler)

    def undo() -> None:
        for sig, (previous, handler) in mine.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous)

    return undo


def nodelay_listeners() -> int:
    """Set TCP_NODELAY on this process's listening TCP sockets; returns how many.

    Streamlit 1.67 binds its server socket itself as ``socket.socket(family)`` (protocol
    0), and asyncio turns Nagle's algorithm off only for sockets whose protocol is
    ``IPPROTO_TCP``: every accepted connection keeps Nagle on, so a small write (an SSE
    chunk, a JSON body after its headers) waits for the client's delayed ACK, up to
    40 ms. Linux copies TCP_NODELAY from a listening socket to the connections it
    accepts, so setting it on the listener before serving fixes every connection (the
    page's websocket too). Linux only (``/proc/self/fd``); elsewhere a no-op."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return 0
    done = 0
    for name in names:
        try:
            fd = int(name)
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except (OSError, ValueError):
            continue
        with sock:
            try:
                if (sock.family in (socket.AF_INET, socket.AF_INET6)
                        and sock.type == socket.SOCK_STREAM
                        and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    done += 1
            except OSError:
                pass
    return done


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """For ``st.App(..., lifespan=lifespan)``: opens the pooled HTTP client the turns
    share, turns Nagle's algorithm off on the server's connections
    (:func:`nodelay_listeners`) and, when the server shuts down, ends open streams with an
    error event."""
    state = STATE
    state.closing = False
    state.client = httpx.AsyncClient(
        follow_redirects=True, timeout=None,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
    )
    undo = _chain_signals(state.begin_shutdown)
    nodelay_listeners()
    try:
        yield
    finally:
        undo()
        state.begin_shutdown()
        tasks = [t.task for t in list(state.turns) if t.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE)
        client, state.client = state.client, None
        await client.aclose()
