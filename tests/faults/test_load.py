"""Load: many turns at once through one process, against a real Gradio replica.

- 50 threads stream at once from the Qwen2.5-Max Gradio 6 replica (started with
  concurrency 50); each gets exactly its own echo (question and history), so cross-talk
  between streams would show.
- 10 real app sessions on one ``streamlit run`` server (10 Chromium contexts driven by
  Playwright) chat at once, two turns each; each shows only its own questions and
  answers, and its second turn sends only its own history.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

import qwen_core
from tests.browser.conftest import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    app_env,
    require_chromium,
)
from tests.browser.serve import start_streamlit, stop_process
from tests.replicas import bed, script

pytestmark = pytest.mark.replica

MODEL = "qwen-2.5-max"
SPACE_ID = "Qwen/Qwen2.5-Max-Demo"
SYSTEM = "You are a helpful assistant."


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


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """Debian's headless Chromium (skipped locally when missing, a failure in CI)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def max_g6_10(replica_pool):
    return replica_pool.get("max_g6", concurrency=10)


@pytest.fixture(scope="module")
def load_server(max_g6_10) -> Iterator[str]:
    """One ``streamlit run streamlit_app.py`` (as tests/browser does), Qwen2.5-Max pointed
    at a replica running ten jobs at a time; its URL."""
    env = app_env(bed.space_urls([max_g6_10]))
    env.update(QWEN_CHAT_HISTORY="off")  # sessions only: nothing stored between them
    process, url = start_streamlit(REPO, sys.executable, env, ARTIFACTS / "streamlit-load.log")
    try:
        yield url
    finally:
        stop_process(process)


@contextlib.contextmanager
def all_slots_held(replica, n: int, tag: str) -> Iterator[Callable[[], None]]:
    """Occupy the replica's ``n`` slots with slow jobs (30 s unless released); yields
    ``release()``, which stops them all at once (early close: cancelled, slots freed), so
    the jobs queued meanwhile start together: their overlap does not depend on timing."""
    stop = threading.Event()
    queries = [f"script:slow:600:50 {tag}-hold-{k}" for k in range(n)]

    def hold(query: str) -> None:
        for _ in qwen_core.stream_chat(MODEL, [{"role": "user", "content": query}],
                                       base_url=replica.base_url, timeout=(10, 60)):
            if stop.is_set():
                break

    threads = [threading.Thread(target=hold, args=(q,)) for q in queries]
    for thread in threads:
        thread.start()
    try:
        for query in queries:
            replica.wait_event(lambda e, q=query: e["event"] == "start" and e["query"] == q,
                               timeout=60)
        yield stop.set
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not any(thread.is_alive() for thread in threads)


def question(i: int, turn: str, tag: str) -> str:
    """Distinct per session and turn (~25 words: ~70 tokens streamed back, ~200 with the
    first turn echoed as history)."""
    return f"session {i} {turn} {tag}: " + " ".join(f"s{i}{turn[0]}{k}" for k in range(25))


@pytest.mark.browser
@pytest.mark.timeout(900)  # ten browsers and ten streams on a small, shared CI machine
def test_ten_concurrent_app_sessions_do_not_share_state(chromium, load_server, max_g6_10):
    """Ten visitors (browser contexts: own cookies, own websocket session) on one server
    ask at once, twice; each sees exactly its own questions and answers, and its second
    answer echoes only its own first turn as history.

    No timing decides the overlap: the replica's ten slots are held while the ten
    questions are sent, every page shows its turn waiting in the Space's queue (ten
    sessions in flight at once), then the slots are freed together and the ten answers
    stream side by side."""
    n = 10
    tag = f"load-{time.time_ns()}"
    contexts = [chromium.new_context(viewport={"width": 1280, "height": 900}) for _ in range(n)]
    try:
        pages = [context.new_page() for context in contexts]
        for page in pages:  # all ten load at once
            page.goto(load_server + "/", wait_until="commit")
        boxes = [page.get_by_test_id("stChatInputTextArea") for page in pages]
        history: list[list[list[str]]] = [[] for _ in range(n)]
        for turn in ("first", "second"):
            asked = [question(i, turn, tag) for i in range(n)]
            for box, text in zip(boxes, asked, strict=True):
                expect(box).to_be_enabled(timeout=120_000)
                box.fill(text)
            with all_slots_held(max_g6_10, n, f"{tag}-{turn}") as release:
                for box in boxes:
                    box.press("Enter")
                for page in pages:
                    expect(page.get_by_test_id("stChatMessage").last).to_contain_text(
                        "Waiting in the Space's queue", timeout=120_000)
                release()
            for i, page in enumerate(pages):
                expected = script.expected_answer(asked[i], system=SYSTEM, history=history[i])
                messages = page.get_by_test_id("stChatMessage")
                expect(messages.last).to_contain_text(expected, timeout=300_000)
                expect(page.get_by_role("button", name="Regenerate")).to_be_visible(
                    timeout=120_000)
                history[i].append([asked[i], expected])
        for i, page in enumerate(pages):
            messages = page.get_by_test_id("stChatMessage")
            expect(messages).to_have_count(4)
            shown = []
            for k in range(4):
                message = messages.nth(k)
                answer = message.locator("[class*=st-key-answer-]")
                shown.append(answer.first.inner_text().strip() if answer.count()
                             else message.get_by_test_id("stChatMessageContent").inner_text())
            (q1, a1), (q2, a2) = history[i]
            assert shown[1::2] == [a1, a2], f"session {i} shows someone else's answer"
            assert q1 in shown[0] and q2 in shown[2], f"session {i} shows others' questions"
            others = [f"session {j} " for j in range(n) if j != i]
            assert not any(o in text for o in others for text in shown)
    finally:
        for context in contexts:
            context.close()
    # the replica got each question once, and each turn's ten answers ran side by side
    mine = [e for e in max_g6_10.events()
            if str(e.get("query", "")).startswith("session ") and tag in e["query"]]
    starts = {e["session"]: e for e in mine if e["event"] == "start"}
    ends = {e["session"]: e["t"] for e in mine if e["event"] == "end" and e["how"] == "done"}
    assert sorted(e["query"] for e in starts.values()) == sorted(
        question(i, turn, tag) for i in range(n) for turn in ("first", "second"))
    assert set(ends) == set(starts)
    for turn in ("first", "second"):
        spans = [(e["t"], ends[s]) for s, e in starts.items() if f" {turn} " in e["query"]]
        assert max_concurrent(spans) >= 3, f"{turn} turns did not overlap: {spans}"
