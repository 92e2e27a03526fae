"""Load: many turns at once through one process, against a real Gradio replica.

- 50 threads stream at once from the Qwen2.5-Max Gradio 6 replica (started with
  concurrency 50); each gets exactly its own echo (question and history), so cross-talk
  between streams would show.
- 10 AppTest sessions of the app chat at once, two turns each; each sees only its own
  questions and answers, and its second turn sends only its own history.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest.mock import MagicMock

import pytest
from streamlit.testing.v1 import AppTest

import qwen_core
from tests.replicas import script

pytestmark = pytest.mark.replica

MODEL = "qwen-2.5-max"
SPACE_ID = "Qwen/Qwen2.5-Max-Demo"
SYSTEM = "You are a helpful assistant."
APP = Path(__file__).resolve().parents[2] / "streamlit_app.py"


@pytest.fixture(scope="module")
def max_g6_50(replica_pool):
    return replica_pool.get("max_g6", concurrency=50)


def max_concurrent(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def test_fifty_concurrent_streams_each_get_their_own_exact_text(max_g6_50):
    replica = max_g6_50
    n = 50
    barrier = threading.Barrier(n)
    threads_before = threading.active_count()

    def one(i: int) -> tuple[str, str, float, float]:
        question = f"load {i} " + "q" * i
        history = [{"role": "user", "content": f"u{i}"},
                   {"role": "assistant", "content": f"a{i}"}]
        barrier.wait(timeout=30)
        start = time.monotonic()
        text = "".join(qwen_core.stream_chat(
            MODEL, [*history, {"role": "user", "content": question}],
            base_url=replica.base_url, timeout=(10, 30)))
        expected = script.expected_answer(question, system=SYSTEM,
                                          history=[[f"u{i}", f"a{i}"]])
        return text, expected, start, time.monotonic()

    started = time.time()
    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(one, range(n)))
    for i, (text, expected, _, _) in enumerate(results):
        assert text == expected, f"stream {i} got someone else's text: {text[:120]!r}"
    assert max_concurrent([(a, b) for _, _, a, b in results]) >= 10
    # the replica really ran them side by side (its own log of generations)
    mine = [e for e in replica.events() if e["t"] >= started and e["event"] in ("start", "end")
            and str(e.get("query", "load ")).startswith("load ")]
    starts = {e["session"]: e["t"] for e in mine if e["event"] == "start"}
    ends = {e["session"]: e["t"] for e in mine if e["event"] == "end"}
    assert len(starts) == n
    assert max_concurrent([(starts[s], ends[s]) for s in starts if s in ends]) >= 5
    assert threading.active_count() == threads_before


@pytest.fixture
def one_runtime_for_all_apptests(monkeypatch):
    """AppTest is built for one session at a time: each run installs a mock Runtime as
    the process-wide singleton and removes it when done (breaking the other sessions'
    runs), and compiles the script anew (CPython 3.11's ``ast.parse`` is not safe to run
    in several threads at once). A real server has one Runtime and one script cache for
    all sessions: give the AppTests that."""
    from streamlit import config
    from streamlit.runtime import Runtime
    from streamlit.runtime.caching.storage.dummy_cache_storage import (
        MemoryCacheStorageManager,
    )
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test, local_script_runner

    shared = MagicMock(spec=Runtime)
    shared.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
    shared.cache_storage_manager = MemoryCacheStorageManager()
    monkeypatch.setattr(Runtime, "instance", classmethod(lambda cls: shared))
    monkeypatch.setattr(Runtime, "exists", classmethod(lambda cls: True))
    script_cache = ScriptCache()
    monkeypatch.setattr(app_test, "ScriptCache", lambda: script_cache)
    monkeypatch.setattr(local_script_runner, "ScriptCache", lambda: script_cache)
    previous = config.get_option("global.appTest")
    config.set_option("global.appTest", True)  # what each run patches in and out
    yield
    config.set_option("global.appTest", previous)


@pytest.mark.usefixtures("one_runtime_for_all_apptests")
def test_ten_concurrent_app_sessions_do_not_share_state(monkeypatch, max_g6_50):
    monkeypatch.setenv("QWEN_SPACE_URLS", f"{SPACE_ID}={max_g6_50.base_url}")
    monkeypatch.setenv("QWEN_OFFLINE", "1")
    n = 10
    barrier = threading.Barrier(n)

    spans: list[tuple[float, float]] = []

    def session(i: int) -> list[tuple[str, str]]:
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.run()
        barrier.wait(timeout=60)
        for turn in (f"session {i} first", f"session {i} second"):
            start = time.monotonic()
            at.chat_input[0].set_value(turn).run()
            spans.append((start, time.monotonic()))
            assert not at.exception, at.exception
            assert not at.error, [e.value for e in at.error]
        return [(m.name, m.markdown[0].value) for m in at.chat_message]

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(session, range(n)))
    assert max_concurrent(spans) >= 3  # the sessions' turns really overlapped
    for i, shown in enumerate(results):
        first_q, second_q = f"session {i} first", f"session {i} second"
        first_a = script.expected_answer(first_q, system=SYSTEM)
        second_a = script.expected_answer(second_q, system=SYSTEM,
                                          history=[[first_q, first_a]])
        assert shown == [("user", first_q), ("assistant", first_a),
                         ("user", second_q), ("assistant", second_a)]
