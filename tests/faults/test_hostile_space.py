"""A hostile Space on a real loopback server (the fault-injecting fake), issue #13 and the
cancellation bug of issue #10.

- A ``/config`` whose ``api_prefix`` points elsewhere (``@127.0.0.1:OTHER``, or a digit
  glued to the port) never gets a request, nor the token, to the other port.
- ``Limits`` end a turn that a Space drips, keeps alive with heartbeats only, keeps silent
  past the turn's deadline, appends to forever, or sends an endless line or ``/config``:
  ``LimitExceeded`` naming the limit, the partial answer kept, the job cancelled, the
  connection closed, and memory bounded (measured in a child process).
- An async stream cancelled from outside — an anyio cancel scope (how Starlette stops a
  streaming response whose client left), ``asyncio.timeout``, ``task.cancel()``, a task
  group's cancel — still POSTs ``/cancel``; so do ``aclose()`` (also with the caller's own
  client) and garbage collection of a sync stream.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import qwen_core
from qwen_core import LimitExceeded, Limits, SpaceAPIChanged, queue_api
from qwen_core.events import TextDelta

from .conftest import MODEL, SPACE_ID, ask
from .fake_space import FakeSpace, answer_for, tokenize

TOKEN = "hf_SeCrEt0123456789abcdefTOKEN"
REPO = Path(__file__).resolve().parents[2]
WAIT = 30.0
SLACK = 2.5  # s a loaded 2-core machine may add; far below what each bound guards against


def first_tokens(question: str, k: int) -> str:
    return "".join(tokenize(answer_for(question))[:k])


def closed(space: FakeSpace) -> bool:
    return space.wait_idle(timeout=WAIT)


def msgs(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def cancel_of(space: FakeSpace, question: str) -> dict[str, object]:
    (job,) = [j for j in space.joins if j.query == question]
    return {"session_hash": job.session_hash, "fn_index": 0, "event_id": job.event_id}


def wait_for_cancel(space: FakeSpace, question: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cancel_of(space, question) in space.cancels:
            return True
        time.sleep(0.01)
    return False


# -- api_prefix: the token never reaches another port ------------------------------------------


@pytest.fixture
def canary() -> Iterator[FakeSpace]:
    """Another server on loopback: whatever reaches it went where it must not."""
    fake = FakeSpace().start()
    try:
        yield fake
    finally:
        fake.stop()


def _hostile_prefix_turn(space: FakeSpace, canary: FakeSpace, prefix: str) -> None:
    space.config_mode = f"prefix:{prefix}"
    for _ in range(2):  # the bad layout is not cached: the second turn asks /config again
        out = ask(space.base_url, "hi", hf_token=TOKEN)
        err = out.expect(SpaceAPIChanged)
        assert f"the Space's /config gives the API prefix {prefix!r}" in str(err)
        assert queue_api.config_cache == {}
    assert canary.requests == []  # nothing (and so no token) reached the other port
    assert [(r.method, r.path) for r in space.requests] == [("GET", "/config")] * 2
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in space.requests)


def test_userinfo_prefix_cannot_send_the_token_to_another_port(space, canary):
    # base http://127.0.0.1:P + "@127.0.0.1:C" + "/queue/join" would be host 127.0.0.1:C
    _hostile_prefix_turn(space, canary, f"@127.0.0.1:{canary.port}")


def test_digit_prefix_cannot_change_the_port():
    """Base ``127.0.0.1:P`` + prefix ``"d"`` = port ``Pd``: with a server listening on
    ``Pd``, nothing may reach it."""
    rng = random.Random()
    for _ in range(200):
        other = rng.randrange(10_240, 65_536)
        try:
            canary = FakeSpace(port=other).start()
        except OSError:
            continue
        try:
            space = FakeSpace(port=other // 10).start()
        except OSError:
            canary.stop()
            continue
        try:
            _hostile_prefix_turn(space, canary, str(other % 10))
        finally:
            space.stop()
            canary.stop()
        return
    pytest.skip("no free pair of ports P and P*10+d")


# -- limits against a real server --------------------------------------------------------------


def test_time_limit_cuts_off_a_space_that_drips_bytes(space):
    question = "fault:drip:3:100 hi"  # 3 tokens, then a byte every 100 ms: never silent
    out = ask(space.base_url, question, timeout=(2, 2.0),
              limits=Limits(max_turn_seconds=1.0))
    err = out.expect(LimitExceeded)
    assert (err.limit, err.value) == ("max_turn_seconds", 1.0)
    assert str(err) == (f"[{SPACE_ID}] the turn ran past the limit max_turn_seconds=1 s; "
                        "stopped here, and the Space's job cancelled")
    assert out.text == err.partial == first_tokens(question, 3)
    assert 1.0 <= out.elapsed < 1.0 + SLACK  # the drip alone would go on for 60 s
    assert space.cancels == [cancel_of(space, question)]
    assert closed(space)


def test_time_limit_cuts_off_a_space_that_sends_only_heartbeats(space):
    question = "fault:heartbeats:100:100 hi"  # 10 s of heartbeats, each well within 2 s
    out = ask(space.base_url, question, timeout=(2, 2.0),
              limits=Limits(max_turn_seconds=1.0))
    err = out.expect(LimitExceeded)
    assert err.limit == "max_turn_seconds" and out.text == err.partial == ""
    assert 1.0 <= out.elapsed < 1.0 + SLACK  # the heartbeats alone go on for 10 s
    assert space.cancels == [cancel_of(space, question)]
    assert closed(space)


def test_time_limit_shortens_the_read_timeout_to_the_turns_deadline(space):
    question = "fault:silence:2 hi"  # silent after 2 tokens; read timeout 10 s, turn 1 s
    out = ask(space.base_url, question, timeout=(2, 10.0), limits=Limits(max_turn_seconds=1.0))
    err = out.expect(LimitExceeded)
    assert err.limit == "max_turn_seconds"
    assert out.text == err.partial == first_tokens(question, 2)
    assert 1.0 <= out.elapsed < 1.0 + SLACK  # not the 10 s read timeout
    assert space.cancels == [cancel_of(space, question)]
    assert closed(space)


def test_answer_limit_cuts_off_a_space_that_appends_forever(space):
    question = "fault:forever:0 hi"
    out = ask(space.base_url, question, timeout=(2, 5.0),
              limits=Limits(max_answer_chars=20_000))
    err = out.expect(LimitExceeded)
    assert (err.limit, err.value) == ("max_answer_chars", 20_000)
    assert "max_answer_chars=20,000 characters" in str(err)
    assert err.partial.startswith(out.text) and 20_000 < len(err.partial) < 20_100
    assert err.partial == "".join(f"f{i} " for i in range(len(err.partial.split())))
    assert space.cancels == [cancel_of(space, question)]
    assert closed(space)


def test_line_limit_cuts_off_an_endless_line(space):
    question = "fault:hugeline:64 hi"  # a 64 MiB line; the limit here is 1 MiB
    out = ask(space.base_url, question, timeout=(2, 5.0),
              limits=Limits(max_line_bytes=1024 * 1024))
    err = out.expect(LimitExceeded)
    assert err.limit == "max_line_bytes" and "max_line_bytes=1,048,576 bytes" in str(err)
    assert out.text == err.partial == first_tokens(question, 2)
    assert space.cancels == [cancel_of(space, question)]
    assert closed(space)


def test_deeply_nested_queue_message_is_space_api_changed(space):
    question = "fault:deep:2 hi"
    out = ask(space.base_url, question)
    err = out.expect(SpaceAPIChanged)
    assert out.text == err.partial == first_tokens(question, 2)
    assert closed(space)


def test_async_stream_obeys_the_limits_too(space):
    question = "fault:drip:2:100 x"
    got: list[str] = []

    async def main() -> None:
        async for delta in qwen_core.astream_chat(
            MODEL, msgs(question), base_url=space.base_url, timeout=(2, 2.0),
            limits=Limits(max_turn_seconds=0.8),
        ):
            got.append(delta)

    start = time.perf_counter()
    with pytest.raises(LimitExceeded) as info:
        asyncio.run(main())
    assert time.perf_counter() - start < 0.8 + SLACK
    assert "".join(got) == info.value.partial == first_tokens(question, 2)
    assert space.cancels == [cancel_of(space, question)]


CHILD = """
import resource, sys
import httpx, qwen_core
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
httpx.get(sys.argv[1] + "/warm-up")  # imports, client and connection set-up: not counted
before = rss()
try:
    for _ in qwen_core.stream_chat("qwen-2.5-max", [{"role": "user", "content": sys.argv[2]}],
                                   base_url=sys.argv[1], timeout=(5, 30)):
        pass
    outcome = "answer"
except qwen_core.SpaceError as exc:
    outcome = type(exc).__name__ + ": " + str(exc)
print(outcome)
print(rss() - before)
"""


@pytest.mark.parametrize(("mode", "question", "limit", "bound"), [
    # an endless event-stream line: the client holds at most the 64 MiB default cap
    ("ok", "fault:hugeline:256 hi", "max_line_bytes", 110),
    # an endless /config: at most the 8 MiB default cap
    ("huge:256", "hi", "max_config_bytes", 40),
])
def test_memory_stays_bounded_with_the_default_limits(space, mode, question, limit, bound):
    """A 256 MiB line or /config (the reports: 400 MB took the client to 1.2-1.4 GB RSS)
    costs the client at most about the cap: peak RSS growth of a fresh child process."""
    space.config_mode = mode
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, space.base_url, question],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "NO_PROXY": "127.0.0.1", "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome, grew = proc.stdout.strip().splitlines()
    print(f"peak RSS growth: {int(grew) / 2**20:.1f} MiB ({outcome[:60]})")
    assert int(grew) < bound * 1024 * 1024, f"peak RSS grew by {int(grew) / 2**20:.0f} MiB"
    assert outcome.startswith("LimitExceeded: ") and limit in outcome, outcome
    assert closed(space)


# -- cancellation from outside still cancels the Space's job (issue #10) -------------------------


CUT = 1.0  # s: when the timed cancellations strike (tokens come every 20 ms for 4 s)


async def _consume(space: FakeSpace, question: str, seen: list[str],
                   started: asyncio.Event | None = None) -> None:
    async for delta in qwen_core.astream_chat(MODEL, msgs(question), base_url=space.base_url,
                                              timeout=2):
        seen.append(delta)
        if started is not None and len(seen) == 2:
            started.set()


def _anyio_scope(space: FakeSpace, question: str, seen: list[str]) -> None:
    async def main() -> None:
        with anyio.move_on_after(CUT):  # a cancel scope, as Starlette's when a client leaves
            await _consume(space, question, seen)

    asyncio.run(main())


def _task_group(space: FakeSpace, question: str, seen: list[str]) -> None:
    async def main() -> None:
        started = asyncio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_consume, space, question, seen, started)
            await started.wait()
            tg.cancel_scope.cancel()  # Starlette's listen_for_disconnect does this

    asyncio.run(main())


def _asyncio_timeout(space: FakeSpace, question: str, seen: list[str]) -> None:
    async def main() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(CUT):
                await _consume(space, question, seen)

    asyncio.run(main())


def _task_cancel(space: FakeSpace, question: str, seen: list[str]) -> None:
    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(_consume(space, question, seen, started))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


@pytest.mark.parametrize("how", [_anyio_scope, _task_group, _asyncio_timeout, _task_cancel],
                         ids=["anyio-cancel-scope", "anyio-task-group", "asyncio-timeout",
                              "task-cancel"])
def test_cancelled_async_iteration_still_cancels_the_spaces_job(space, how):
    question = f"fault:slow:200:20 {how.__name__}"  # 4 s of tokens
    seen: list[str] = []
    start = time.perf_counter()
    how(space, question, seen)
    assert time.perf_counter() - start < CUT + SLACK
    assert seen and seen[0] == "s0 "
    assert wait_for_cancel(space, question), f"no /cancel arrived: {space.cancels}"
    assert space.cancels == [cancel_of(space, question)]
    assert closed(space)


def test_cancel_under_a_cancelled_scope_is_bounded_by_its_own_timeout(space, monkeypatch):
    """The shielded cancel POST cannot hang the cancelled caller: CANCEL_TIMEOUT bounds it
    (here 0.3 s, against a /cancel that never answers)."""
    from qwen_core import transport

    monkeypatch.setattr(transport, "CANCEL_TIMEOUT", 0.3)
    question = "fault:slow:200:20 hang"
    seen: list[str] = []

    async def main() -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            real_stream = client.stream

            def stream(method: str, url: str, **kw: Any) -> Any:
                if url.endswith("/cancel"):
                    return _Hang()  # a /cancel that never answers
                return real_stream(method, url, **kw)

            client.stream = stream  # type: ignore[method-assign]
            with anyio.move_on_after(CUT):
                async for delta in qwen_core.astream_chat(
                    MODEL, msgs(question), base_url=space.base_url, client=client
                ):
                    seen.append(delta)

    start = time.perf_counter()
    asyncio.run(main())
    assert CUT + 0.3 <= time.perf_counter() - start < CUT + 0.3 + SLACK
    assert seen


class _Hang:
    async def __aenter__(self) -> None:
        await asyncio.sleep(3600)

    async def __aexit__(self, *exc: object) -> None:
        return None


def test_aclose_of_an_async_stream_cancels_the_job(space):
    question = "fault:slow:200:20 aclose"

    async def main() -> None:
        events = qwen_core.astream_events(MODEL, msgs(question), base_url=space.base_url,
                                          timeout=2)
        async for event in events:
            if isinstance(event, TextDelta):
                break
        await events.aclose()
        assert space.cancels == [cancel_of(space, question)]  # before aclose() returned

    asyncio.run(main())
    assert closed(space)


def test_aclose_with_the_callers_own_async_client_cancels_the_job(space):
    question = "fault:slow:200:20 own client"

    async def main() -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            chat = qwen_core.astream_chat(MODEL, msgs(question), base_url=space.base_url,
                                          client=client)
            assert await chat.__anext__() == "s0 "
            await chat.aclose()
            assert space.cancels == [cancel_of(space, question)]  # at once, not at GC

    asyncio.run(main())
    assert closed(space)


def test_garbage_collecting_a_sync_stream_cancels_the_job(space):
    question = "fault:slow:200:20 gc"
    stream = qwen_core.stream_chat(MODEL, msgs(question), base_url=space.base_url, timeout=2)
    assert [next(stream), next(stream)] == ["s0 ", "s1 "]
    del stream
    gc.collect()
    assert space.cancels == [cancel_of(space, question)]
    assert closed(space)


def test_cancel_request_carries_the_token_and_the_jobs_ids(space):
    question = "fault:slow:200:20 token"

    async def main() -> None:
        with anyio.move_on_after(CUT):
            async for _ in qwen_core.astream_chat(MODEL, msgs(question), hf_token=TOKEN,
                                                  base_url=space.base_url):
                pass

    asyncio.run(main())
    (cancel,) = space.seen("/cancel")
    assert cancel.headers.get("authorization") == f"Bearer {TOKEN}"
    assert json.loads(cancel.body) == cancel_of(space, question)
