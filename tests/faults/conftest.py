"""Fixtures of the fault tests: a fresh fake Space per test, a clean process state, and a
helper that runs one turn and records what the caller saw and how long it took."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import qwen_core
from qwen_core import queue_api

from .fake_space import FakeSpace

MODEL = "qwen-2.5-max"
SPACE_ID = "Qwen/Qwen2.5-Max-Demo"
MARGIN = 1.0  # seconds tolerated above the timeout (slow 2-core CI machines)


@pytest.fixture(autouse=True)
def _clean_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("QWEN_SPACE_URLS", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("QWEN_OFFLINE", raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    queue_api.config_cache.clear()
    yield
    queue_api.config_cache.clear()


@pytest.fixture
def space() -> Iterator[FakeSpace]:
    fake = FakeSpace().start()
    try:
        yield fake
    finally:
        fake.stop()


@dataclass
class Outcome:
    """What the caller of ``stream_chat`` saw: the deltas, the error, the time taken."""

    deltas: list[str] = field(default_factory=list)
    error: BaseException | None = None
    elapsed: float = 0.0

    @property
    def text(self) -> str:
        return "".join(self.deltas)

    def expect(self, kind: type[qwen_core.SpaceError]) -> Any:
        """The error, checked to be exactly ``kind`` with a readable message."""
        assert self.error is not None, f"expected {kind.__name__}, got the answer {self.text!r}"
        assert isinstance(self.error, kind), (
            f"expected {kind.__name__}, got {type(self.error).__name__}: {self.error!r}"
        )
        message = str(self.error)
        assert message.startswith(f"[{SPACE_ID}] "), message
        assert len(message) > len(SPACE_ID) + 20, message
        assert "Traceback" not in message and "\n" not in message, message
        return self.error


def ask(
    base_url: str,
    question: str,
    *,
    messages: list[dict[str, str]] | None = None,
    timeout: Any = (2.0, 2.0),
    waits: float = 0.0,
    **kwargs: Any,
) -> Outcome:
    """Run one turn through ``qwen_core.stream_chat``; any non-SpaceError fails the test,
    and so does taking longer than connect + read timeout (+ ``waits``, e.g. a 429's
    Retry-After) + MARGIN."""
    outcome = Outcome()
    msgs = messages or [{"role": "user", "content": question}]
    start = time.perf_counter()
    try:
        for delta in qwen_core.stream_chat(MODEL, msgs, base_url=base_url, timeout=timeout,
                                           **kwargs):
            outcome.deltas.append(delta)
    except qwen_core.SpaceError as exc:
        outcome.error = exc
    except BaseException as exc:  # noqa: BLE001 - the contract under test
        pytest.fail(f"a non-SpaceError escaped: {type(exc).__name__}: {exc!r}")
    outcome.elapsed = time.perf_counter() - start
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    limit = connect + read + waits + MARGIN
    assert outcome.elapsed < limit, f"took {outcome.elapsed:.2f} s (limit {limit:.2f} s)"
    return outcome


def socket_fds() -> set[str]:
    """This process's open sockets (``/proc/self/fd`` links to ``socket:[inode]``)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found
