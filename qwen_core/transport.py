"""Sync and async transports: httpx + httpx-sse loops around the sans-IO core.

One ``GET /config`` per Space per process (cached), one join, one data stream read in the
caller's thread (no threads, no polling, no sleeps except to honour a 429's
Retry-After). Leaving the loop early — ``break``, ``close()``, an exception, garbage
collection, an async cancellation — closes the HTTP stream and POSTs ``{prefix}/cancel``
so the Space frees the slot. Every decision lives in :class:`Turn`; the two loops only do
the I/O.

Bounds (:class:`~qwen_core.Limits`): every body is read in chunks with a byte cap, the
event stream through the bounded :class:`~qwen_core.sse.SSEReader`, and the monotonic
clock is checked at every chunk, so no Space can hold a turn past ``max_turn_seconds`` or
make it hold more than the caps in memory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Generator
from typing import Any

import anyio
import httpx
from httpx_sse import SSEError, aconnect_sse, connect_sse

from . import queue_api as q
from .errors import LimitExceeded, SpaceAPIChanged, SpaceError, SpaceUnavailable
from .events import Event, ReasoningDelta, ReasoningReplaced, TextDelta, TextReplaced
from .limits import DEFAULT_LIMITS, Limits, limit_exceeded
from .protocol import TurnDecoder
from .settings import redact_text, redact_url
from .spaces.base import Layout, Payload
from .sse import SSEReader

__all__ = ["run_sync", "run_async", "Turn", "CANCEL_TIMEOUT"]

CANCEL_TIMEOUT = 3.0
DEADLINE_SLACK = 0.05  # s: a read timeout cut to the deadline fires just after it


class Turn:
    """The state of one chat turn between the I/O steps, shared by both transports."""

    def __init__(
        self, request: q.Request, timeout: httpx.Timeout, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self.request = request
        self.timeout = timeout
        self.limits = limits
        self.deadline = time.monotonic() + limits.max_turn_seconds
        self.headers = request.endpoint.headers()
        self.session_hash = q.new_session_hash()
        self.layout: Layout | None = q.config_cache.get(
            (request.endpoint.base_url, request.space_id)
        )
        self.payload: Payload | None = None
        self.event_id: str | None = None
        self.decoder: TurnDecoder | None = None
        self.space_failed = False
        self.answer_chars = 0
        self.reasoning_chars = 0

    def url(self, path: str) -> str:
        return self.request.url(path, self.layout)

    # -- bounds ---------------------------------------------------------------------------

    def tick(self) -> None:
        """Called at every chunk received: the turn's time limit."""
        if time.monotonic() > self.deadline:
            raise self._too_slow()

    def _too_slow(self) -> LimitExceeded:
        return limit_exceeded("the turn ran", "max_turn_seconds",
                              self.limits.max_turn_seconds, job=self.event_id is not None)

    def body_buffer(self, resp: httpx.Response, what: str) -> bytearray:
        """An empty buffer for ``resp``'s body; refuses at once a declared length past
        ``max_config_bytes``."""
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and len(declared) < 20 and int(declared) > (
            self.limits.max_config_bytes
        ):
            raise self._too_big(what)
        return bytearray()

    def take(self, body: bytearray, chunk: bytes, what: str) -> None:
        """Add one chunk of a (non-streamed) reply's body, within the byte cap."""
        self.tick()
        if len(body) + len(chunk) > self.limits.max_config_bytes:
            raise self._too_big(what)
        body += chunk

    def _too_big(self, what: str) -> LimitExceeded:
        return limit_exceeded(f"the Space's {what} answer grew", "max_config_bytes",
                              self.limits.max_config_bytes, job=False)

    def stream_timeout(self) -> httpx.Timeout:
        """The data stream's timeout: the read timeout (longest silence), cut to the time
        left before ``max_turn_seconds``."""
        left = max(self.deadline - time.monotonic(), 0.0) + DEADLINE_SLACK
        read = self.timeout.read
        if read is not None and read <= left:
            return self.timeout
        return httpx.Timeout(connect=self.timeout.connect, read=left,
                             write=self.timeout.write, pool=self.timeout.pool)

    def sse_reader(self) -> SSEReader:
        return SSEReader(self.limits.max_line_bytes)

    # -- steps ----------------------------------------------------------------------------

    def got_config(self, resp: httpx.Response, body: bytes) -> None:
        layout = q.read_config(
            self.request, resp.status_code, resp.headers.get("content-type", ""), body
        )
        if layout is None:
            layout = self.request.adapter.known_layout()
        else:
            q.config_cache[(self.request.endpoint.base_url, self.request.space_id)] = layout
        self.layout = layout

    def join_body(self) -> dict[str, Any]:
        assert self.layout is not None
        self.payload = self.request.payload(self.layout)
        return q.join_body(self.layout, self.payload, self.session_hash)

    def got_join(self, resp: httpx.Response, body: bytes, attempt: int) -> float | None:
        """None when joined; else seconds to wait before trying again."""
        try:
            self.event_id = q.read_join(
                self.request, resp.status_code, resp.headers, body, attempt
            )
        except q.RetryLater as later:
            if time.monotonic() + later.seconds > self.deadline:
                raise self._too_slow() from None
            return later.seconds
        assert self.layout is not None and self.payload is not None
        self.decoder = TurnDecoder(
            self.request.adapter, self.payload, protocol=self.layout.protocol,
            event_id=self.event_id,
        )
        return None

    def stream_opened(self, resp: httpx.Response) -> TurnDecoder:
        problem = q.sse_problem(
            self.request, resp.status_code, resp.headers.get("content-type", "")
        )
        if problem is not None:
            raise problem
        assert self.decoder is not None
        return self.decoder

    def feed(self, data: str) -> list[Event]:
        """One queue message's events, after counting the answer's and the reasoning's
        size (one addition per delta). Past ``max_answer_chars`` the turn ends with
        :class:`LimitExceeded` before these events reach the caller; its ``partial`` is all
        the answer received."""
        assert self.decoder is not None
        events = self.decoder.feed(q.decode_sse_data(data))
        for event in events:
            if isinstance(event, TextDelta):
                self.answer_chars += len(event.text)
            elif isinstance(event, ReasoningDelta):
                self.reasoning_chars += len(event.text)
            elif isinstance(event, TextReplaced):
                self.answer_chars = len(event.text)
            elif isinstance(event, ReasoningReplaced):
                self.reasoning_chars = len(event.text)
        cap = self.limits.max_answer_chars
        if self.answer_chars > cap or self.reasoning_chars > cap:
            what = "the answer grew" if self.answer_chars > cap else "the reasoning grew"
            raise limit_exceeded(what, "max_answer_chars", cap,
                                 job=not self.decoder.finished)
        return events

    def error(self, exc: Exception) -> SpaceError:
        """Any failure as the SpaceError a user can act on, with the partial answer."""
        partial = self.decoder.answer if self.decoder is not None else ""
        space = self.request.space_id
        if isinstance(exc, httpx.ReadTimeout) and time.monotonic() >= self.deadline:
            exc = self._too_slow()  # the read timeout was cut to the turn's deadline
        if isinstance(exc, SpaceError):
            exc.space_id = exc.space_id or space
            exc.partial = exc.partial or partial
            self.space_failed = q.is_space_failure(exc)
            return exc
        if isinstance(exc, SSEError):
            return SpaceAPIChanged(
                f"the Space's queue stream is malformed: {exc}", space_id=space, partial=partial
            )
        base = redact_url(self.request.endpoint.base_url)
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            text = f"cannot connect to {base} ({type(exc).__name__}); the Space may be down"
        elif isinstance(exc, httpx.ReadTimeout):
            text = f"the Space sent nothing for {self.timeout.read:g} s (read timeout)"
        elif isinstance(exc, httpx.TimeoutException):
            text = f"the request to the Space timed out ({type(exc).__name__})"
        elif isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
            text = "the connection to the Space was cut before the answer was complete"
        else:
            text = (
                f"HTTP failure talking to the Space: {type(exc).__name__}: "
                f"{redact_text(str(exc))[:300]}"
            )
        return SpaceUnavailable(text, space_id=space, partial=partial)

    def cancel_request(self) -> tuple[str, dict[str, Any]] | None:
        """The cancel POST to send when the turn ends unfinished, or None."""
        finished = self.decoder is not None and self.decoder.finished
        if self.event_id is None or self.layout is None or finished or self.space_failed:
            return None
        return self.url("/cancel"), q.cancel_body(self.layout, self.session_hash, self.event_id)


FAILURES = (httpx.HTTPError, SSEError, SpaceError)


def run_sync(
    client: httpx.Client, request: q.Request, timeout: httpx.Timeout,
    limits: Limits = DEFAULT_LIMITS,
) -> Generator[Event, None, None]:
    """Stream one chat turn's events with a sync client."""
    turn = Turn(request, timeout, limits)
    try:
        if turn.layout is None:
            with client.stream("GET", turn.url("/config"), headers=turn.headers,
                               timeout=timeout) as resp:
                body = turn.body_buffer(resp, "/config")
                for chunk in resp.iter_bytes():
                    turn.take(body, chunk, "/config")
            turn.got_config(resp, bytes(body))
        join = turn.join_body()
        for attempt in range(q.MAX_RATE_RETRIES + 1):
            turn.tick()
            with client.stream("POST", turn.url("/queue/join"), json=join,
                               headers=turn.headers, timeout=timeout) as resp:
                body = turn.body_buffer(resp, "queue/join")
                for chunk in resp.iter_bytes():
                    turn.take(body, chunk, "queue/join")
            wait = turn.got_join(resp, bytes(body), attempt)
            if wait is None:
                break
            time.sleep(wait)
        reader = turn.sse_reader()
        with connect_sse(client, "GET", turn.url("/queue/data"), headers=dict(turn.headers),
                         params={"session_hash": turn.session_hash},
                         timeout=turn.stream_timeout()) as source:
            decoder = turn.stream_opened(source.response)
            for chunk in source.response.iter_bytes():
                turn.tick()
                for sse in reader.feed(chunk):
                    if sse.data:
                        yield from turn.feed(sse.data)
                        if decoder.finished:
                            return
        decoder.stream_ended()
    except FAILURES as exc:
        raise turn.error(exc) from (None if isinstance(exc, SpaceError) else exc)
    finally:
        cancel = turn.cancel_request()
        if cancel is not None:
            try:
                # the reply is not read: a Space cannot make us hold a big one
                with client.stream("POST", cancel[0], json=cancel[1], headers=turn.headers,
                                   timeout=CANCEL_TIMEOUT):
                    pass
            except httpx.HTTPError:
                pass  # best effort: the Space also drops the job when the stream closes


async def run_async(
    client: httpx.AsyncClient, request: q.Request, timeout: httpx.Timeout,
    limits: Limits = DEFAULT_LIMITS,
) -> AsyncGenerator[Event, None]:
    """Stream one chat turn's events with an async client (same steps as run_sync)."""
    turn = Turn(request, timeout, limits)
    try:
        if turn.layout is None:
            async with client.stream("GET", turn.url("/config"), headers=turn.headers,
                                     timeout=timeout) as resp:
                body = turn.body_buffer(resp, "/config")
                async for chunk in resp.aiter_bytes():
                    turn.take(body, chunk, "/config")
            turn.got_config(resp, bytes(body))
        join = turn.join_body()
        for attempt in range(q.MAX_RATE_RETRIES + 1):
            turn.tick()
            async with client.stream("POST", turn.url("/queue/join"), json=join,
                                     headers=turn.headers, timeout=timeout) as resp:
                body = turn.body_buffer(resp, "queue/join")
                async for chunk in resp.aiter_bytes():
                    turn.take(body, chunk, "queue/join")
            wait = turn.got_join(resp, bytes(body), attempt)
            if wait is None:
                break
            await asyncio.sleep(wait)
        reader = turn.sse_reader()
        async with aconnect_sse(client, "GET", turn.url("/queue/data"),
                                headers=dict(turn.headers),
                                params={"session_hash": turn.session_hash},
                                timeout=turn.stream_timeout()) as source:
            decoder = turn.stream_opened(source.response)
            async for chunk in source.response.aiter_bytes():
                turn.tick()
                for sse in reader.feed(chunk):
                    if sse.data:
                        for event in turn.feed(sse.data):
                            yield event
                        if decoder.finished:
                            return
        decoder.stream_ended()
    except FAILURES as exc:
        raise turn.error(exc) from (None if isinstance(exc, SpaceError) else exc)
    finally:
        cancel = turn.cancel_request()
        if cancel is not None:
            await _cancel_async(client, cancel, turn.headers)


async def _cancel_async(
    client: httpx.AsyncClient, cancel: tuple[str, dict[str, Any]], headers: dict[str, str]
) -> None:
    """POST the cancel even when the iteration itself is being cancelled (a Starlette
    response whose client disconnected, ``asyncio.timeout``, ``task.cancel()``): shielded
    from the surrounding cancellation, bounded by its own ``CANCEL_TIMEOUT``."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_TIMEOUT):
        try:
            async with client.stream("POST", cancel[0], json=cancel[1], headers=headers,
                                     timeout=CANCEL_TIMEOUT):
                pass
        except (httpx.HTTPError, RuntimeError):
            pass  # best effort: the Space also drops the job when the stream closes
