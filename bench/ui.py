"""Goal 4: the Streamlit UI, measured in Chromium against the Max Gradio 6 replica.

``streamlit run streamlit_app.py`` (headless, 127.0.0.1, ``QWEN_SPACE_URLS`` → the
replica, ``QWEN_OFFLINE=1``, conversations in a temporary SQLite file) is driven by
Playwright's Chromium, a fresh browser context (a new visitor) per question. The page
records with ``performance.now()`` the Enter key press, the first DOM change that puts
answer text in the live answer (``.st-key-answer-live``), every later DOM change inside
it, and the one that shows the answer's last token (in the live answer, or only in the
stored answer when the page's final rerun came first). Every websocket frame the browser
receives from Streamlit (each a ForwardMsg) is counted from Enter until the page is idle
again (the final rerun included) and split by script run: the run started by Enter until
its first answer delta (the page redrawn), the stream, and the final rerun.

Sections (``python -m bench --only ui --ui-sections ...``):

- ``bytes``: 20,000- and 5,000-token answers as fast as the replica streams, realistic
  Markdown (``script:markdown:N``: paragraphs, headings, lists, code fences, tables) and
  one paragraph (``script:long:N``, which cannot be cut into blocks), and a 1,000-token
  Markdown answer at a model's pace (25 ms per token): bytes to the browser vs the
  answer's n characters (goal ≤ 3n + 100 KB, for Markdown), the longest gap between
  answer updates on screen from the first token to the last (goal ≤ 100 ms), and
  Enter → whole answer visible vs the stream read directly by qwen_core (goal ≤ 1.5x).
- ``ttft``: Enter → first answer text visible vs qwen_core's own first-token time for the
  same request (goal ≤ +150 ms), on an empty chat.
- ``history``: 100 earlier turns (~300 KB, imported as a JSON file through the sidebar
  uploader): the first-token time again, the bytes of a rerun (default view: the last 100
  messages; and with all 200 shown; goal < 1.5x the history's size) and the stream's
  bytes vs the same answer on an empty chat (goal: no growth, ≤ 1.2x).
- ``compare``: compare mode, Qwen2.5-Max (this replica) beside Qwen3-235B-A22B (the
  Qwen3 Gradio 5 replica), both answering ``script:markdown:1500:3:4`` at a model's pace:
  Enter → both answers stored and shown, vs each model asked alone on the same page
  (goal: ≤ 1.2x the slower alone), and the websocket frames of the comparison (goal:
  ≤ duration / 50 ms + 60: both columns' writes coalesced together).
- ``concurrent``: five browser sessions send ``script:markdown:5000:SEED`` at once to
  one app server (replica with concurrency 5): each must show its whole answer within
  1.5x its stream's own duration (the replica's generation log: start → end).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .common import MODEL, ROOT, SYSTEM, Replicas, median, pin_pid, pin_self, run_client
from .report import Row, Section, ms, sec, x

SPACE_ID = "Qwen/Qwen2.5-Max-Demo"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [  # as tests/browser/conftest.py
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SECTIONS = ("bytes", "ttft", "history", "concurrent", "compare")
# (query, label); the goals apply to the Markdown answers; one paragraph cannot be cut
BYTES_ANSWERS = (
    ("script:markdown:20000", "realistic Markdown"),
    ("script:markdown:5000", "realistic Markdown"),
    ("script:markdown:1000:0:25", "realistic Markdown at a model's pace, 25 ms/token"),
    ("script:long:20000", "one paragraph, no block boundary"),
    ("script:long:5000", "one paragraph, no block boundary"),
)
TTFT_QUERY = "script:long:200"
HISTORY_TURNS = 100
SESSIONS = 5
KB = 1000

# the 2026-11-22 run (old coalescer: it backed off as the answer grew, and the whole
# answer was one element re-sent per flush), script:long:20000
OLD_RUN = "2026-11-22"
OLD = {"deltas": 188, "markdown": 140, "messages": 198, "bytes": 4.3e6, "shown": 20.39,
       "stream": 19.00}

# Installed once per page; window.__uiArm(last) resets it before a question.
WATCH = """() => {
  window.__uiArm = (want) => { window.__ui = {want, press: null, first: null,
    firstPaint: null, last: null, lastPaint: null, lastInLive: null, prevMut: null,
    maxGap: 0, gapAt: null, updates: 0, tailGap: null, pressEpoch: null, liveAt: null};
  };
  window.__uiArm(null);
  document.addEventListener('keydown', (e) => {
    const s = window.__ui;
    if (e.key === 'Enter' && s.want !== null && s.press === null) {
      s.press = performance.now(); s.pressEpoch = performance.timeOrigin + s.press;
    }
  }, true);
  const paint = (key) => requestAnimationFrame(() => {
    window.__ui[key] = performance.now();
  });
  new MutationObserver((mutations) => {
    const s = window.__ui;
    if (s.press === null || s.last !== null) return;
    const now = performance.now();
    const live = document.querySelector('.st-key-answer-live');
    if (live) {
      if (s.liveAt === null) s.liveAt = now;  // the run has reached the answer
      if (s.first === null) {
        if (live.textContent.trim() === '') return;
        s.first = now; paint('firstPaint');
      } else {
        const inside = mutations.some((m) => live.contains(m.target)
          || [...m.addedNodes].some((n) => n === live || (n.contains && n.contains(live))));
        if (!inside) return;
        const gap = now - s.prevMut;
        if (gap > s.maxGap) { s.maxGap = gap; s.gapAt = s.prevMut - s.first; }
      }
      s.prevMut = now; s.updates += 1;
      const tail = live.lastElementChild;
      if (tail && tail.textContent.includes(s.want)) {
        s.last = now; s.lastInLive = true; s.lastEpoch = performance.timeOrigin + now;
        paint('lastPaint');
      }
      return;
    }
    if (s.first === null) return;
    // the live answer is gone: the final rerun drew the stored answer before the
    // stream's last deltas reached the page (Streamlit drops a run's unsent deltas
    // when the next run starts)
    const msgs = document.querySelectorAll('[data-testid="stChatMessage"]');
    const msg = msgs[msgs.length - 1];
    if (msg && msg.textContent.includes(s.want)) {
      s.last = now; s.lastInLive = false; s.tailGap = now - s.prevMut;
      s.lastEpoch = performance.timeOrigin + now; paint('lastPaint');
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""

IDLE = """() => window.__ui.last !== null && window.__ui.lastPaint !== null
  && !document.querySelector('.st-key-answer-live')
  && !document.querySelector('[data-testid="stChatInputStopButton"]')
  && document.querySelector('.st-key-regenerate') !== null"""


# --- the app ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def streamlit_app(replica_url: str, app_dir: Path = ROOT,
                  more_spaces: dict[str, str] | None = None) -> Iterator[str]:
    """``streamlit run streamlit_app.py`` from ``app_dir`` on a free loopback port, its
    conversations in a temporary SQLite file; the Max Space at ``replica_url`` (and
    ``more_spaces``: Space id -> URL)."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        env = {
            **os.environ, "QWEN_SPACE_URLS": ",".join(
                f"{k}={v}" for k, v in {SPACE_ID: replica_url, **(more_spaces or {})}.items()),
            "QWEN_OFFLINE": "1", "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
            "QWEN_CHAT_DB": f"sqlite:///{tmp}/chats.db", "QWEN_CHAT_HISTORY": "on",
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                        os.environ.get("PYTHONPATH")])),
        }
        env.pop("HF_TOKEN", None)
        log = open(ROOT / "bench" / "results" / "streamlit.log.tmp", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
             "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none", "--server.runOnSave", "false"],
            cwd=str(app_dir), env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError("streamlit exited; see bench/results/streamlit.log.tmp")
                try:
                    if httpx.get(f"{url}/_stcore/health", timeout=1,
                                 trust_env=False).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("streamlit did not start in 60 s")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            log.close()


@contextlib.contextmanager
def _all_cores() -> Iterator[None]:
    """Let what starts inside (Playwright's driver and Chromium) run on every core."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    try:
        yield
    finally:
        os.sched_setaffinity(0, mine)


# --- websocket frames ---------------------------------------------------------------------

def _parse(payload: bytes) -> Any:
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    msg = ForwardMsg()
    try:
        msg.ParseFromString(payload)
    except Exception:  # noqa: BLE001 - not a ForwardMsg
        return None
    return msg


@dataclass
class Frames:
    """ForwardMsgs by phase: ``page`` = the run started by Enter until its first answer
    delta (the page redrawn), ``stream`` = the rest of that run, ``final`` = the runs
    after it (the final rerun); ``deltas``/``markdown``/``messages`` as the old bench."""

    total: int = 0
    page: int = 0
    stream: int = 0
    final: int = 0
    messages: int = 0
    deltas: int = 0
    markdown: int = 0
    stream_messages: int = 0
    page_messages: int = 0
    largest_stream_message: int = 0
    run_at: float = 0.0  # epoch s the run's first message reached the browser
    stream_at: float = 0.0  # epoch s the first answer delta reached the browser


def _frames(frames: list[tuple[float, bytes]]) -> Frames:
    out = Frames(messages=len(frames))
    runs = 0
    live: tuple[int, ...] | None = None
    streaming = False
    for at, payload in frames:
        if not out.run_at:
            out.run_at = at
        size = len(payload)
        out.total += size
        msg = _parse(payload)
        kind = msg.WhichOneof("type") if msg is not None else None
        if kind == "new_session":
            runs += 1
        elif kind == "delta":
            out.deltas += 1
            delta = msg.delta
            which = delta.WhichOneof("type")
            if which == "new_element" and delta.new_element.WhichOneof("type") == "markdown":
                out.markdown += 1
            path = tuple(msg.metadata.delta_path)
            if which == "add_block" and "answer-live" in delta.add_block.id:
                live = path
            elif runs <= 1 and live is not None and path[:len(live)] == live:
                if not streaming:
                    out.stream_at = at
                streaming = True
        if runs >= 2:
            out.final += size
        elif streaming:
            out.stream += size
            out.stream_messages += 1
            out.largest_stream_message = max(out.largest_stream_message, size)
        else:
            out.page += size
            out.page_messages += 1
    return out


class Recorder:
    """Collects the websocket frames a page receives while ``on``."""

    def __init__(self, page: Any) -> None:
        self.frames: list[tuple[float, bytes]] = []  # (epoch s received, payload)
        self.on = False
        self.finished = 0  # script_finished messages seen while on
        page.on("websocket", self._socket)

    def _socket(self, ws: Any) -> None:
        ws.on("framereceived", self._got)

    def _got(self, payload: bytes | str) -> None:
        if not self.on:
            return
        data = payload if isinstance(payload, bytes) else payload.encode()
        self.frames.append((time.time(), data))
        if len(data) < 200:
            msg = _parse(data)
            if msg is not None and msg.WhichOneof("type") == "script_finished":
                self.finished += 1

    def start(self) -> None:
        self.frames, self.finished, self.on = [], 0, True

    def stop(self) -> list[tuple[float, bytes]]:
        self.on = False
        return self.frames


# --- one question -------------------------------------------------------------------------

@dataclass
class Ask:
    query: str
    n: int  # answer characters
    first: float  # s, Enter → first answer text on screen (DOM change)
    last: float  # s, Enter → last token on screen (next animation frame)
    max_gap: float  # s, longest time without an answer update, first token → last token
    gap_at: float  # s after the first token where that gap started
    updates: int
    last_in_live: bool  # the last token was streamed (else it came with the final rerun)
    tail_gap: float | None  # s from the last live update to the stored answer, if so
    frames: Frames
    press_epoch: float = 0.0
    last_epoch: float = 0.0
    live_at: float = 0.0  # s, Enter → the live answer's container drawn (before the Space)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        return max(self.max_gap, self.tail_gap or 0.0)


def _last_marker(query: str, answer: str) -> str:
    import script

    if query.startswith("script:markdown:"):
        return script.MARKDOWN_END
    return answer.rstrip().rsplit(" ", 1)[-1]


def _open(context: Any, app_url: str, path: str = f"/?model={MODEL}",
          watch: str = WATCH) -> tuple[Any, Recorder]:
    page = context.new_page()
    recorder = Recorder(page)
    page.goto(app_url + path)
    page.locator('[data-testid="stChatInputTextArea"]').wait_for(timeout=60_000)
    page.wait_for_timeout(800)  # let the first run settle
    page.evaluate(watch)
    return page, recorder


def _press(page: Any, recorder: Recorder, query: str, answer: str) -> None:
    box = page.locator('[data-testid="stChatInputTextArea"]')
    box.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stChatInputTextArea\"]').disabled",
        timeout=60_000, polling=100)
    page.evaluate("(want) => window.__uiArm(want)", _last_marker(query, answer))
    box.fill(query)
    recorder.start()
    box.press("Enter")


def _finish(page: Any, recorder: Recorder, query: str, answer: str,
            timeout: float = 600) -> Ask:
    page.wait_for_function(IDLE, timeout=timeout * 1000, polling=100)
    page.wait_for_timeout(700)
    frames = _frames(recorder.stop())
    s = page.evaluate("window.__ui")
    if s["first"] is None:
        raise AssertionError(f"ui: no answer text seen for {query}")
    text = page.evaluate(
        "() => { const m = document.querySelectorAll('[data-testid=\"stChatMessage\"]');"
        " return m[m.length - 1].innerText; }")
    if _last_marker(query, answer) not in text:
        raise AssertionError(f"ui: the stored answer to {query} lacks its last token")
    return Ask(
        query=query, n=len(answer), first=(s["first"] - s["press"]) / 1e3,
        last=(s["lastPaint"] - s["press"]) / 1e3, max_gap=s["maxGap"] / 1e3,
        gap_at=(s["gapAt"] or 0) / 1e3, updates=s["updates"],
        last_in_live=bool(s["lastInLive"]),
        tail_gap=None if s["tailGap"] is None else s["tailGap"] / 1e3, frames=frames,
        press_epoch=s["pressEpoch"] / 1e3, last_epoch=s["lastEpoch"] / 1e3,
        live_at=(s["liveAt"] - s["press"]) / 1e3,
    )


def ask_fresh(browser: Any, app_url: str, query: str, answer: str) -> Ask:
    """A new visitor (fresh context) asks ``query``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page, recorder = _open(context, app_url)
        _press(page, recorder, query, answer)
        return _finish(page, recorder, query, answer)
    finally:
        context.close()


def _expected(query: str, history: list[list[str]] | None = None) -> str:
    import script

    return script.expected_answer(query, system=SYSTEM, history=history or ())


def _direct(url: str, query: str, history: list[dict[str, str]] | None = None
            ) -> tuple[float, float]:
    """qwen_core reading the same request directly: (first token s, whole stream s)."""
    import qwen_core

    messages = [{"role": "system", "content": SYSTEM}, *(history or []),
                {"role": "user", "content": query}]
    t0 = time.perf_counter()
    first = 0.0
    for piece in qwen_core.stream_chat(MODEL, messages, base_url=url):
        if piece and not first:
            first = time.perf_counter() - t0
    return first, time.perf_counter() - t0


# --- history ------------------------------------------------------------------------------

def history_file(directory: Path, turns: int = HISTORY_TURNS) -> tuple[Path, int, int]:
    """A conversation file (the app's JSON export format) with ``turns`` earlier turns of
    realistic Markdown (~3 KB each). Returns (path, characters of all messages,
    characters of the last 100 messages: what the page shows by default)."""
    import script

    messages = []
    for i in range(turns):
        question = (f"Benchmark history turn {i}: " + " ".join(
            script.markdown_tokens(40, seed=1000 + i)[2:]).replace("\n", " "))[:300]
        answer = "".join(script.markdown_tokens(560, seed=i + 1))
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer, "model": MODEL,
                         "reasoning": "", "stopped": False, "error": None})
    doc = {"format": "qwen-spaces-chat", "version": 1, "model": MODEL, "system": SYSTEM,
           "messages": messages}
    path = directory / "history.json"
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    sizes = [len(m["content"].encode()) for m in messages]
    return path, sum(sizes), sum(sizes[-100:])


def _history_messages(path: Path) -> list[dict[str, str]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return [{"role": m["role"], "content": m["content"]} for m in doc["messages"]]


def _rerun_bytes(page: Any, recorder: Recorder, action: Any) -> tuple[int, int]:
    """(bytes, messages) the browser receives for the run ``action`` starts (until its
    script_finished)."""
    recorder.start()
    action()
    deadline = time.monotonic() + 120
    while recorder.finished < 1:
        if time.monotonic() > deadline:
            raise AssertionError("ui: a rerun did not finish in 120 s")
        page.wait_for_timeout(50)
    page.wait_for_timeout(300)
    frames = recorder.stop()
    return sum(len(f) for _, f in frames), len(frames)


def _upload(page: Any, recorder: Recorder, path: Path) -> tuple[int, int]:
    """Import the conversation file through the sidebar uploader; its run's bytes."""
    upload = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    nbytes = _rerun_bytes(page, recorder, lambda: upload.set_input_files(str(path)))
    page.get_by_text("Loaded history.json").wait_for(timeout=60_000)
    page.wait_for_function("() => location.search.includes('chat=')", timeout=30_000)
    return nbytes


def _search(page: Any, text: str) -> Any:
    def run() -> None:
        box = page.get_by_placeholder("Search")
        box.fill(text)
        box.press("Enter")
    return run


# --- sections -----------------------------------------------------------------------------

@dataclass
class Context:
    replicas: Replicas
    rounds: int
    browser: Any = None
    app_url: str = ""
    url: str = ""
    replica: Any = None  # the replica behind ``url`` when we started it (its log)
    notes: list[str] = field(default_factory=list)
    empty_stream: dict[str, list[Ask]] = field(default_factory=dict)


def _bytes_section(ctx: Context, section: Section) -> None:
    details = []
    for query, label in BYTES_ANSWERS:
        kind, tokens = query.split(":")[1], int(query.split(":")[2])
        answer = _expected(query)
        n = len(answer)
        asks: list[Ask] = []
        directs: list[float] = []
        for _ in range(ctx.rounds):
            directs.append(_direct(ctx.url, query)[1])
            asks.append(ask_fresh(ctx.browser, ctx.app_url, query, answer))
        ctx.empty_stream[query] = asks
        nbytes = median(a.frames.total for a in asks)
        bound = 3 * n + 100 * KB
        markdown = kind == "markdown"
        # the bytes goal is for answers as fast as the Space streams them (20,000
        # and 5,000 tokens); at a model's pace more flushes carry less each (info)
        paced = query.count(":") == 4
        section.rows.append(Row(
            f"UI: bytes to the browser, Enter → idle, {tokens:,}-token `{query}` "
            f"({label}, n = {n:,} chars)",
            f"{nbytes / 1e6:.2f} MB ({median(a.frames.deltas for a in asks):.0f} deltas, "
            f"{median(a.frames.markdown for a in asks):.0f} markdown; "
            f"{median(a.frames.messages for a in asks):.0f} messages)",
            "—", "—",
            f"{nbytes / n:.2f} bytes/char · bound {bound / 1e6:.2f} MB · stream "
            f"{median(a.frames.stream for a in asks) / 1e6:.2f} MB, final rerun "
            f"{median(a.frames.final for a in asks) / 1e6:.2f} MB",
            "≤ 3n + 100 KB" if markdown and not paced else
            "≤ 3n + 100 KB (info: at a model's pace)" if markdown else
            "≤ 3n + 100 KB (info: cannot be cut)",
            nbytes <= bound if markdown and not paced else None,
        ))
        gap = median(a.gap for a in asks)
        worst = max(asks, key=lambda a: a.gap)
        dropped = sum(not a.last_in_live for a in asks)
        section.rows.append(Row(
            f"UI: longest time without an answer update on screen, first token → last, "
            f"`{query}`",
            f"{ms(gap)} (worst {ms(worst.gap)}, {worst.updates} updates)", "—", "—",
            f"last token came with the final rerun in {dropped}/{len(asks)}",
            "≤ 100 ms" if markdown else "≤ 100 ms (info)",
            gap <= 0.1 if markdown else None,
        ))
        if tokens == 20_000 or query.count(":") == 4:
            shown = median(a.last for a in asks)
            stream = median(directs)
            section.rows.append(Row(
                f"UI: Enter → whole answer visible vs the stream alone, `{query}`",
                sec(shown), f"stream alone (qwen_core): {sec(stream)}", "—",
                x(shown / stream), "≤ 1.5x the stream's duration", shown / stream <= 1.5,
            ))
        details.append(
            f"`{query}`: UI last token (s) " + ", ".join(f"{a.last:.2f}" for a in asks)
            + "; direct (s) " + ", ".join(f"{d:.2f}" for d in directs)
            + "; bytes (page / stream / final rerun, KB) "
            + ", ".join(f"{a.frames.page / KB:.0f} / {a.frames.stream / KB:.0f} / "
                        f"{a.frames.final / KB:.0f}" for a in asks)
            + "; max gap (ms, at s after first token) "
            + ", ".join(f"{a.max_gap * 1e3:.0f} at {a.gap_at:.1f}"
                        + (f" + tail {a.tail_gap * 1e3:.0f}" if a.tail_gap else "")
                        for a in asks)
            + "; largest stream message (KB) "
            + ", ".join(f"{a.frames.largest_stream_message / KB:.1f}" for a in asks)
        )
    section.rows.insert(0, Row(
        f"UI (old coalescer, {OLD_RUN} run): deltas Streamlit sends the browser, "
        "20,000-token `script:long:20000`",
        f"{OLD['deltas']} deltas ({OLD['markdown']} markdown; {OLD['messages']} messages, "
        f"{OLD['bytes'] / 1e6:.1f} MB)", "—", "—", "0.009 per token",
        "kept for comparison", None,
    ))
    section.rows.insert(1, Row(
        f"UI (old coalescer, {OLD_RUN} run): Enter → whole answer visible vs the stream "
        "alone, `script:long:20000`",
        sec(OLD["shown"]), f"stream alone (qwen_core): {sec(OLD['stream'])}", "—",
        x(OLD["shown"] / OLD["stream"]), "kept for comparison", None,
    ))
    ctx.notes.append("bytes: " + " | ".join(details))


def _ttft_row(section: Section, label: str, ui: list[float], direct: list[float]) -> None:
    shown, first = median(ui), median(direct)
    section.rows.append(Row(
        f"UI: Enter → first answer text visible, {label}", ms(shown),
        f"qwen_core first token: {ms(first)}", "—", f"+{(shown - first) * 1e3:.0f} ms",
        "≤ qwen_core's + 150 ms", shown <= first + 0.150,
    ))


def _breakdown(asks: list[Ask], replica: Any) -> str:
    """Where Enter → first text goes (medians, ms after Enter, one clock): the run's first
    message reaches the browser, the Space starts the job and generates the first token
    (replica log), the first answer delta reaches the browser, the text is on screen."""
    parts = [("run's first message in the browser",
              [a.frames.run_at - a.press_epoch for a in asks])]
    if replica is not None:
        events = replica.events()
        starts, tokens = [], []
        for a in asks:
            start = next((e for e in events if e["event"] == "start" and e["query"] == a.query
                          and e["t"] >= a.press_epoch), None)
            token = start and next((e for e in events if e["event"] == "token"
                                    and e.get("index") == 0 and e["t"] >= start["t"]
                                    and e.get("session") == start.get("session")), None)
            if start and token:
                starts.append(start["t"] - a.press_epoch)
                tokens.append(token["t"] - a.press_epoch)
        if starts:
            parts += [("Space job started", starts), ("first token generated", tokens)]
    parts += [("first answer delta in the browser",
               [a.frames.stream_at - a.press_epoch for a in asks]),
              ("on screen", [a.first for a in asks])]
    return "Enter → " + " → ".join(f"{name} {median(v) * 1e3:.0f} ms" for name, v in parts)


def _ttft_section(ctx: Context, section: Section) -> None:
    answer = _expected(TTFT_QUERY)
    rounds = max(3, ctx.rounds * 3)
    asks, direct = [], []
    for _ in range(rounds):
        direct.append(_direct(ctx.url, TTFT_QUERY)[0])
        asks.append(ask_fresh(ctx.browser, ctx.app_url, TTFT_QUERY, answer))
    ui = [a.first for a in asks]
    _ttft_row(section, f"empty chat (`{TTFT_QUERY}`)", ui, direct)
    ctx.notes.append("ttft (empty chat): UI (ms) " + ", ".join(f"{v * 1e3:.0f}" for v in ui)
                     + "; qwen_core (ms) " + ", ".join(f"{v * 1e3:.0f}" for v in direct)
                     + "; " + _breakdown(asks, ctx.replica) + ".")


def _history_section(ctx: Context, section: Section) -> None:
    query = "script:markdown:5000"
    answer = _expected(query)
    with tempfile.TemporaryDirectory(prefix="bench-ui-history-") as tmp:
        path, whole, shown_size = history_file(Path(tmp))
        history = _history_messages(path)
        direct_first, direct_stream, upload, default, everything = [], [], [], [], []
        first_asks: list[Ask] = []
        streams: list[Ask] = []
        for _ in range(ctx.rounds):
            context = ctx.browser.new_context(viewport={"width": 1280, "height": 900})
            try:
                page, recorder = _open(context, ctx.app_url)
                upload.append(_upload(page, recorder, path))
                default.append(_rerun_bytes(page, recorder, _search(page, "Benchmark")))
                default.append(_rerun_bytes(page, recorder, _search(page, "")))
                ttft_answer = _expected(TTFT_QUERY)
                for _ in range(2):
                    direct_first.append(_direct(ctx.url, TTFT_QUERY, history)[0])
                    _press(page, recorder, TTFT_QUERY, ttft_answer)
                    first_asks.append(_finish(page, recorder, TTFT_QUERY, ttft_answer))
                direct_stream.append(_direct(ctx.url, query, history)[1])
                _press(page, recorder, query, answer)
                streams.append(_finish(page, recorder, query, answer))
                show = page.get_by_role("button", name="earlier messages")
                everything.append(_rerun_bytes(page, recorder, show.click))
                everything.append(_rerun_bytes(page, recorder, _search(page, "Benchmark")))
            finally:
                context.close()
    ui_first = [a.first for a in first_asks]
    # what a rerun showing everything sends beyond the history's text, per message
    overhead = median((b - whole) / m for b, m in everything)
    _ttft_row(section, f"{HISTORY_TURNS} earlier turns, ~{whole / 1e3:.0f} KB (`{TTFT_QUERY}`)",
              ui_first, direct_first)
    section.rows.append(Row(
        f"UI: bytes per rerun, {HISTORY_TURNS} earlier turns ({whole / 1e3:.0f} KB of text; "
        f"default view shows the last 100 messages, {shown_size / 1e3:.0f} KB)",
        f"{median(b for b, _ in default) / 1e3:.0f} KB", "—", "—",
        f"{median(b for b, _ in default) / shown_size:.2f}x the text shown · "
        f"{median(b for b, _ in default) / whole:.2f}x the whole history",
        "report", None,
    ))
    section.rows.append(Row(
        f"UI: bytes per rerun, {HISTORY_TURNS} earlier turns, all {2 * HISTORY_TURNS}+ "
        "messages shown",
        f"{median(b for b, _ in everything) / 1e3:.0f} KB", "—", "—",
        f"{median(b for b, _ in everything) / whole:.2f}x the history's "
        f"{whole / 1e3:.0f} KB · {overhead:.0f} B per message beyond the text",
        "< 1.5x the history's size", median(b for b, _ in everything) < 1.5 * whole,
    ))
    empty = ctx.empty_stream.get(query) or [ask_fresh(ctx.browser, ctx.app_url, query, answer)
                                            for _ in range(ctx.rounds)]
    def kb(runs: list[tuple[int, int]]) -> str:
        return ", ".join(f"{b / 1e3:.0f} ({m} messages)" for b, m in runs)

    def per_message(asks: list[Ask]) -> float:
        return median(a.frames.stream / max(1, a.frames.stream_messages) for a in asks)

    with_history, without = per_message(streams), per_message(empty)
    section.rows.append(Row(
        f"UI: bytes per message while a 5,000-token answer streams, {HISTORY_TURNS} earlier "
        "turns vs none",
        f"{with_history:.0f} B vs {without:.0f} B", "—", "—",
        f"{with_history / without:.2f}x · largest message "
        f"{max(a.frames.largest_stream_message for a in streams) / 1e3:.1f} KB · whole "
        f"stream {median(a.frames.stream for a in streams) / 1e3:.0f} KB vs "
        f"{median(a.frames.stream for a in empty) / 1e3:.0f} KB in "
        f"{median(a.last - a.first for a in streams):.1f} s vs "
        f"{median(a.last - a.first for a in empty):.1f} s",
        "no growth (≤ 1.2x)", with_history <= 1.2 * without,
    ))
    ctx.notes.append(
        f"history: file of {HISTORY_TURNS} turns ({whole:,} chars of text) imported "
        "through the sidebar uploader, one fresh visitor per round; upload run (KB) "
        + kb(upload) + "; reruns, default view (KB) " + kb(default)
        + "; reruns, all shown (KB) " + kb(everything)
        + "; first token (ms) UI " + ", ".join(f"{v * 1e3:.0f}" for v in ui_first)
        + " vs qwen_core " + ", ".join(f"{v * 1e3:.0f}" for v in direct_first)
        + " (" + _breakdown(first_asks, ctx.replica) + ")"
        + "; the question's own run redraws the history before streaming (page part, KB) "
        + ", ".join(f"{a.frames.page / 1e3:.0f} ({a.frames.page_messages} messages)"
                    for a in streams)
        + f"; `{query}` read directly with this history (s) "
        + ", ".join(f"{d:.2f}" for d in direct_stream)
    )


def _at_once(url: str, queries: list[str]) -> list[float]:
    """qwen_core reading ``queries`` directly, all at once (threads): each stream's wall."""
    walls = [0.0] * len(queries)

    def read(i: int) -> None:
        walls[i] = _direct(url, queries[i])[1]

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(queries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return walls


def _concurrent_section(ctx: Context, section: Section, app_url: str, url: str,
                        replica: Any) -> None:
    import script

    worst: list[float] = []
    medians: list[float] = []
    details = []
    for r in range(ctx.rounds):
        queries = [f"script:markdown:5000:{100 * r + i + 1}" for i in range(SESSIONS)]
        answers = [_expected(q) for q in queries]
        walls = _at_once(url, queries)  # the streams alone, five at once, for reference
        contexts = [ctx.browser.new_context(viewport={"width": 1280, "height": 900})
                    for _ in range(SESSIONS)]
        try:
            opened = [_open(c, app_url) for c in contexts]
            for (page, _), q in zip(opened, queries, strict=True):
                page.evaluate("(want) => window.__uiArm(want)", script.MARKDOWN_END)
                page.locator('[data-testid="stChatInputTextArea"]').fill(q)
            for page, recorder in opened:
                recorder.start()
                page.locator('[data-testid="stChatInputTextArea"]').press("Enter")
            asks = [_finish(page, recorder, q, a)
                    for (page, recorder), q, a in zip(opened, queries, answers, strict=True)]
        finally:
            for c in contexts:
                c.close()
        own: list[float] = []
        if replica is not None:
            events = replica.events()
            for q in queries:
                start = next(e["t"] for e in events if e["event"] == "start" and e["query"] == q)
                end = next(e["t"] for e in events if e["event"] == "end" and e["query"] == q)
                own.append(end - start)
        else:
            own = walls
        ratios = [(a.last_epoch - a.press_epoch) / o for a, o in zip(asks, own, strict=True)]
        worst.append(max(ratios))
        medians.append(median(ratios))
        details.append(
            f"round {r + 1}: UI Enter → last token (s) "
            + ", ".join(f"{a.last_epoch - a.press_epoch:.2f}" for a in asks)
            + "; own stream (s, " + ("replica log" if replica is not None else "threads")
            + ") " + ", ".join(f"{o:.2f}" for o in own)
            + "; the five streams alone at once via qwen_core (s) "
            + ", ".join(f"{w:.2f}" for w in walls)
            + "; max gap (ms) " + ", ".join(f"{a.gap * 1e3:.0f}" for a in asks))
    section.rows.append(Row(
        f"UI: {SESSIONS} sessions streaming 5,000-token answers at once, one app server: "
        "Enter → whole answer vs its own stream",
        f"worst {x(max(worst))} (median {x(median(medians))})", "—", "—",
        ", ".join(x(w) for w in worst) + " (worst per round)",
        "each ≤ 1.5x its stream's duration", max(worst) <= 1.5,
    ))
    ctx.notes.append("concurrent: " + " | ".join(details))


COMPARE_QUERY = "script:markdown:1500:3:4"  # ~6 s at a model's pace
COMPARE_WITH = "qwen3-235b-a22b"
QWEN3_SPACE = "Qwen/Qwen3-Demo"
PRESS = """() => { window.__press = null;
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && window.__press === null) window.__press = performance.now();
  }, true); }"""
# the page after the turn: stored answer(s) drawn, no Stop button; returns the time
DONE_ONE = """() => (window.__press !== null && document.querySelector('.st-key-regenerate')
  && !document.querySelector('[data-testid="stChatInputStopButton"]'))
  ? performance.now() : null"""
DONE_TWO = """() => (window.__press !== null
  && document.querySelector('.st-key-continue-left, .st-key-continue-right')
  && !document.querySelector('[data-testid="stChatInputStopButton"]'))
  ? performance.now() : null"""


def _kinds(frames: list[tuple[float, bytes]]) -> dict[str, int]:
    """How many ForwardMsgs of each type (deltas by what they write)."""
    out: dict[str, int] = {}
    for _, payload in frames:
        msg = _parse(payload)
        kind = msg.WhichOneof("type") if msg is not None else "other"
        if kind == "delta":
            kind = "delta." + str(msg.delta.WhichOneof("type"))
        out[kind] = out.get(kind, 0) + 1
    return out


def _timed_turn(browser: Any, app_url: str, path: str, query: str, done: str,
                kinds: dict[str, int] | None = None) -> tuple[float, int, str]:
    """A new visitor opens ``path`` and asks ``query``: (s Enter → ``done``, websocket
    frames received meanwhile and in the next 0.7 s, the last message's text); ``kinds``
    gets the frames counted by type."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page, recorder = _open(context, app_url, path, PRESS)
        box = page.locator('[data-testid="stChatInputTextArea"]')
        box.fill(query)
        recorder.start()
        box.press("Enter")
        end = page.wait_for_function(done, timeout=300_000, polling=20).json_value()
        page.wait_for_timeout(700)
        frames = recorder.stop()
        if kinds is not None:
            kinds.update(_kinds(frames))
        press = page.evaluate("window.__press")
        text = page.evaluate(
            "() => { const m = document.querySelectorAll('[data-testid=\"stChatMessage\"]');"
            " return m[m.length - 1].innerText; }")
        return (end - press) / 1e3, len(frames), text
    finally:
        context.close()


def _compare_section(ctx: Context, section: Section) -> None:
    import script

    from tests.replicas import bed

    qwen3 = bed.start("qwen3_g5")
    try:
        pin_pid(qwen3.pid)
        with streamlit_app(ctx.url, more_spaces={QWEN3_SPACE: qwen3.base_url}) as app_url:
            alone: dict[str, list[float]] = {MODEL: [], COMPARE_WITH: []}
            both: list[float] = []
            frames: list[int] = []
            kinds: dict[str, int] = {}
            _timed_turn(ctx.browser, app_url, f"/?model={MODEL}&compare={COMPARE_WITH}",
                        "script:markdown:200", DONE_TWO)  # warm-up
            for _ in range(ctx.rounds):
                for model in alone:
                    wall, _, text = _timed_turn(ctx.browser, app_url, f"/?model={model}",
                                                COMPARE_QUERY, DONE_ONE)
                    if script.MARKDOWN_END not in text:
                        raise AssertionError(f"ui compare: {model} alone lacks its last token")
                    alone[model].append(wall)
                wall, count, text = _timed_turn(
                    ctx.browser, app_url, f"/?model={MODEL}&compare={COMPARE_WITH}",
                    COMPARE_QUERY, DONE_TWO, kinds)
                if text.count(script.MARKDOWN_END) < 2:
                    raise AssertionError("ui compare: a side lacks its last token")
                both.append(wall)
                frames.append(count)
    finally:
        qwen3.stop()
    slower = max(median(v) for v in alone.values())
    ratio = median(both) / slower
    section.rows.append(Row(
        "UI: compare mode, two answers side by side (Max + Qwen3 replicas) vs the slower "
        "alone, Enter → stored",
        x(ratio), "—", "—",
        f"{sec(median(both))} side by side; alone "
        + ", ".join(f"{m} {sec(median(v))}" for m, v in alone.items()),
        "≤ 1.2x the slower alone", ratio <= 1.2,
    ))
    bound = [w / 0.05 + 60 for w in both]
    section.rows.append(Row(
        "UI: compare mode, websocket frames for both columns (Enter → idle)",
        f"{median(frames):.0f}", "—", "—",
        ", ".join(f"{f} of ≤ {b:.0f}" for f, b in zip(frames, bound, strict=True)),
        "≤ duration / 50 ms + 60",
        all(f <= b for f, b in zip(frames, bound, strict=True)),
    ))
    ctx.notes.append(f"compare: `{COMPARE_QUERY}`; walls side by side (s) "
                     + ", ".join(f"{w:.2f}" for w in both) + "; alone (s) "
                     + "; ".join(f"{m} " + ", ".join(f"{w:.2f}" for w in v)
                                 for m, v in alone.items())
                     + "; frames " + ", ".join(str(f) for f in frames)
                     + " (last round by type: " + ", ".join(
                         f"{k} {v}" for k, v in sorted(kinds.items())) + ")")


def measure(replicas: Replicas, rounds: int, sections: tuple[str, ...] = SECTIONS
            ) -> Section:
    from playwright.sync_api import sync_playwright

    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown ui section(s) {sorted(unknown)}; choose from {SECTIONS}")
    section = Section("ui")
    ctx = Context(replicas, rounds)
    ctx.url = replicas.url(1)
    ctx.replica = getattr(replicas, "_running", {}).get(1)
    run_client("qwen_core", ctx.url, "script:long:200")  # warm qwen_core's config cache
    with _all_cores(), sync_playwright() as pw:
        # the browser stands for the visitor's own machine: free to use every core
        ctx.browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pin_self()  # this process and the app server it starts: the client core
        try:
            if {"bytes", "ttft", "history"} & set(sections):
                with streamlit_app(ctx.url) as app_url:
                    ctx.app_url = app_url
                    ask_fresh(ctx.browser, app_url, "script:markdown:300",
                              _expected("script:markdown:300"))  # warm-up
                    for name in ("bytes", "ttft", "history"):
                        if name in sections:
                            print(f"[bench] ui: {name} …", file=sys.stderr, flush=True)
                            {"bytes": _bytes_section, "ttft": _ttft_section,
                             "history": _history_section}[name](ctx, section)
            if "compare" in sections:
                print("[bench] ui: compare …", file=sys.stderr, flush=True)
                _compare_section(ctx, section)
            if "concurrent" in sections:
                print("[bench] ui: concurrent …", file=sys.stderr, flush=True)
                url = replicas.url(SESSIONS)
                replica = getattr(replicas, "_running", {}).get(SESSIONS)
                with streamlit_app(url) as app_url:
                    ask_fresh(ctx.browser, app_url, "script:markdown:300",
                              _expected("script:markdown:300"))  # warm-up
                    _concurrent_section(ctx, section, app_url, url, replica)
                replicas.stop(SESSIONS)
        finally:
            ctx.browser.close()
    section.notes.append(
        "Streamlit runs on the client core; Chromium (the visitor's browser) on any core; "
        f"{rounds} round(s), a fresh browser context (visitor) per question. "
        "Bytes = websocket frame payloads received from Enter until idle (final rerun "
        "included); page = the run started by Enter until its first answer delta, stream "
        "= the rest of that run, final = the final rerun. Gap = longest time between DOM "
        "changes of the live answer from its first text to its last token, plus, when the "
        "stream's last deltas never arrived (Streamlit drops a run's unsent deltas when the "
        "page's final rerun starts), the time until the stored answer showed the last "
        "token. " + " ".join(ctx.notes)
    )
    return section


if __name__ == "__main__":  # python -m bench.ui URL [SECTION,...]: one quick round
    sys.path.insert(0, str(Path(ROOT)))
    chosen = tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else SECTIONS
    out = measure(Replicas(sys.argv[1]), 1, chosen)
    for row in out.rows:
        print(row)
    print(out.notes)
