"""Conversations that survive, as a person sees them: headless Chromium on
``streamlit run`` with replica Spaces; each app server gets its own database (a temporary
SQLite file, or one PostgreSQL 15 cluster the test starts), and servers are stopped,
restarted and killed (-9) the way a deploy is."""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.serve import start_streamlit, stop_process
from tests.pg import pg_cluster, require_pg
from tests.replicas import bed, script
from tests.replicas.bed import Replica

from .conftest import ARTIFACTS, REPO, app_env
from .test_browser import answer_text, ask, last_message

pytestmark = [pytest.mark.browser, pytest.mark.replica]
MAX_SYSTEM = "You are a helpful assistant."


@contextmanager
def app_server(replica: Replica, db_url: str, name: str) -> Iterator[str]:
    env = app_env(bed.space_urls([replica]))
    env["QWEN_CHAT_DB"] = db_url
    process, url = start_streamlit(REPO, sys.executable, env, ARTIFACTS / f"streamlit-{name}.log")
    try:
        yield url
    finally:
        stop_process(process)


@pytest.fixture
def db_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{folder}/chats.db"


def fresh_page(browser: Browser) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    return context.new_page()


def open_app(page: Page, url: str) -> None:
    page.goto(url)
    page.get_by_test_id("stChatInputTextArea").wait_for(timeout=60_000)


def answered(page: Page, question: str) -> str:
    """Ask, wait until the stored answer is drawn; returns the chat id in the URL."""
    ask(page, question)
    expected = script.expected_answer(question, system=MAX_SYSTEM) if not question.startswith(
        "script:") else None
    if expected is not None:
        expect(last_message(page)).to_contain_text(expected.strip()[:60], timeout=30_000)
    expect(page.get_by_role("button", name="Regenerate")).to_be_visible(timeout=60_000)
    expect(page).to_have_url(re.compile(r"chat=[\w-]+"), timeout=15_000)
    return re.search(r"chat=([\w-]+)", page.url).group(1)


def chat_texts(page: Page) -> list[str]:
    return [m.inner_text() for m in page.get_by_test_id("stChatMessage").all()]


def test_reload_and_a_restart_keep_the_conversation_and_another_browser_sees_nothing(
    browser: Browser, replica_max_g5: Replica, db_url: str
):
    page = fresh_page(browser)
    try:
        with app_server(replica_max_g5, db_url, "conv-a") as url:
            open_app(page, url + "/")
            chat_id = answered(page, "remember the lighthouse")
            sidebar = page.get_by_test_id("stSidebar")
            expect(sidebar.get_by_text("Today")).to_be_visible()
            expect(sidebar.get_by_role("button", name="remember the lighthouse")).to_be_visible()
            before = chat_texts(page)
            page.reload()
            page.get_by_test_id("stChatInputTextArea").wait_for(timeout=60_000)
            expect(last_message(page)).to_contain_text("ECHO query=remember the lighthouse",
                                                       timeout=30_000)
            assert chat_texts(page) == before
            link = f"{url}/?model=qwen-2.5-max&chat={chat_id}"

            other = fresh_page(browser)  # another browser: another owner cookie
            try:
                open_app(other, link)
                expect(other.get_by_text("Conversation not found")).to_be_visible(
                    timeout=30_000)
                assert "lighthouse" not in other.content()
                other_bar = other.get_by_test_id("stSidebar")
                expect(other_bar.get_by_text("Your conversations will be listed here")
                       ).to_be_visible()
            finally:
                other.context.close()

        with app_server(replica_max_g5, db_url, "conv-b") as url:  # a restart
            open_app(page, f"{url}/?model=qwen-2.5-max&chat={chat_id}")
            expect(last_message(page)).to_contain_text("ECHO query=remember the lighthouse",
                                                       timeout=30_000)
            assert chat_texts(page) == before
            # the conversation goes on: the Space gets the earlier turn as history
            ask(page, "and now?")
            first_answer = script.expected_answer("remember the lighthouse",
                                                  system=MAX_SYSTEM)
            expect(last_message(page)).to_contain_text("history=[[", timeout=30_000)
            assert "remember the lighthouse" in answer_text(page)
            assert first_answer.strip()[:30] in answer_text(page)
    finally:
        page.context.close()


def test_stop_then_reload_shows_the_stopped_partial_answer(
    browser: Browser, replica_max_g5: Replica, db_url: str
):
    page = fresh_page(browser)
    try:
        with app_server(replica_max_g5, db_url, "conv-stop") as url:
            open_app(page, url + "/")
            ask(page, "script:slow:200:50")
            expect(last_message(page)).to_contain_text("s5 ", timeout=30_000)
            page.get_by_test_id("stChatInputStopButton").click()
            expect(last_message(page)).to_contain_text("stopped", timeout=15_000)
            kept = answer_text(page)
            assert kept.startswith("s0 s1 s2 s3 s4 s5") and "s199" not in kept
            expect(page).to_have_url(re.compile(r"chat=[\w-]+"), timeout=15_000)
            page.reload()
            expect(last_message(page)).to_contain_text("stopped", timeout=30_000)
            assert answer_text(page) == kept
    finally:
        page.context.close()


def test_kill_9_mid_answer_loses_at_most_the_last_2_seconds(
    browser: Browser, replica_max_g5: Replica, db_url: str
):
    """The answer streams 20 tokens a second; it is saved at least every 2 s, so after a
    kill -9 and a restart at most 2 s of tokens (40) of what the page showed at the kill
    are missing, plus a few for reading the page while it streams — 45 allowed."""
    page = fresh_page(browser)
    env = app_env(bed.space_urls([replica_max_g5]))
    env["QWEN_CHAT_DB"] = db_url
    log = ARTIFACTS / "streamlit-conv-kill.log"
    process, url = start_streamlit(REPO, sys.executable, env, log)
    try:
        open_app(page, url + "/")
        ask(page, "script:slow:400:50")
        expect(last_message(page)).to_contain_text("s80 ", timeout=60_000)
        expect(page).to_have_url(re.compile(r"chat=[\w-]+"), timeout=15_000)
        link = page.url
        # the last token on screen just before the server dies (the app had at least it)
        produced = int(re.findall(r"s(\d+)", answer_text(page))[-1])
        os.kill(process.pid, signal.SIGKILL)  # the server dies mid-answer
        process.wait(timeout=10)
    finally:
        stop_process(process)
    try:
        with app_server(replica_max_g5, db_url, "conv-kill-2") as url2:
            page.goto(link.replace(url, url2))
            page.get_by_test_id("stChatInputTextArea").wait_for(timeout=60_000)
            expect(last_message(page)).to_contain_text("s0 s1 s2", timeout=30_000)
            kept = answer_text(page)
            tokens = re.findall(r"s(\d+)", kept)
            last = int(tokens[-1])
            assert tokens == [str(i) for i in range(last + 1)]  # a prefix, in order
            assert produced - last <= 45, (produced, last)
            assert last >= 20  # saved while it streamed, not only at the start
    finally:
        page.context.close()


def test_two_app_servers_on_one_postgresql_share_the_conversation(
    browser: Browser, replica_max_g5: Replica
):
    require_pg()
    with pg_cluster() as pg:
        url_db = pg.url.replace("postgresql://", "postgresql+psycopg://", 1)
        page = fresh_page(browser)  # one browser: the owner cookie is per host
        try:
            with app_server(replica_max_g5, url_db, "pg-a") as url_a, \
                    app_server(replica_max_g5, url_db, "pg-b") as url_b:
                open_app(page, url_a + "/")
                chat_id = answered(page, "begun on server A")
                open_app(page, f"{url_b}/?model=qwen-2.5-max&chat={chat_id}")
                expect(last_message(page)).to_contain_text("ECHO query=begun on server A",
                                                           timeout=30_000)
                ask(page, "continued on server B")
                expect(last_message(page)).to_contain_text("ECHO query=continued on server B",
                                                           timeout=30_000)
                expect(page.get_by_role("button", name="Regenerate")).to_be_visible(
                    timeout=30_000)
                assert "begun on server A" in answer_text(page)  # A's turn is the history
                open_app(page, f"{url_a}/?model=qwen-2.5-max&chat={chat_id}")
                expect(last_message(page)).to_contain_text("ECHO query=continued on server B",
                                                           timeout=30_000)
                assert len(chat_texts(page)) == 4
        finally:
            page.context.close()


def test_history_off_stores_nothing_and_says_so(browser: Browser, replica_max_g5: Replica):
    env = app_env(bed.space_urls([replica_max_g5]))
    env["QWEN_CHAT_HISTORY"] = "off"
    process, url = start_streamlit(REPO, sys.executable, env,
                                   ARTIFACTS / "streamlit-conv-off.log")
    page = fresh_page(browser)
    try:
        open_app(page, url + "/")
        expect(page.get_by_test_id("stSidebar").get_by_text(
            "Conversations are not stored on this server")).to_be_visible(timeout=30_000)
        ask(page, "not kept")
        expect(page.get_by_role("button", name="Regenerate")).to_be_visible(timeout=30_000)
        time.sleep(0.5)
        assert "chat=" not in page.url
    finally:
        page.context.close()
        stop_process(process)
