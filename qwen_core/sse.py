"""A bounded event-stream reader, sans-IO: raw bytes of the response in, events out.

httpx-sse's own iterators decode the whole stream to text and keep an unfinished line in
memory however long it grows; a Space sending one endless line would take all the memory
the machine has. Here the transports feed the bytes they read (``iter_bytes()`` /
``aiter_bytes()``); lines are split on bytes (``\\r\\n``, ``\\r`` or ``\\n``, which never
occur inside a UTF-8 sequence), held as bytes while incomplete, refused past
``max_line_bytes`` (as is an event whose lines add up past it), decoded once complete, and
handed to httpx-sse's event decoder, so the event-stream semantics stay httpx-sse's."""

from __future__ import annotations

from collections.abc import Iterator

from httpx_sse import ServerSentEvent

# httpx-sse's line -> event state machine (the WHATWG event-stream rules); it has no public
# name, but it is the decoder httpx-sse's own iter_sse() uses (httpx-sse pinned < 1)
from httpx_sse._decoders import SSEDecoder

from .limits import limit_exceeded

__all__ = ["SSEReader"]


class SSEReader:
    """Feed it the response's byte chunks with :meth:`feed`; iterating what it returns gives
    the chunk's complete events, then raises :class:`~qwen_core.LimitExceeded`
    (``max_line_bytes``) where a line grows past ``max_line_bytes`` bytes, or one event's
    lines add up to more than ``max_line_bytes`` characters (so the events before it are
    still delivered). Memory held is at most ``max_line_bytes`` plus one chunk."""

    __slots__ = ("_decoder", "_buffer", "_cr", "_event_size", "max_line_bytes")

    def __init__(self, max_line_bytes: int) -> None:
        self._decoder = SSEDecoder()
        self._buffer = bytearray()  # the unfinished line
        self._cr = False  # the last chunk ended with \r (a \n next belongs to it)
        self._event_size = 0  # characters of the lines of the event being read
        self.max_line_bytes = max_line_bytes

    def _too_long(self) -> Exception:
        return limit_exceeded(
            "the Space sent an event-stream line (or event) that grew", "max_line_bytes",
            self.max_line_bytes,
        )

    def feed(self, chunk: bytes) -> Iterator[ServerSentEvent]:
        if self._cr:
            self._cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            if chunk[-1:] == b"\r":
                self._cr = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        cap = self.max_line_bytes
        end = chunk.rfind(b"\n")
        if end < 0:  # the middle of a line: keep it, within the cap
            if len(self._buffer) + len(chunk) > cap:
                raise self._too_long()
            self._buffer += chunk
            return
        # everything up to the last newline is whole lines: decode it at once (a newline
        # byte never occurs inside a UTF-8 sequence, so no character is cut)
        if self._buffer:
            if len(self._buffer) + chunk.find(b"\n") > cap:
                raise self._too_long()
            self._buffer += chunk[:end]
            text = self._buffer.decode("utf-8", "replace")
            self._buffer = bytearray()
        else:
            text = chunk[:end].decode("utf-8", "replace")
        decode = self._decoder.decode
        for line in text.split("\n"):
            if not line:
                self._event_size = 0
            elif line[0] != ":":  # comments (keep-alives) are not kept by the decoder
                self._event_size += len(line)
                if self._event_size > cap:
                    raise self._too_long()
            event = decode(line)
            if event is not None:
                yield event
        if end + 1 < len(chunk):
            if len(chunk) - end - 1 > cap:
                raise self._too_long()
            self._buffer += chunk[end + 1:]
