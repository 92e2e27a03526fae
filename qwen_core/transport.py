"""Sync and async transports: httpx + httpx-sse loops around the sans-IO core.

One ``GET /config`` per Space per process (cached), one join, one data stream read in the
caller's thread (no threads, no polling, no sleeps except to honour a 429's
Retry-After). Leaving the loop early — ``break``, ``close()``, an exception, garbage
collection — closes the HTTP stream and POSTs ``{prefix}/cancel`` so the Space frees the
slot. Every decision lives in :class:`Turn`; the two loops only do the I/O."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from httpx_sse import SSEError, aconnect_sse, connect_sse

from . import queue_api as q
from .errors import SpaceAPIChanged, SpaceError, SpaceUnavailable
from .events import Event
from .protocol import TurnDecoder
from .spaces.base import Layout, Payload

__all__ = ["run_sync", "run_async", "Turn", "CANCEL_TIMEOUT"]

CANCEL_TIMEOUT = 3.0


class Turn:
    """The state of one chat turn between the I/O steps, shared by both transports."""

    def __init__(self, request: q.Request, timeout: httpx.Timeout) -> None:
        self.request = request
        self.timeout = timeout
        self.headers = request.endpoint.headers()
        self.session_hash = q.new_session_hash()
        self.layout: Layout | None = q.config_cache.get(
            (request.endpoint.base_url, request.space_id)
        )
        self.payload: Payload | None = None
        self.event_id: str | None = None
        self.decoder: TurnDecoder | None = None
        self.space_failed = False

    def url(self, path: str) -> str:
        return self.request.url(path, self.layout)

    def got_config(self, resp: httpx.Response) -> None:
        layout = q.read_config(
            self.request, resp.status_code, resp.headers.get("content-type", ""), resp.content
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

    def got_join(self, resp: httpx.Response, attempt: int) -> float | None:
        """None when joined; else seconds to wait before trying again."""
        try:
            self.event_id = q.read_join(
                self.request, resp.status_code, resp.headers, resp.content, attempt
            )
        except q.RetryLater as later:
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

    def error(self, exc: Exception) -> SpaceError:
        """Any failure as the SpaceError a user can act on, with the partial answer."""
        partial = self.decoder.answer if self.decoder is not None else ""
        space = self.request.space_id
        if isinstance(exc, SpaceError):
            exc.space_id = exc.space_id or space
            exc.partial = exc.partial or partial
            self.space_failed = q.is_space_failure(exc)
            return exc
        if isinstance(exc, SSEError):
            return SpaceAPIChanged(
                f"the Space's queue stream is malformed: {exc}", space_id=space, partial=partial
            )
        base = self.request.endpoint.base_url
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            text = f"cannot connect to {base} ({type(exc).__name__}); the Space may be down"
        elif isinstance(exc, httpx.ReadTimeout):
            text = f"the Space sent nothing for {self.timeout.read:g} s (read timeout)"
        elif isinstance(exc, httpx.TimeoutException):
            text = f"the request to the Space timed out ({type(exc).__name__})"
        elif isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
            text = "the connection to the Space was cut before the answer was complete"
        else:
            text = f"HTTP failure talking to the Space: {type(exc).__name__}: {exc}"
        return SpaceUnavailable(text, space_id=space, partial=partial)

    def cancel_request(self) -> tuple[str, dict[str, Any]] | None:
        """The cancel POST to send when the turn ends unfinished, or None."""
        finished = self.decoder is not None and self.decoder.finished
        if self.event_id is None or self.layout is None or finished or self.space_failed:
            return None
        return self.url("/cancel"), q.cancel_body(self.layout, self.session_hash, self.event_id)


FAILURES = (httpx.HTTPError, SSEError, SpaceError)


def run_sync(client: httpx.Client, request: q.Request, timeout: httpx.Timeout) -> Iterator[Event]:
    """Stream one chat turn's events with a sync client."""
    turn = Turn(request, timeout)
    try:
        if turn.layout is None:
            turn.got_config(client.get(turn.url("/config"), headers=turn.headers, timeout=timeout))
        body = turn.join_body()
        for attempt in range(q.MAX_RATE_RETRIES + 1):
            resp = client.post(turn.url("/queue/join"), json=body, headers=turn.headers,
                               timeout=timeout)
            wait = turn.got_join(resp, attempt)
            if wait is None:
                break
            time.sleep(wait)
        with connect_sse(client, "GET", turn.url("/queue/data"), headers=turn.headers,
                         params={"session_hash": turn.session_hash}, timeout=timeout) as source:
            decoder = turn.stream_opened(source.response)
            for sse in source.iter_sse():
                if sse.data:
                    yield from decoder.feed(q.decode_sse_data(sse.data))
                    if decoder.finished:
                        return
        decoder.stream_ended()
    except FAILURES as exc:
        raise turn.error(exc) from (None if isinstance(exc, SpaceError) else exc)
    finally:
        cancel = turn.cancel_request()
        if cancel is not None:
            try:
                client.post(cancel[0], json=cancel[1], headers=turn.headers,
                            timeout=CANCEL_TIMEOUT)
            except httpx.HTTPError:
                pass  # best effort: the Space also drops the job when the stream closes


async def run_async(
    client: httpx.AsyncClient, request: q.Request, timeout: httpx.Timeout
) -> AsyncIterator[Event]:
    """Stream one chat turn's events with an async client (same steps as run_sync)."""
    turn = Turn(request, timeout)
    try:
        if turn.layout is None:
            turn.got_config(
                await client.get(turn.url("/config"), headers=turn.headers, timeout=timeout)
            )
        body = turn.join_body()
        for attempt in range(q.MAX_RATE_RETRIES + 1):
            resp = await client.post(turn.url("/queue/join"), json=body, headers=turn.headers,
                                     timeout=timeout)
            wait = turn.got_join(resp, attempt)
            if wait is None:
                break
            await asyncio.sleep(wait)
        async with aconnect_sse(client, "GET", turn.url("/queue/data"), headers=turn.headers,
                                params={"session_hash": turn.session_hash},
                                timeout=timeout) as source:
            decoder = turn.stream_opened(source.response)
            async for sse in source.aiter_sse():
                if sse.data:
                    for event in decoder.feed(q.decode_sse_data(sse.data)):
                        yield event
                    if decoder.finished:
                        return
        decoder.stream_ended()
    except FAILURES as exc:
        raise turn.error(exc) from (None if isinstance(exc, SpaceError) else exc)
    finally:
        cancel = turn.cancel_request()
        if cancel is not None:
            try:
                await client.post(cancel[0], json=cancel[1], headers=turn.headers,
                                  timeout=CANCEL_TIMEOUT)
            except (httpx.HTTPError, RuntimeError):
                pass  # best effort: the Space also drops the job when the stream closes
