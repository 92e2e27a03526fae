"""The HTTP conversation with a Space's queue, as pure functions: what to request and what
each answer means. The sync and async transports (:mod:`qwen_core.transport`) are thin
loops around these, so both behave the same by construction."""

from __future__ import annotations

import email.utils
import json
import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .conversation import Conversation, parse_messages
from .discovery import layout_from_config
from .errors import (
    GenerationError,
    InvalidRequest,
    QueueFull,
    RateLimited,
    SpaceAPIChanged,
    SpaceError,
    SpaceUnavailable,
)
from .models import Model, resolve_model
from .settings import Endpoint, redact_url, resolve_endpoint
from .spaces.base import Layout, Payload, SpaceAdapter

__all__ = [
    "Request",
    "prepare",
    "config_cache",
    "read_config",
    "join_body",
    "read_join",
    "cancel_body",
    "RetryLater",
    "MAX_RATE_RETRIES",
    "MAX_RETRY_WAIT",
    "new_session_hash",
    "sse_problem",
    "decode_sse_data",
]

MAX_RATE_RETRIES = 2
MAX_RETRY_WAIT = 10.0  # seconds: a longer Retry-After is reported, not waited for
SESSION_ALPHABET = string.ascii_lowercase + string.digits

# (base_url, space_id) -> Layout discovered from /config; one entry per Space per process
config_cache: dict[tuple[str, str], Layout] = {}


@dataclass(frozen=True, slots=True)
class Request:
    """Everything about one chat turn that can be decided before any I/O."""

    model: Model
    conversation: Conversation
    endpoint: Endpoint
    options: Mapping[str, Any]

    @property
    def adapter(self) -> type[SpaceAdapter]:
        return self.model.adapter

    @property
    def space_id(self) -> str:
        return self.model.space_id

    def url(self, path: str, layout: Layout | None = None) -> str:
        """``base + api_prefix + path``, checked to stay on the base URL's scheme, host,
        port and userinfo: nothing a Space says can send a request (or the token) elsewhere
        (the prefix is also checked when discovered; this is the second line)."""
        prefix = layout.api_prefix if layout is not None else ""
        base = self.endpoint.base_url
        url = f"{base}{prefix}{path}"
        try:
            origin, target = httpx.URL(base), httpx.URL(url)
            same = (
                target.scheme == origin.scheme and target.host == origin.host
                and target.port == origin.port and target.userinfo == origin.userinfo
            )
        except Exception:  # noqa: BLE001 - httpx.InvalidURL and whatever its parser raises
            same = False
        if not same:
            raise SpaceAPIChanged(
                f"refusing to request {redact_url(url)[:300]!r}: with the Space's API prefix "
                f"{prefix[:100]!r} it leaves {redact_url(base)[:200]!r}",
                space_id=self.space_id,
            )
        return url

    def payload(self, layout: Layout) -> Payload:
        return self.adapter.build(self.model.spec, self.conversation, layout, self.options)


def prepare(
    model: str | Model,
    messages: Any,
    *,
    base_url: str | None = None,
    hf_token: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Request:
    """Validate the request (model, messages, size, options) before anything is sent."""
    resolved = resolve_model(model)
    conv = parse_messages(messages)
    adapter = resolved.adapter
    if conv.size() > adapter.max_input_chars:
        raise InvalidRequest(
            f"the conversation has {conv.size():,} characters; {adapter.label} accepts at most "
            f"{adapter.max_input_chars:,}. Shorten it or start a new chat.",
            space_id=adapter.space_id,
        )
    opts = dict(options or {})
    unknown = set(opts) - set(adapter.options)
    if unknown:
        known = ", ".join(adapter.options) or "none"
        raise InvalidRequest(
            f"unknown option(s) {', '.join(sorted(unknown))} for {adapter.label} "
            f"(its options: {known})",
            space_id=adapter.space_id,
        )
    endpoint = resolve_endpoint(adapter, base_url, hf_token)
    request = Request(resolved, conv, endpoint, opts)
    request.payload(adapter.known_layout())  # options are checked by building once
    return request


def new_session_hash() -> str:
    return "".join(secrets.choice(SESSION_ALPHABET) for _ in range(11))


def _looks_like_html(content_type: str, body: bytes) -> bool:
    return "html" in content_type or body.lstrip()[:1] == b"<"


def read_config(
    request: Request, status: int, content_type: str, body: bytes
) -> Layout | None:
    """The layout from ``GET /config``'s answer, or None to fall back on the adapter's known
    values (the route is missing or unreadable). A sleeping or broken Space raises."""
    space = request.space_id
    if status == 200 and not _looks_like_html(content_type, body):
        try:
            config = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):  # not JSON: use known values
            return None
        except (RecursionError, ValueError) as exc:
            # JSON, but absurd: nested past Python's recursion limit, or a number too long
            # to convert (int max str digits); a broken or hostile Space
            why = "nested too deeply" if isinstance(exc, RecursionError) else "absurd"
            raise SpaceAPIChanged(
                f"the Space's /config cannot be read ({why}: {str(exc)[:120]})", space_id=space
            ) from exc
        return layout_from_config(request.adapter, config)
    if _looks_like_html(content_type, body) or status >= 500:
        raise SpaceUnavailable(
            f"the Space is not serving its app (HTTP {status}); it may be asleep, building "
            "or broken — open its page to wake it, then try again in a minute",
            space_id=space,
        )
    return None  # 404 and friends: an older or trimmed server; use known values


class RetryLater(Exception):
    """Internal: the join was rate limited; wait ``seconds`` then try again."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


def join_body(layout: Layout, payload: Payload, session_hash: str) -> dict[str, Any]:
    return {
        "data": payload.data,
        "event_data": None,
        "fn_index": layout.fn_index,
        "trigger_id": None,
        "session_hash": session_hash,
    }


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError, IndexError):  # e.g. a 30-digit year
        return None


MAX_DETAIL = 500  # characters of a Space's error text quoted in a message


def _detail(body: bytes) -> str | None:
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(decoded, Mapping):
        detail = decoded.get("detail") or decoded.get("error") or decoded.get("message")
        if isinstance(detail, (str, int, float)):
            return str(detail)[:MAX_DETAIL]
        if detail:
            return f"(a JSON {type(detail).__name__})"
    return None


MAX_EVENT_ID = 256


def read_join(
    request: Request,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    attempt: int,
) -> str:
    """The ``event_id`` from the join's answer; raises the matching SpaceError, or
    :class:`RetryLater` when a rate limit is worth waiting out."""
    space = request.space_id
    content_type = headers.get("content-type", "")
    said = _detail(body)
    if status == 200:
        if _looks_like_html(content_type, body):
            raise SpaceUnavailable(
                "the Space answered with a web page instead of joining its queue; it may "
                "be asleep or starting — try again in a minute",
                space_id=space,
            )
        try:
            event_id = json.loads(body)["event_id"]
        except (ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
            raise SpaceAPIChanged(
                f"the Space's queue/join answer has no event_id: {body[:200]!r}", space_id=space
            ) from exc
        if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID:
            raise SpaceAPIChanged(
                f"the Space's queue/join answer has no usable event_id: {body[:200]!r}",
                space_id=space,
            )
        return event_id
    if status == 429:
        wait = _retry_after(headers.get("retry-after"))
        if attempt < MAX_RATE_RETRIES and (wait is None or wait <= MAX_RETRY_WAIT):
            raise RetryLater(1.0 if wait is None else wait)
        hint = f"; it asks to wait {wait:.0f} s" if wait else ""
        raise RateLimited(
            f"the Space is rate limiting requests{hint}. Try again later or use your own "
            "duplicate of the Space (QWEN_SPACE_URLS)",
            retry_after=wait, space_id=space, space_message=said,
        )
    if status == 503 and said and "full" in said.lower():
        raise QueueFull(
            f"the Space's queue is full ({said}); try again in a minute",
            space_id=space, space_message=said,
        )
    if status == 503 and not _looks_like_html(content_type, body):
        raise QueueFull(
            f"the Space refused the job: {said or 'queue unavailable'}; try again in a minute",
            space_id=space, space_message=said,
        )
    if status >= 500 or _looks_like_html(content_type, body):
        raise SpaceUnavailable(
            f"the Space is not accepting requests (HTTP {status}); it may be asleep, "
            "building or broken",
            space_id=space, space_message=said,
        )
    if status == 422:
        raise InvalidRequest(
            f"the Space rejected the input: {said or 'validation failed'}",
            space_id=space, space_message=said,
        )
    if status in (401, 403):
        raise SpaceUnavailable(
            f"the Space refused access (HTTP {status}): {said or 'private or gated'}; check "
            "HF_TOKEN",
            space_id=space, space_message=said,
        )
    raise SpaceAPIChanged(
        f"the Space's queue refused the chat event (HTTP {status}): {said or 'no details'}",
        space_id=space, space_message=said,
    )


def cancel_body(layout: Layout, session_hash: str, event_id: str) -> dict[str, Any]:
    return {"session_hash": session_hash, "fn_index": layout.fn_index, "event_id": event_id}


def sse_problem(request: Request, status: int, content_type: str) -> SpaceError | None:
    """Why the data stream's answer is not an event stream, or None if it is."""
    if status == 200 and "text/event-stream" in content_type:
        return None
    if status == 200 or status >= 500 or "html" in content_type:
        return SpaceUnavailable(
            "the Space's queue stream is not available "
            f"(HTTP {status}, {content_type or 'no content type'})",
            space_id=request.space_id,
        )
    return SpaceAPIChanged(
        f"the Space's queue stream answered HTTP {status}", space_id=request.space_id
    )


def decode_sse_data(data: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise SpaceAPIChanged(f"the Space sent a malformed queue message: {data[:200]!r}") from exc


def is_space_failure(exc: BaseException) -> bool:
    """Errors after which the Space's job is already over (no cancel needed)."""
    return isinstance(exc, GenerationError)
