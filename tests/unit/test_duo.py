"""qwen_chat.duo: two async streams at once on one loop, read from the caller's thread."""

from __future__ import annotations

import asyncio
import time

from qwen_chat.duo import Duo, Ended


def ticker(name: str, count: int, every: float, log: list[str]):
    async def stream():
        try:
            for i in range(count):
                await asyncio.sleep(every)
                yield f"{name}{i}"
        finally:
            log.append(f"{name} closed")  # what qwen_core does on close: cancel the job

    return stream


def drain(duo: Duo, until: float = 10.0) -> list[tuple[int, object]]:
    got: list[tuple[int, object]] = []
    deadline = time.monotonic() + until
    while duo.open and time.monotonic() < deadline:
        got.extend(duo.poll(0.05))
    return got


def test_both_sides_stream_at_the_same_time_and_each_ends_once():
    log: list[str] = []
    duo = Duo([ticker("a", 10, 0.02, log), ticker("b", 10, 0.02, log)])
    started = time.monotonic()
    got = drain(duo)
    wall = time.monotonic() - started
    assert [e for s, e in got if s == 0] == [*(f"a{i}" for i in range(10)), Ended()]
    assert [e for s, e in got if s == 1] == [*(f"b{i}" for i in range(10)), Ended()]
    firsts = [next(i for i, (s, _) in enumerate(got) if s == side) for side in (0, 1)]
    assert max(firsts) < 4  # interleaved: neither waited for the other to finish
    assert wall < 1.0  # 0.2 s each, side by side (not 0.4 s one after the other)
    assert duo.open == 0


def test_an_error_on_one_side_ends_that_side_only():
    async def broken():
        yield "x0"
        raise RuntimeError("the Space said no")

    log: list[str] = []
    duo = Duo([lambda: broken(), ticker("b", 5, 0.01, log)])
    got = drain(duo)
    ends = {s: e for s, e in got if isinstance(e, Ended)}
    assert str(ends[0].error) == "the Space said no"
    assert ends[1] == Ended()
    assert [e for s, e in got if s == 1][:-1] == [f"b{i}" for i in range(5)]


def test_close_cancels_both_streams_and_closes_them():
    log: list[str] = []
    duo = Duo([ticker("a", 1000, 0.01, log), ticker("b", 1000, 0.01, log)])
    seen = 0
    while seen < 4:
        seen += len(duo.poll(0.05))
    duo.close()
    assert sorted(log) == ["a closed", "b closed"]
    rest = drain(duo, until=2.0)
    ends = [e for _, e in rest if isinstance(e, Ended)]
    assert len(ends) == 2 and all(isinstance(e.error, asyncio.CancelledError) for e in ends)
    duo.close()  # twice is fine
