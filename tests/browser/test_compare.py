"""Compare mode, answer versions and the way out of a down Space, as a person sees them:
headless Chromium on ``streamlit run`` with the Qwen2.5-Max and Qwen3 replicas."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import sys
import time

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.serve import start_streamlit, stop_process
from tests.replicas import bed, script
from tests.replicas.bed import Replica

from .conftest import ARTIFACTS, REPO, Server, app_env, temp_db
from .test_browser import answer_text, ask, last_message

pytestmark = [pytest.mark.browser, pytest.mark.replica]
MAX_SYSTEM = "You are a helpful assistant."
QWEN3 = "qwen3-235b-a22b"
QWEN3_SYSTEM = "You are a helpful and harmless assistant."
COMPARE = f"/?model=qwen-2.5-max&compare={QWEN3}"


_TAGS = itertools.count(int(time.time() * 1000))


def columns(page: Page):
    return last_message(page).get_by_test_id("stColumn")


def tokens(text: str) -> list[str]:
    return re.findall(r"\bs\d+\b", text)


def side_answer(page: Page, side: str) -> str:
    """The answer text of one side of the last (stored) comparison."""
    return last_message(page).locator(f"[class*=st-key-answer-][class*=-{side}]").first.inner_text()


def slow(n: int, ms: int) -> tuple[str, str]:
    """A slow script's question, unique (the replicas and their logs are shared with other
    tests), and its exact answer."""
    tag = next(_TAGS)
    return f"script:slow:{n}:{ms} compare-{tag}", "".join(f"s{i} " for i in range(n)).strip()


def ended(replica: Replica, query: str) -> dict:
    return replica.wait_event(lambda e: e["event"] == "end" and e["query"] == query, timeout=15)


def test_compare_streams_both_answers_at_once_then_both_exact(page: Page, server: Server):
    page.goto(server.url + COMPARE)
    # the URL opened compare mode
    expect(page.get_by_text("Second model", exact=True)).to_be_visible(timeout=30_000)
    question, full = slow(100, 50)
    ask(page, question)
    both_partial = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not both_partial:
        found = [tokens(c.inner_text()) for c in columns(page).all()]
        both_partial = (len(found) == 2 and all(0 < len(t) < 100 for t in found))
        time.sleep(0.05)
    assert both_partial, "never saw both answers partial at the same moment"
    page.screenshot(path=str(ARTIFACTS / "compare-streaming.png"))
    done = last_message(page).get_by_role("button", name="Continue with this answer")
    expect(done).to_be_visible(timeout=30_000)
    assert side_answer(page, "left").strip() == full
    assert side_answer(page, "right").strip() == full
    texts = [c.inner_text() for c in columns(page).all()]
    assert "Qwen2.5-Max" in texts[0] and "Qwen3-235B" in texts[1]
    assert "The conversation continues with this answer" in texts[0]
    for name in ("max", "qwen3"):
        assert ended(server.replicas[name], question)["how"] == "done"


def test_one_stop_stops_both_sides_and_keeps_both_partials(page: Page, server: Server):
    page.goto(server.url + COMPARE)
    expect(page.get_by_text("Second model", exact=True)).to_be_visible(timeout=30_000)
    question, _ = slow(300, 50)
    ask(page, question)
    wait = time.monotonic() + 30
    while True:
        found = [tokens(c.inner_text()) for c in columns(page).all()]
        if len(found) == 2 and all(len(t) >= 5 for t in found):
            break
        assert time.monotonic() < wait, "both sides never streamed"
        time.sleep(0.05)
    page.get_by_test_id("stChatInputStopButton").click()
    for name in ("max", "qwen3"):  # both Space jobs were cancelled
        assert ended(server.replicas[name], question)["how"] == "closed"
    expect(columns(page).nth(1)).to_contain_text("stopped", timeout=15_000)
    expect(columns(page).nth(0)).to_contain_text("stopped")
    for side in ("left", "right"):
        kept = tokens(side_answer(page, side))
        assert len(kept) >= 5 and kept == [f"s{i}" for i in range(len(kept))]
        assert "s299" not in kept


def test_continue_with_the_other_answer_changes_the_history_sent(page: Page, server: Server):
    page.goto(server.url + COMPARE)
    expect(page.get_by_text("Second model", exact=True)).to_be_visible(timeout=30_000)
    ask(page, "pick one")
    right = last_message(page).locator("[class*=st-key-continue-right]")
    expect(right).to_be_visible(timeout=30_000)
    qwen3_answer = side_answer(page, "right")
    assert qwen3_answer.startswith("ECHO query=pick one") and f"variant={QWEN3}" in qwen3_answer
    right.get_by_role("button").click()
    expect(columns(page).nth(1)).to_contain_text("The conversation continues with this answer",
                                                 timeout=15_000)
    ask(page, "and next?")
    expect(last_message(page).locator("[class*=st-key-continue-right]")).to_be_visible(
        timeout=30_000)
    # what the Max replica received (its echo): the Qwen3 answer as the earlier turn
    expected = script.expected_answer("and next?", system=MAX_SYSTEM,
                                      history=[["pick one", qwen3_answer.strip()]])
    assert side_answer(page, "left").strip() == expected.strip()


def test_versions_switch_and_survive_a_reload(page: Page, server: Server):
    page.goto(server.url + "/?model=qwen-2.5-max")
    page.get_by_test_id("stChatInputTextArea").wait_for(timeout=30_000)
    ask(page, "two versions")
    max_answer = script.expected_answer("two versions", system=MAX_SYSTEM).strip()
    expect(last_message(page)).to_contain_text(max_answer, timeout=30_000)
    expect(page.get_by_role("button", name="Regenerate")).to_be_visible(timeout=30_000)
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").first.click()
    page.get_by_role("option", name="Qwen3").click()
    expect(page).to_have_url(re.compile(rf"model={QWEN3}"), timeout=15_000)
    page.get_by_role("button", name="Regenerate").click()
    expect(last_message(page)).to_contain_text(f"variant={QWEN3}", timeout=30_000)
    pager = page.locator("[class*=st-key-pager-]")
    expect(pager).to_contain_text("2/2", timeout=30_000)
    page.locator('[class*=st-key-v-prev-][data-stale="false"] button').first.click()
    expect(pager).to_contain_text("1/2", timeout=15_000)
    expect(last_message(page)).to_contain_text("Qwen2.5-Max · qwen-2.5-max")
    assert answer_text(page).strip() == max_answer
    expect(page).to_have_url(re.compile(r"chat=[\w-]+"))
    page.reload()
    expect(page.locator("[class*=st-key-pager-]")).to_contain_text("1/2", timeout=30_000)
    assert answer_text(page).strip() == max_answer
    page.locator('[class*=st-key-v-next-][data-stale="false"] button').first.click()
    expect(page.locator("[class*=st-key-pager-]")).to_contain_text("2/2", timeout=15_000)
    expect(last_message(page)).to_contain_text(f"variant={QWEN3}")


def test_a_down_space_offers_another_model_that_answers_exactly(
    browser: Browser, replica_qwen3_g5: Replica
):
    closed = bed._free_port()  # nothing listens there: the Space is "down"
    urls = bed.space_urls({"Qwen/Qwen2.5-Max-Demo": f"http://127.0.0.1:{closed}",
                           replica_qwen3_g5.space_id: replica_qwen3_g5})
    with temp_db() as db:
        process, url = start_streamlit(REPO, sys.executable, app_env(urls, db),
                                       ARTIFACTS / "streamlit-failover.log")
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.goto(url + "/?model=qwen-2.5-max")
            ask(page, "are you there?")
            alert = last_message(page).get_by_test_id("stAlertContentError")
            expect(alert).to_contain_text("may be down", timeout=30_000)
            offer = page.get_by_role("button", name=re.compile(r"^Ask Qwen3.* instead$"))
            expect(offer).to_have_count(1)
            offer.click()
            expect(last_message(page)).to_contain_text(f"variant={QWEN3}", timeout=30_000)
            expect(page.locator("[class*=st-key-pager-]")).to_contain_text("2/2",
                                                                            timeout=30_000)
            shown = answer_text(page).strip()
            assert shown.startswith("ECHO query=are you there? | system=")
            assert shown == script.expected_answer(
                "are you there?", system=QWEN3_SYSTEM, variant=QWEN3,
                thinking_budget=38).strip()
        finally:
            context.close()
            stop_process(process)


def test_screenshot_of_two_answers_streaming_for_the_readme(browser: Browser, server: Server):
    """test-artifacts/compare.png, copied to docs/compare.png when that is missing or
    QWEN_UPDATE_SCREENSHOT=1: two Markdown answers mid-stream, side by side."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000},
                                  device_scale_factor=1)
    try:
        page = context.new_page()
        page.goto(server.url + COMPARE)
        expect(page.get_by_text("Second model", exact=True)).to_be_visible(timeout=30_000)
        ask(page, "script:markdown:400:4:25")
        deadline = time.monotonic() + 30
        while True:
            texts = [c.inner_text() for c in columns(page).all()]
            if len(texts) == 2 and all(len(t) > 350 for t in texts):
                break
            assert time.monotonic() < deadline, "both answers never grew"
            time.sleep(0.05)
        assert all(script.MARKDOWN_END not in t for t in texts)  # both still streaming
        shot = ARTIFACTS / "compare.png"
        page.screenshot(path=str(shot))
        docs = REPO / "docs" / "compare.png"
        if os.environ.get("QWEN_UPDATE_SCREENSHOT") == "1" or not docs.exists():
            shutil.copyfile(shot, docs)
        done = last_message(page).get_by_role("button", name="Continue with this answer")
        expect(done).to_be_visible(timeout=60_000)
    finally:
        context.close()
