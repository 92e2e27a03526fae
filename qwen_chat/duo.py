"""Several answers streaming at once from one script run (no Streamlit).

:class:`Duo` runs ``qwen_core``'s async streams on one event loop in a worker thread and
hands their events, tagged with the side they belong to, to the caller's thread through
one queue; the caller draws both answers from there. Neither stream waits for the other.
:meth:`Duo.close` cancels what still runs — cancelling a task makes ``qwen_core`` send
the Space's cancel at once, even while it waits in a queue — and waits for that."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import qwen_core

__all__ = ["Duo", "Ended", "CLOSE_WAIT"]

CLOSE_WAIT = 5.0  # seconds close() waits for the Spaces' cancels to be sent


@dataclass(frozen=True, slots=True)
class Ended:
    """A side's stream ended: ``error`` None (finished) or what ended it."""

    error: BaseException | None = None


Item = tuple[int, "qwen_core.Event | Ended"]


class Duo:
    """Streams ``starts[i]()`` (each returns an async iterator of events, such as
    :func:`qwen_core.astream_events`) at once. :meth:`poll` returns what arrived as
    ``(side, event)`` pairs; each side ends with one :class:`Ended`."""

    def __init__(self, starts: list[Callable[[], AsyncIterator[qwen_core.Event]]]) -> None:
        self._starts = starts
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._loop = asyncio.new_event_loop()
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qwen-duo", daemon=True)
        self.open = len(starts)  # sides not ended yet (as seen by poll)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._tasks = [asyncio.ensure_future(self._pump(i, start))
                       for i, start in enumerate(self._starts)]
        self._ready.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _pump(self, side: int, start: Callable[[], AsyncIterator[qwen_core.Event]]) -> None:
        error: BaseException | None = None
        events: AsyncIterator[qwen_core.Event] | None = None
        try:
            events = start()
            async for event in events:
                self._queue.put((side, event))
        except asyncio.CancelledError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - handed to the caller, who shows it
            error = exc
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # noqa: BLE001,S110 - the answer already ended
                    pass
            self._queue.put((side, Ended(error)))

    def poll(self, timeout: float) -> list[Item]:
        """What arrived, waiting up to ``timeout`` s for the first item (``[]``: none)."""
        items: list[Item] = []
        try:
            items.append(self._queue.get(timeout=max(timeout, 0.0)))
            while True:
                items.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        self.open -= sum(1 for _, item in items if isinstance(item, Ended))
        return items

    def close(self, wait: float = CLOSE_WAIT) -> None:
        """Cancel the streams still running and wait (up to ``wait`` s) until their Space
        jobs are cancelled. Safe to call more than once, from any thread."""
        if self._thread.is_alive():
            for task in self._tasks:
                try:
                    self._loop.call_soon_threadsafe(task.cancel)
                except RuntimeError:  # the loop just ended by itself
                    break
            self._thread.join(wait)

    def __enter__(self) -> Duo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
