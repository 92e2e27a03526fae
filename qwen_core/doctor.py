"""Is each Space still what its adapter expects? One ``GET /config`` per Space, no chat job.

:func:`check_space` reads a Space's ``/config`` (bounded in bytes and time, the token sent
only where the chat would send it) and judges it with the chat's own discovery code
(:func:`~qwen_core.queue_api.read_config`, :func:`~qwen_core.discovery.layout_from_config`):

=============  ==========================================================================
``fits``       the chat event is where the adapter expects it, with the expected inputs
               and outputs
``moved``      the chat event has another ``fn_index`` but was found again by its
               ``api_name`` or shape: chats still work (it fits)
``changed``    no event has the expected inputs and outputs, or ``/config`` is missing,
               unreadable, oversized or names a hostile API prefix: the adapter no longer
               fits
``unsupported``  Gradio 3 (websocket queue) or a queue protocol qwen_core does not speak
``asleep``     the Space answers with a web page or HTTP 503 (sleeping, building): not
               checked
``unreachable``  nothing answered (connection refused, timeout, DNS), access refused
               (401/403: check ``HF_TOKEN``), rate limited, or another server error: not
               checked
=============  ==========================================================================

:func:`check_all` checks several Spaces in parallel threads; :func:`exit_code` turns the
verdicts into ``python -m qwen_core --doctor``'s exit status (0 all fit, 1 some adapter no
longer fits, 2 some Space could not be checked and none misfits).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from . import queue_api as q
from .conversation import Conversation
from .errors import InvalidRequest, LimitExceeded, SpaceAPIChanged, SpaceError, SpaceUnavailable
from .limits import DEFAULT_LIMITS, Limits
from .models import ADAPTERS, MODELS, Model, resolve_model
from .protocol import SUPPORTED_PROTOCOLS
from .settings import parse_space_urls, redact_url, resolve_endpoint
from .spaces.base import Layout, SpaceAdapter
from .transport import FAILURES, Turn

__all__ = [
    "SpaceCheck",
    "State",
    "check_space",
    "check_all",
    "exit_code",
    "DEFAULT_TIMEOUT",
    "FITTING",
    "UNCHECKED",
]

State = Literal["fits", "moved", "changed", "asleep", "unreachable", "unsupported"]
FITTING: frozenset[str] = frozenset({"fits", "moved"})
UNCHECKED: frozenset[str] = frozenset({"asleep", "unreachable"})
DEFAULT_TIMEOUT = 10.0  # seconds per Space (connect, each read, and the whole /config read)

_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,39}")


@dataclass(frozen=True, slots=True)
class SpaceCheck:
    """One Space's verdict. ``base_url`` has any credentials redacted; ``gradio_version``,
    ``protocol`` and ``api_prefix`` are what the Space's ``/config`` says (None when it was
    not read); ``fn_index_found`` is where the chat event is (None when not found);
    ``detail`` is one readable sentence (it may quote the Space: a printer should strip
    control characters, as the CLI does)."""

    space_id: str
    label: str
    base_url: str
    state: State
    detail: str
    gradio_version: str | None = None
    protocol: str | None = None
    api_prefix: str | None = None
    fn_index_expected: int = 0
    fn_index_found: int | None = None
    seconds: float = 0.0

    @property
    def fits(self) -> bool:
        """The adapter fits the running Space (``fits`` or ``moved``)."""
        return self.state in FITTING

    @property
    def checked(self) -> bool:
        """The Space answered with its ``/config`` (False when asleep or unreachable)."""
        return self.state not in UNCHECKED


# a Space id, model id or alias, a Model, an adapter, or a seed class (``.adapter``)
SpaceRef = Any


def _adapter_of(space: SpaceRef) -> type[SpaceAdapter]:
    """A Space adapter, a seed class (``Qwen_Qwen_2_5_Max``), a Model, or a name that
    :func:`~qwen_core.resolve_model` knows (Space id, model id, alias, seed name)."""
    if isinstance(space, type) and issubclass(space, SpaceAdapter):
        return space
    adapter = getattr(space, "adapter", None)
    if isinstance(adapter, type) and issubclass(adapter, SpaceAdapter):
        return adapter
    return resolve_model(space).adapter


def _timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InvalidRequest(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _model_of(adapter: type[SpaceAdapter]) -> Model:
    return MODELS[adapter.models[0].id]


def _printable(value: Any) -> str | None:
    """A version or protocol string from the Space, kept when it looks like one, else a
    short ``repr`` (control characters escaped)."""
    if value is None:
        return None
    if isinstance(value, str) and _VERSION.fullmatch(value):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)[:40]
    return (repr(value) if isinstance(value, str) else f"a JSON {type(value).__name__}")[:40]


def _peek(body: bytes) -> Mapping[str, Any]:
    """The config's top-level fields for the report (empty when it is not a JSON object)."""
    try:
        config = json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return {}
    return config if isinstance(config, Mapping) else {}


def _fetch_config(
    client: httpx.Client, turn: Turn
) -> tuple[int, str, bytes]:
    """``GET /config`` at the Space's root, read in chunks within ``max_config_bytes`` and
    the check's deadline (the chat's own bounded read, :class:`~qwen_core.transport.Turn`)."""
    request = turn.request
    with client.stream("GET", request.url("/config"), headers=turn.headers,
                       timeout=turn.timeout) as resp:
        body = turn.body_buffer(resp, "/config")
        for chunk in resp.iter_bytes():
            turn.take(body, chunk, "/config")
    return resp.status_code, resp.headers.get("content-type", ""), bytes(body)


def _io_verdict(exc: SpaceError, timeout: float) -> tuple[State, str]:
    """Why the config could not be read (connection, time, size, a sleeping Space)."""
    if isinstance(exc, LimitExceeded):
        if exc.limit == "max_turn_seconds":
            return "unreachable", f"no complete /config within {timeout:g} s"
        return "changed", exc.message  # an oversized /config: broken or hostile
    if isinstance(exc, SpaceAPIChanged):  # e.g. a /config nested too deeply
        return "changed", exc.message
    return "unreachable", exc.message


def check_space(
    space: SpaceRef,
    *,
    base_url: str | None = None,
    hf_token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    client: httpx.Client | None = None,
    limits: Limits | None = None,
    space_urls: Mapping[str, str] | None = None,
) -> SpaceCheck:
    """Check one Space live with a single ``GET /config`` (no chat job is started).

    ``space``: a Space id, model id or alias, seed class or adapter. ``base_url``: the
    Space's root (default: ``space_urls``, else ``QWEN_SPACE_URLS``, else the public Space).
    ``hf_token`` (default env ``HF_TOKEN``) travels only where a chat would send it.
    ``timeout``: seconds for connecting, for each read and for the whole ``/config`` read
    (so a check ends within about ``timeout``, at most twice it for a Space that is slow to
    connect and then silent). ``client``: your own ``httpx.Client``. ``limits``:
    ``max_config_bytes`` bounds the read (default 8 MiB).

    Network trouble never raises: it is the verdict. Bad arguments (unknown Space, a
    malformed URL, a non-positive timeout) raise :class:`~qwen_core.InvalidRequest`."""
    adapter = _adapter_of(space)
    seconds = _timeout(timeout)
    endpoint = resolve_endpoint(adapter, base_url, hf_token, space_urls)
    bounds = Limits(
        max_config_bytes=(limits or DEFAULT_LIMITS).max_config_bytes, max_turn_seconds=seconds
    )
    request = q.Request(_model_of(adapter), Conversation(None, (), ""), endpoint, {})
    turn = Turn(request, httpx.Timeout(seconds), bounds)

    def verdict(state: State, detail: str, layout: Layout | None = None,
                config: Mapping[str, Any] | None = None) -> SpaceCheck:
        config = config or {}
        return SpaceCheck(
            space_id=adapter.space_id,
            label=adapter.label,
            base_url=redact_url(endpoint.base_url),
            state=state,
            detail=detail,
            gradio_version=layout.version if layout else _printable(config.get("version")),
            protocol=layout.protocol if layout else _printable(config.get("protocol")),
            api_prefix=layout.api_prefix if layout else None,
            fn_index_expected=adapter.fn_index,
            fn_index_found=layout.fn_index if layout else None,
            seconds=round(time.monotonic() - started, 3),
        )

    started = time.monotonic()
    try:
        if client is None:
            with httpx.Client(timeout=turn.timeout, follow_redirects=True) as own:
                status, content_type, body = _fetch_config(own, turn)
        else:
            status, content_type, body = _fetch_config(client, turn)
    except FAILURES as exc:
        return verdict(*_io_verdict(turn.error(exc), seconds))

    config = _peek(body) if status == 200 else {}
    try:
        layout = q.read_config(request, status, content_type, body)
    except SpaceUnavailable as exc:  # a web page or a 5xx: sleeping, building or broken
        html = "html" in content_type or body.lstrip()[:1] == b"<"
        if html or status == 503:
            return verdict("asleep", exc.message)
        return verdict("unreachable", f"the Space answers HTTP {status} (a server error)")
    except SpaceAPIChanged as exc:
        protocol = config.get("protocol")
        state: State = (
            "unsupported" if config and protocol not in SUPPORTED_PROTOCOLS else "changed"
        )
        return verdict(state, exc.message, config=config)
    if layout is None:
        if status in (401, 403):
            return verdict("unreachable", f"the Space refused access (HTTP {status}): private "
                           "or gated; check HF_TOKEN")
        if status == 429:
            return verdict("unreachable", "the Space is rate limiting requests (HTTP 429)")
        if 300 <= status < 400:
            return verdict("unreachable", f"the Space redirects /config (HTTP {status})")
        what = f"HTTP {status}" if status != 200 else "not JSON"
        return verdict("changed", f"the Space's /config is missing or unreadable ({what}); "
                       "qwen_core would chat with its known values, unchecked",
                       config=config)
    shape = f"[{', '.join(layout.inputs)}] -> [{', '.join(layout.outputs)}]"
    if layout.fn_index == adapter.fn_index:
        return verdict("fits", f"chat event {layout.fn_index}: {shape}", layout)
    found = _api_name_at(config, layout.fn_index)
    how = (f"its api_name {adapter.api_name!r}" if adapter.api_name and found == adapter.api_name
           else "its inputs and outputs")
    return verdict(
        "moved",
        f"the chat event moved from fn_index {adapter.fn_index} to {layout.fn_index} "
        f"(found by {how}): {shape}; chats still work",
        layout,
    )


def _api_name_at(config: Mapping[str, Any], fn_index: int) -> str | None:
    """The ``api_name`` of the event at ``fn_index`` in a config (for the report only)."""
    deps = config.get("dependencies")
    if not isinstance(deps, list):
        return None
    for position, dep in enumerate(deps):
        if not isinstance(dep, Mapping):
            continue
        dep_id = dep.get("id")
        index = dep_id if isinstance(dep_id, int) and not isinstance(dep_id, bool) else position
        if index == fn_index:
            name = dep.get("api_name")
            return name if isinstance(name, str) else None
    return None


def check_all(
    spaces: Iterable[SpaceRef] | None = None,
    *,
    base_urls: Mapping[str, str] | None = None,
    hf_token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    limits: Limits | None = None,
) -> list[SpaceCheck]:
    """Check several Spaces (default: every Space qwen_core knows) in parallel threads, each
    within ``timeout``; the verdicts come back in the order asked (each Space once).

    ``base_urls``: Space id -> root URL, like ``QWEN_SPACE_URLS`` (which is read when this is
    None); Spaces not in it are checked at their public URL."""
    adapters = list(dict.fromkeys(
        _adapter_of(s) for s in (ADAPTERS if spaces is None else spaces)
    ))
    seconds = _timeout(timeout)
    urls = parse_space_urls(
        dict(base_urls) if base_urls is not None else os.environ.get("QWEN_SPACE_URLS")
    )
    # resolve every endpoint before any request: a bad URL fails the call, not one row
    for adapter in adapters:
        resolve_endpoint(adapter, None, hf_token, urls)
    if not adapters:
        return []

    def one(adapter: type[SpaceAdapter]) -> SpaceCheck:
        return check_space(adapter, hf_token=hf_token, timeout=seconds, limits=limits,
                           space_urls=urls)

    with ThreadPoolExecutor(max_workers=len(adapters), thread_name_prefix="qwen-doctor") as pool:
        return list(pool.map(one, adapters))


def exit_code(checks: Sequence[SpaceCheck]) -> int:
    """1 if any adapter no longer fits (``changed``, ``unsupported``); else 2 if any Space
    could not be checked (``asleep``, ``unreachable``); else 0."""
    if any(c.state not in FITTING and c.state not in UNCHECKED for c in checks):
        return 1
    if any(c.state in UNCHECKED for c in checks):
        return 2
    return 0
