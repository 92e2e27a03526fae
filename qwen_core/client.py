"""The public streaming functions: :func:`stream_events`, :func:`stream_chat` and their
async twins. Requests are validated when called (bad model or messages raise
:class:`~qwen_core.InvalidRequest` at once); the network work happens while iterating."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any, Generic, TypeVar

import httpx

from . import queue_api as q
from .errors import InvalidRequest
from .events import Event, TextDelta
from .limits import DEFAULT_LIMITS, Limits
from .models import Model
from .settings import make_timeout
from .transport import run_async, run_sync

__all__ = ["stream_events", "stream_chat", "astream_events", "astream_chat", "EventStream"]

T = TypeVar("T")
Timeout = float | tuple[float, float] | httpx.Timeout | None


class EventStream(Generic[T]):
    """A single-pass iterator over one turn. ``close()`` (or leaving a ``with`` block, or
    breaking out of a ``for`` loop and dropping it) closes the HTTP stream and cancels the
    Space's job."""

    def __init__(self, gen: Generator[T, None, None]) -> None:
        self._gen = gen

    def __iter__(self) -> EventStream[T]:
        return self

    def __next__(self) -> T:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def __enter__(self) -> EventStream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _limits(limits: Limits | None) -> Limits:
    if limits is None:
        return DEFAULT_LIMITS
    if not isinstance(limits, Limits):
        raise InvalidRequest(f"limits must be a qwen_core.Limits, got {type(limits).__name__}")
    return limits


def _events(
    request: q.Request, proxy: str | None, timeout: httpx.Timeout, client: httpx.Client | None,
    limits: Limits,
) -> Generator[Event, None, None]:
    if client is not None:
        yield from run_sync(client, request, timeout, limits)
        return
    with httpx.Client(proxy=proxy, timeout=timeout, follow_redirects=True) as own:
        yield from run_sync(own, request, timeout, limits)


def stream_events(
    model: str | Model,
    messages: Any,
    *,
    base_url: str | None = None,
    hf_token: str | None = None,
    proxy: str | None = None,
    timeout: Timeout = None,
    client: httpx.Client | None = None,
    limits: Limits | None = None,
    **options: Any,
) -> EventStream[Event]:
    """Stream typed events (:mod:`qwen_core.events`) for one chat turn.

    ``model``: an id from ``MODELS``, an alias or a seed class name. ``messages``:
    OpenAI-style dicts, the last from the user. ``base_url``: the Space's root (a
    duplicate, a local app); default: ``QWEN_SPACE_URLS``, then the public Space.
    ``hf_token`` (default env ``HF_TOKEN``) is sent only to Hugging Face hosts or an
    explicit base URL. ``timeout``: seconds, ``(connect, read)`` or ``httpx.Timeout``; the
    read timeout is the longest silence tolerated. ``client``: your own ``httpx.Client``
    (its proxy and pool are used). ``limits``: a :class:`~qwen_core.Limits` (answer size,
    turn time, reply and line sizes; default ``Limits()``); going past one ends the turn
    with :class:`~qwen_core.LimitExceeded`, the partial answer kept and the job cancelled.
    ``options``: per-Space options (e.g. Qwen3's ``thinking_budget``)."""
    bounds = _limits(limits)
    request = q.prepare(model, messages, base_url=base_url, hf_token=hf_token, options=options)
    return EventStream(_events(request, proxy, make_timeout(timeout), client, bounds))


def _texts(events: EventStream[Event]) -> Generator[str, None, None]:
    try:
        for event in events:
            if type(event) is TextDelta:
                yield event.text
    finally:
        events.close()


def stream_chat(
    model: str | Model,
    messages: Any,
    *,
    base_url: str | None = None,
    hf_token: str | None = None,
    proxy: str | None = None,
    timeout: Timeout = None,
    client: httpx.Client | None = None,
    limits: Limits | None = None,
    **options: Any,
) -> EventStream[str]:
    """Stream the answer's text deltas; ``"".join(...)`` is the answer whenever the Space
    only appends. Reasoning, status and queue events are left out (see
    :func:`stream_events`); if the Space rewrites earlier text, only later appends are
    yielded and :class:`~qwen_core.events.Done` (via ``stream_events``) has the final text."""
    events = stream_events(model, messages, base_url=base_url, hf_token=hf_token, proxy=proxy,
                           timeout=timeout, client=client, limits=limits, **options)
    return EventStream(_texts(events))


async def _aevents(
    request: q.Request, proxy: str | None, timeout: httpx.Timeout,
    client: httpx.AsyncClient | None, limits: Limits,
) -> AsyncGenerator[Event, None]:
    if client is not None:
        gen = run_async(client, request, timeout, limits)
        try:
            async for event in gen:
                yield event
        finally:
            await gen.aclose()
        return
    async with httpx.AsyncClient(proxy=proxy, timeout=timeout, follow_redirects=True) as own:
        gen = run_async(own, request, timeout, limits)
        try:
            async for event in gen:
                yield event
        finally:
            await gen.aclose()


def astream_events(
    model: str | Model,
    messages: Any,
    *,
    base_url: str | None = None,
    hf_token: str | None = None,
    proxy: str | None = None,
    timeout: Timeout = None,
    client: httpx.AsyncClient | None = None,
    limits: Limits | None = None,
    **options: Any,
) -> AsyncGenerator[Event, None]:
    """Async twin of :func:`stream_events` (an async generator; ``aclose()`` cancels, and
    so does cancelling the task or an enclosing cancel scope while it streams)."""
    bounds = _limits(limits)
    request = q.prepare(model, messages, base_url=base_url, hf_token=hf_token, options=options)
    return _aevents(request, proxy, make_timeout(timeout), client, bounds)


def astream_chat(model: str | Model, messages: Any, **kwargs: Any) -> AsyncGenerator[str, None]:
    """Async twin of :func:`stream_chat` (validates at once, streams when iterated)."""
    return _atexts(astream_events(model, messages, **kwargs))


async def _atexts(gen: AsyncGenerator[Event, None]) -> AsyncGenerator[str, None]:
    try:
        async for event in gen:
            if type(event) is TextDelta:
                yield event.text
    finally:
        await gen.aclose()


