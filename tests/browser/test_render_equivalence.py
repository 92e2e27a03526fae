"""An answer looks the same while it streams as after the page has stored it and after a
reload: the streamed blocks (``qwen_chat.blocks.stream_blocks`` through
``st.write_stream``) and the stored answer's blocks (``split_blocks`` in ``show_text``)
must render to the same DOM.

The replica streams ``script:rich`` (headings, nested lists, a table, LaTeX in all three
forms, a block quote, raw HTML, CJK, emoji, a closed code fence and one that never
closes). The page reruns right after the stream, and the browser may apply the stream's
last deltas and the rerun's in one render, so the live answer's final state would never
be on screen. :class:`HoldRerun` therefore holds the server's messages in the browser's
websocket from the rerun's ``new_session`` on (once the answer's last text has been
sent) until the live answer has been captured: the stream itself is untouched. A
MutationObserver takes an outline (tag names, test ids, text) of ``.st-key-answer-live``
after every DOM change; that is compared with the stored answer (``.st-key-answer-N``)
after the rerun, and again after reloading ``?chat=<id>`` (conversations stored in a
temporary SQLite file)."""

from __future__ import annotations

import difflib
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.browser.serve import start_streamlit, stop_process
from tests.replicas import bed, script
from tests.replicas.bed import Replica

from .conftest import ARTIFACTS, REPO, Server, app_env

pytestmark = [pytest.mark.browser, pytest.mark.replica]

QUERY = "script:rich"
LAST_LINE = "last line of the open fence"

# An outline of an answer container's contents, one line per node: element tag (with
# its data-testid, and "(hidden)" when such an element is not displayed), or text
# (whitespace collapsed, except inside <pre>). The container itself is left out (its key
# differs: answer-live vs answer-N).
OUTLINE_JS = """
window.__outline = (root) => {
  const out = [];
  const walk = (node, depth, pre) => {
    if (node.nodeType === Node.TEXT_NODE) {
      let text = node.textContent;
      if (!pre) text = text.replace(/\\s+/g, ' ').trim();
      if (text) out.push('  '.repeat(depth) + JSON.stringify(text));
      return;
    }
    if (node.nodeType !== Node.ELEMENT_NODE) return;
    const tag = node.tagName.toLowerCase();
    if (tag === 'style') return;
    const id = node.getAttribute('data-testid');
    const hidden = id && getComputedStyle(node).display === 'none' ? ' (hidden)' : '';
    out.push('  '.repeat(depth) + tag + (id ? `[${id}]` : '') + hidden);
    for (const child of node.childNodes) walk(child, depth + 1, pre || tag === 'pre');
  };
  for (const child of root.childNodes) walk(child, 0, false);
  return out.join('\\n');
};
"""

WATCH_LIVE_JS = """
() => {
  window.__live = null; window.__liveText = ''; window.__liveSnaps = 0;
  window.__liveAt = 0;
  if (window.__liveObserver) window.__liveObserver.disconnect();
  const take = () => {
    const live = document.querySelector('.st-key-answer-live');
    if (!live) return;
    const outline = window.__outline(live);
    if (outline !== window.__live) {
      window.__live = outline;
      window.__liveText = live.innerText;
      window.__liveSnaps += 1;
      window.__liveAt = performance.now();
    }
  };
  window.__liveObserver = new MutationObserver(take);
  window.__liveObserver.observe(document.body,
    {subtree: true, childList: true, characterData: true, attributes: true});
}
"""

# the answer has streamed and the final rerun has drawn the stored conversation
IDLE_JS = """() => !document.querySelector('.st-key-answer-live')
  && document.querySelector('.st-key-regenerate') !== null
  && !document.querySelector('[data-testid=stChatInputStopButton]')"""


class HoldRerun:
    """Relays Streamlit's websocket between page and server. Once :meth:`arm`\\ ed (just
    before a question is sent, which starts the streaming run): if the streaming run's
    messages carry ``marker`` (the answer's last text), every server message from the
    next run's ``new_session`` on is held until :meth:`release`. ``truncated`` says the
    streaming run ended without sending it: Streamlit clears a session's unsent deltas
    when the next run starts, and the page reruns right after the stream."""

    def __init__(self, page: Page, marker: str) -> None:
        self.marker = marker.encode()
        self.armed = self.seen = self.holding = False
        self.runs = 0  # new_session messages since armed
        self.held: list[tuple[WebSocketRoute, str | bytes]] = []
        page.route_web_socket(re.compile(r"/_stcore/stream"), self._route)

    @property
    def truncated(self) -> bool:
        """The run after the streaming one has started, and the marker never came."""
        return self.runs >= 2 and not self.seen

    def _route(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        ws.on_message(server.send)
        server.on_message(lambda message: self._from_server(ws, message))

    def _from_server(self, ws: WebSocketRoute, message: str | bytes) -> None:
        if self.armed and not self.holding and isinstance(message, bytes):
            if _is_new_session(message):
                self.runs += 1
                self.holding = self.seen and self.runs >= 2
            elif self.runs == 1 and not self.seen:
                self.seen = self.marker in message
        if self.holding:
            self.held.append((ws, message))
        else:
            ws.send(message)

    def arm(self) -> None:
        self.armed, self.seen, self.holding, self.runs = True, False, False, 0

    def release(self) -> None:
        self.armed = self.holding = False
        held, self.held = self.held, []
        for ws, message in held:
            ws.send(message)


def _is_new_session(payload: bytes) -> bool:
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    msg = ForwardMsg()
    try:
        msg.ParseFromString(payload)
    except Exception:  # noqa: BLE001 - not a ForwardMsg
        return False
    return msg.WhichOneof("type") == "new_session"


@pytest.fixture(scope="module")
def stored_server(replica_max_g5: Replica, tmp_path_factory) -> Iterator[Server]:
    """The app with conversations stored in a temporary SQLite file, so ``?chat=<id>``
    reopens one after a reload."""
    db = Path(tmp_path_factory.mktemp("render-db")) / "chats.db"
    env = app_env(bed.space_urls([replica_max_g5]))
    env.update(QWEN_CHAT_DB=f"sqlite:///{db}", QWEN_CHAT_HISTORY="on")
    log = ARTIFACTS / "streamlit-render-equivalence.log"
    process, url = start_streamlit(REPO, sys.executable, env, log)
    try:
        yield Server(url, process, {"max": replica_max_g5}, log)
    finally:
        stop_process(process)


@pytest.fixture
def fresh(browser, stored_server: Server) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        context.close()


def wait_for(page: Page, condition, timeout: float, what: str | Callable[[], str]) -> None:
    """Wait while letting Playwright dispatch events (the websocket relay runs then)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for "
                                 + (what if isinstance(what, str) else what()))
        page.wait_for_timeout(25)


def ask_and_capture(page: Page, gate: HoldRerun) -> tuple[str, str] | None:
    """Ask ``QUERY``; return the live answer's outline and text as they stand once the
    whole answer has been sent and drawn (the final rerun held back meanwhile), then let
    the rerun through and wait until the page is idle. None: the streaming run's last
    deltas never reached the browser (see :attr:`HoldRerun.truncated`)."""
    box = page.get_by_test_id("stChatInputTextArea")
    expect(box).to_be_enabled(timeout=60_000)
    page.evaluate(WATCH_LIVE_JS)
    gate.arm()
    box.fill(QUERY)
    box.press("Enter")
    try:
        wait_for(page, lambda: gate.holding or gate.truncated, 60,
                 "the answer's end and the final rerun")
        if gate.truncated:
            live = None
        else:
            # the whole answer drawn (lazily loaded renderers, such as the syntax
            # highlighter and KaTeX, may take seconds on a fresh page), and nothing
            # changed in it for a second
            wait_for(page, lambda: LAST_LINE in page.evaluate("window.__liveText"), 30,
                     lambda: "the live answer to show the answer's last text, which the "
                     "server sent; it ends with " + repr(page.evaluate(
                         "window.__liveText.slice(-300)")))
            wait_for(page, lambda: page.evaluate(
                "performance.now() - window.__liveAt > 1000"), 30,
                "the live answer to settle")
            live = page.evaluate("[window.__live, window.__liveText]")
    finally:
        gate.release()
    page.wait_for_function(IDLE_JS, timeout=60_000, polling=100)
    if live is None:
        return None
    outline, text = live
    assert outline, "the live answer (.st-key-answer-live) was never seen"
    assert LAST_LINE in text, (
        f"the live answer does not show the whole answer, although the server sent it; "
        f"its text ends with {text[-200:]!r}")
    return outline, text


def stored_outlines(page: Page) -> list[str]:
    """Outlines of every stored answer on the page, once the last one is drawn whole."""
    answers = page.locator("[class*=st-key-answer-]")
    expect(answers.last).to_contain_text(LAST_LINE, timeout=30_000)
    assert page.locator(".st-key-answer-live").count() == 0
    page.wait_for_timeout(1000)  # let lazily loaded renderers draw
    return answers.evaluate_all("(els) => els.map((el) => window.__outline(el))")


def save(name: str, outline: str) -> None:
    (ARTIFACTS / f"render-{name}.outline.txt").write_text(outline + "\n", encoding="utf-8")


def differences(name_a: str, a: str, name_b: str, b: str) -> str:
    return "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(), name_a, name_b,
                                          lineterm="", n=2))


ATTEMPTS = 5


def test_a_streamed_answer_looks_exactly_as_the_stored_one_and_after_a_reload(
    fresh: Page, stored_server: Server
):
    """Answers on one page until two streamed whole (the first on a fresh page, while
    Streamlit loads its code highlighter and KaTeX lazily): each live answer's last state
    equals the stored answer after the rerun and after a reload. A streaming run whose
    last deltas never reached the browser (Streamlit dropped them when the final rerun
    started; reported, not compared) is asked again, up to ATTEMPTS times."""
    page = fresh
    page.add_init_script(OUTLINE_JS)
    gate = HoldRerun(page, LAST_LINE)
    page.goto(stored_server.url + "/?model=qwen-2.5-max")

    lives: dict[int, str] = {}  # answer index (1-based) -> live outline
    truncated = 0
    for turn in range(1, ATTEMPTS + 1):
        captured = ask_and_capture(page, gate)
        after_rerun = stored_outlines(page)
        assert len(after_rerun) == turn
        if captured is None:
            truncated += 1
            continue
        live = captured[0]
        lives[turn] = live
        save(f"live-{turn}", live)
        save(f"rerun-{turn}", after_rerun[-1])
        assert live == after_rerun[-1], f"answer {turn}:\n" + differences(
            "streamed (live)", live, "stored (after the final rerun)", after_rerun[-1])
        if len(lives) == 2:
            break
    print(f"{truncated} of {turn} streams lost their last deltas to the final rerun")
    assert len(lives) == 2, (
        f"{truncated} of {ATTEMPTS} streaming runs ended without sending the answer's last "
        "deltas to the browser (Streamlit clears a session's unsent messages when the "
        "page's final rerun starts)")
    assert len(set(lives.values())) == 1

    assert "chat=" in page.url, page.url
    page.reload()
    expect(page.get_by_test_id("stChatInputTextArea")).to_be_enabled(timeout=60_000)
    after_reload = stored_outlines(page)
    assert len(after_reload) == turn
    for index, live in lives.items():
        save(f"reload-{index}", after_reload[index - 1])
        assert after_reload[index - 1] == live, f"answer {index}:\n" + differences(
            "streamed (live)", live, "after a reload", after_reload[index - 1])
    page.screenshot(path=str(ARTIFACTS / "render-reloaded.png"), full_page=True)

    # and what is shown is right: raw HTML as text, never as elements; math rendered
    answer = page.locator("[class*=st-key-answer-]").last
    text = answer.inner_text()
    assert "<b>not bold</b>" in text and "<script>alert(1)</script>" in text
    assert "<div>a div block</div>" in text
    assert answer.locator("b, script, img").count() == 0
    assert answer.locator(".katex").count() >= 4  # \\(x^2\\), $a+b$, \\[…\\], $$…$$
    assert "你好，世界" in text and "👍🏽" in text and "👨\u200d👩\u200d👧" in text
    assert answer.locator("table").count() == 1 and answer.locator("blockquote").count() == 1
    assert answer.locator("pre").count() == 2
    assert not any("(hidden)" in live for live in lives.values())
    assert page.dialogs == []  # type: ignore[attr-defined]
    assert script.expected_answer(QUERY, system="").endswith(LAST_LINE)
