"""A person's view: ``streamlit run`` serving the app, headless Chromium typing into it,
replica Spaces answering on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.serve import start_streamlit, stop_process
from tests.replicas import bed, script

from .conftest import ARTIFACTS, REPO, Server, app_env

pytestmark = [pytest.mark.browser, pytest.mark.replica]
MAX_SYSTEM = "You are a helpful assistant."


def ask(page: Page, text: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    expect(box).to_be_enabled(timeout=30_000)
    box.fill(text)
    box.press("Enter")


def last_message(page: Page):
    return page.get_by_test_id("stChatMessage").last


def answer_text(page: Page) -> str:
    """The answer's own Markdown in the last message (not captions, not Thinking)."""
    return last_message(page).locator("[class*=st-key-answer-]").first.inner_text()


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def starts(server: Server, name: str = "max") -> int:
    return sum(1 for e in server.replicas[name].events() if e["event"] == "start")


def test_a_question_streams_in_and_the_whole_answer_stays(page: Page, server: Server):
    question = "What is the capital of France?"
    ask(page, question)
    expected = script.expected_answer(question, system=MAX_SYSTEM)
    message = last_message(page)
    expect(message).to_contain_text(expected, timeout=30_000)
    expect(message).to_contain_text("Qwen2.5-Max · qwen-2.5-max")  # who wrote it
    expect(page.get_by_role("button", name="Regenerate")).to_be_visible()
    assert answer_text(page).strip() == expected
    assert page.title() == "Qwen Spaces Chat"


def test_the_renderers_an_answer_needs_are_loaded_before_it_streams(page: Page):
    """The browser loads the code highlighter, KaTeX and the emoji plugin on first use
    (250-400 ms each on a fresh page, measured): a first answer with code and math froze
    while they loaded. The page draws a hidden sample at its end, so they load with it."""
    scripts: list[str] = []
    page.on("request", lambda request: scripts.append(request.url)
            if request.url.endswith(".js") else None)
    page.reload()
    expect(page.get_by_test_id("stChatInputTextArea")).to_be_enabled(timeout=30_000)
    loaded = ("StreamlitSyntaxHighlighter", "rehype-katex", "remark-emoji")
    wait_until(lambda: all(any(name in url for url in scripts) for name in loaded))
    expect(page.locator(".st-key-warm-up")).to_be_hidden()
    scripts.clear()
    ask(page, "script:rich")
    expect(last_message(page).locator("[class*=st-key-answer-]").first).to_contain_text(
        "last line of the open fence", timeout=30_000)
    assert last_message(page).locator(".katex").count() >= 4
    assert scripts == []  # nothing more to load while the answer streamed


def test_earlier_turns_stay_on_screen_untouched_while_the_next_answer_streams(page: Page):
    """The run started by Enter does not send the conversation again (after 100 turns
    that put 300 KB ahead of the first token): the earlier turns stay the same elements,
    not faded as stale, and the final rerun shows the whole conversation."""
    ask(page, "turn one")
    first = script.expected_answer("turn one", system=MAX_SYSTEM).strip()
    expect(last_message(page)).to_contain_text(first, timeout=30_000)
    expect(page.get_by_role("button", name="Regenerate")).to_be_visible(timeout=30_000)
    page.evaluate("() => { document.querySelectorAll('[data-testid=stChatMessage]')"
                  ".forEach((m) => { m.__before = true; }); }")
    ask(page, "script:slow:60:50")
    live = page.locator(".st-key-answer-live")
    expect(live).to_contain_text("s5 ", timeout=30_000)
    kept = page.evaluate("() => [...document.querySelectorAll('[data-testid=stChatMessage]')]"
                         ".map((m) => [m.__before === true, getComputedStyle(m).opacity,"
                         " m.innerText])")
    assert [k[0] for k in kept[:2]] == [True, True]  # the same nodes: nothing redrawn
    assert [k[1] for k in kept[:2]] == ["1", "1"]  # and not faded
    assert first in kept[1][2]
    assert "script:slow:60:50" in kept[2][2]
    assert page.get_by_role("button", name="Regenerate").count() == 0
    expect(page.get_by_role("button", name="Regenerate")).to_be_visible(timeout=30_000)
    texts = page.get_by_test_id("stChatMessage").all_inner_texts()
    assert len(texts) == 4 and first in texts[1]
    assert " ".join(f"s{i}" for i in range(60)) in texts[3]


def test_stop_keeps_the_partial_answer_marked_stopped(page: Page, server: Server):
    ask(page, "script:slow:200:50")
    message = last_message(page)
    expect(message).to_contain_text("s5 ", timeout=30_000)  # streaming, token by token
    page.get_by_test_id("stChatInputStopButton").click()
    box = page.get_by_test_id("stChatInputTextArea")
    expect(box).to_be_enabled(timeout=15_000)
    box.fill("half-typed next question")  # typed while the page reruns to show the mark
    expect(message).to_contain_text("stopped", timeout=15_000)
    kept = answer_text(page)
    assert kept.startswith("s0 s1 s2 s3 s4 s5") and "s199" not in kept
    expect(box).to_have_value("half-typed next question")  # nothing typed is lost
    page.wait_for_timeout(1000)
    assert answer_text(page) == kept  # nothing more arrives: the job was cancelled
    closed = server.replicas["max"].wait_event(
        lambda e: e["event"] == "end" and e["query"] == "script:slow:200:50", timeout=10
    )
    assert closed["how"] == "closed"
    page.screenshot(path=str(ARTIFACTS / "stopped.png"))
    # the conversation goes on from here
    ask(page, "and now?")
    expect(last_message(page)).to_contain_text("ECHO query=and now?", timeout=30_000)


def test_an_error_shows_the_spaces_words_keeps_the_partial_and_retry_asks_again(
    page: Page, server: Server
):
    ask(page, "script:error:3")
    alert = last_message(page).get_by_test_id("stAlertContentError")
    expect(alert).to_contain_text(script.ERROR_MESSAGE, timeout=30_000)
    expect(alert).to_contain_text("Qwen/Qwen2.5-Max-Demo")
    assert answer_text(page).strip() == "e0 e1 e2"
    page.screenshot(path=str(ARTIFACTS / "error.png"))
    before = starts(server)
    page.get_by_role("button", name="Retry").click()
    wait_until(lambda: starts(server) == before + 1)  # the Space was asked again
    expect(page.get_by_role("button", name="Retry")).to_be_visible(timeout=30_000)
    expect(last_message(page).get_by_test_id("stAlertContentError")).to_contain_text(
        script.ERROR_MESSAGE
    )
    assert page.get_by_test_id("stChatMessage").count() == 2  # replaced, not added


def test_while_queued_the_answer_shows_its_place_in_the_spaces_queue(
    page: Page, browser, server: Server
):
    """The replica runs one job at a time: a second visitor's question waits behind a
    slow one and sees its position, then gets its answer."""
    other = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        first = other.new_page()
        first.goto(server.url + "/")
        ask(first, "script:slow:60:50")
        expect(last_message(first)).to_contain_text("s2 ", timeout=30_000)
        ask(page, "am I queued?")
        expect(last_message(page)).to_contain_text(
            "Waiting in the Space's queue · position 1", timeout=15_000
        )
        page.screenshot(path=str(ARTIFACTS / "queued.png"))
        expect(last_message(page)).to_contain_text("ECHO query=am I queued?", timeout=30_000)
    finally:
        other.close()


def test_html_in_an_answer_is_shown_as_text_never_run(page: Page):
    ask(page, "script:html")
    message = last_message(page)
    expect(message).to_contain_text("done.", timeout=30_000)
    expect(message).to_contain_text("Careful:")
    page.wait_for_timeout(500)
    assert page.dialogs == []  # type: ignore[attr-defined]
    content = message.get_by_test_id("stChatMessageContent")
    assert content.locator("script").count() == 0
    assert content.locator("img").count() == 0
    assert page.locator("img[src=x]").count() == 0
    assert not page.evaluate(
        "[...document.scripts].some(s => s.textContent.includes('alert(1)'))"
    )
    message.screenshot(path=str(ARTIFACTS / "html-answer.png"))


def test_stop_button_stops_a_regenerated_answer(page: Page, server: Server):
    """Runs started by a button (Regenerate, Retry) have a Stop button of their own; any
    rerun it causes stops the answer the same way."""
    ask(page, "script:slow:100:50")
    message = last_message(page)
    expect(message).to_contain_text("s3 ", timeout=30_000)
    page.get_by_test_id("stChatInputStopButton").click()
    expect(message).to_contain_text("stopped", timeout=15_000)
    page.get_by_role("button", name="Regenerate").click()
    stop = page.locator(".st-key-stop").get_by_role("button", name="Stop")
    expect(stop).to_be_visible(timeout=30_000)
    expect(page.locator(".st-key-answer-live")).to_contain_text("s3 ", timeout=30_000)
    stop.click()
    expect(last_message(page)).to_contain_text("stopped", timeout=15_000)
    expect(stop).to_have_count(0)
    kept = answer_text(page)
    assert kept.startswith("s0 s1 s2 s3") and "s99" not in kept


def test_with_fast_reruns_on_a_click_mid_answer_still_keeps_the_partial(
    browser, server: Server
):
    """Streamlit's default ``runner.fastReruns`` starts the next run in a new thread while
    the old one streams on; the next run waits for the old turn to store its answer."""
    process, url = start_streamlit(
        REPO, sys.executable, app_env(bed.space_urls(server.replicas.values())),
        ARTIFACTS / "streamlit-fast-reruns.log", ["--runner.fastReruns", "true"],
    )
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(url + "/")
        ask(page, "script:slow:40:50")
        expect(last_message(page)).to_contain_text("s39 ", timeout=30_000)
        expect(page.get_by_role("button", name="Regenerate")).to_be_visible()
        page.get_by_role("button", name="Regenerate").click()
        stop = page.locator(".st-key-stop").get_by_role("button", name="Stop")
        expect(stop).to_be_visible(timeout=30_000)
        expect(page.locator(".st-key-answer-live")).to_contain_text("s3 ", timeout=30_000)
        stop.click()
        expect(last_message(page)).to_contain_text("stopped", timeout=15_000)
        kept = answer_text(page)
        assert kept.startswith("s0 s1 s2 s3") and "s39" not in kept
        assert page.get_by_test_id("stChatMessage").count() == 2
    finally:
        context.close()
        stop_process(process)


def test_screenshots_for_the_readme_phone_and_dark_mode(browser, server: Server):
    """A real streamed conversation (Qwen2.5-Max, then Qwen3 with its thinking) from the
    replicas, for the README: test-artifacts/readme.png, copied to docs/screenshot.png
    when that is missing or QWEN_UPDATE_SCREENSHOT=1 (so test runs leave the tree clean).
    Phone-width and dark-mode views go to test-artifacts/ too."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000},
                                  device_scale_factor=1)
    page = context.new_page()
    try:
        page.goto(server.url + "/?model=qwen-2.5-max")
        question = "Show **bold**, `code` and $e^{i\\pi} + 1 = 0$, please."
        ask(page, question)
        expect(last_message(page)).to_contain_text("variant=None", timeout=30_000)
        # the run that stored the answer also lists the new conversation in the sidebar
        expect(page.get_by_role("button", name="Regenerate")).to_be_visible(timeout=30_000)
        page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").first.click()
        page.get_by_role("option", name="Qwen3").click()
        expect(page).to_have_url(re.compile(r"model=qwen3-235b-a22b"), timeout=15_000)
        ask(page, "Summarize what I asked.")
        message = last_message(page)
        expect(message).to_contain_text("thinking_budget=38", timeout=30_000)
        expect(message.get_by_text("Thinking", exact=True)).to_be_visible()
        first_answer = page.get_by_test_id("stChatMessage").nth(1)
        assert first_answer.locator(".katex").count() >= 1  # LaTeX rendered
        assert first_answer.locator("code").count() >= 1 and first_answer.locator(
            "strong").count() >= 1  # and Markdown
        expect(message).to_contain_text("Qwen3-235B")  # the stored answer, with caption
        page.wait_for_timeout(300)
        readme = ARTIFACTS / "readme.png"
        page.screenshot(path=str(readme))
        docs = REPO / "docs" / "screenshot.png"
        if os.environ.get("QWEN_UPDATE_SCREENSHOT") == "1" or not docs.exists():
            docs.parent.mkdir(exist_ok=True)
            shutil.copyfile(readme, docs)

        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "phone.png"))
        box = page.get_by_test_id("stChatInput")
        assert box.bounding_box()["width"] <= 390
    finally:
        context.close()
    dark = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme="dark")
    page = dark.new_page()
    try:
        page.goto(server.url + "/")
        ask(page, "Hello in the dark")
        expect(last_message(page)).to_contain_text("ECHO query=Hello in the dark",
                                                   timeout=30_000)
        expect(page.get_by_role("button", name="Regenerate")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "dark.png"))
        background = page.evaluate(
            "getComputedStyle(document.querySelector('[data-testid=stApp]')).backgroundColor"
        )
        red, green, blue = (int(x) for x in re.findall(r"\d+", background)[:3])
        assert red + green + blue < 200, background  # the dark theme is in use
    finally:
        dark.close()
