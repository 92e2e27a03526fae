"""Goal 4: the Streamlit UI with a 20,000-token answer streamed as fast as the replica can.

``streamlit run streamlit_app.py`` (headless, 127.0.0.1, env ``QWEN_SPACE_URLS`` → the
replica, ``QWEN_OFFLINE=1``) is driven by Playwright's Chromium. A fresh page asks
``script:long:20000``; the page itself records (``performance.now()``) the Enter key
press and the first animation frame after the last token (``w19999``) is in the answer's
DOM. Every websocket frame the browser receives from Streamlit (each a ForwardMsg: one
delta or a script event) is counted from the key press until the page is idle again
(the app's final rerun included). The stream's own duration is ``qwen_core.stream_chat``
reading the same answer directly, in this process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .common import MODEL, ROOT, Replicas, median, pin_self, run_client
from .report import Row, Section, sec, x

TOKENS = 20_000
QUERY = f"script:long:{TOKENS}"
LAST = f"w{TOKENS - 1}"
SPACE_ID = "Qwen/Qwen2.5-Max-Demo"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
FLUSH = 0.05  # the app's coalescing interval (chat_state.Coalescer)
CONSTANT = 60  # frames allowed beyond duration / 50 ms: page events, the final rerun

WATCH = """(last) => {
  window.__press = null; window.__done = null;
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && window.__press === null) window.__press = performance.now();
  }, true);
  const check = () => {
    if (window.__press === null || window.__done !== null) return;
    const msgs = document.querySelectorAll('[data-testid="stChatMessage"]');
    const answer = msgs[msgs.length - 1];
    if (answer && answer.textContent.includes(last)) {
      observer.disconnect();
      requestAnimationFrame(() => { window.__done = performance.now(); });
    }
  };
  const observer = new MutationObserver(check);
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def streamlit_app(replica_url: str, app_dir: Path = ROOT):
    """``streamlit run streamlit_app.py`` from ``app_dir`` on a free loopback port."""
    port = _free_port()
    env = {
        **os.environ, "QWEN_SPACE_URLS": f"{SPACE_ID}={replica_url}", "QWEN_OFFLINE": "1",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
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
                if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
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
def _all_cores():
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


def _kinds(frames: list[bytes]) -> dict[str, int]:
    """Count Streamlit's ForwardMsgs by kind: ``markdown`` (element updates carrying
    markdown: the streamed answer), ``delta`` (every element delta), ``all``."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    counts = {"markdown": 0, "delta": 0, "all": len(frames)}
    for payload in frames:
        msg = ForwardMsg()
        try:
            msg.ParseFromString(payload)
        except Exception:  # not a ForwardMsg: counted in "all" only
            continue
        if msg.WhichOneof("type") != "delta":
            continue
        counts["delta"] += 1
        delta = msg.delta
        if delta.WhichOneof("type") == "new_element" and (
            delta.new_element.WhichOneof("type") == "markdown"
        ):
            counts["markdown"] += 1
    return counts


def _ask(browser, app_url: str, query: str, last: str) -> tuple[float, dict[str, int], int]:
    """One fresh page asks ``query``; (seconds to ``last`` visible, message counts by
    kind, bytes received)."""
    page = browser.new_page()
    frames: list[bytes] = []
    counting = [False]

    def on_ws(ws) -> None:
        def got(payload) -> None:
            if counting[0]:
                frames.append(payload if isinstance(payload, bytes) else payload.encode())
        ws.on("framereceived", got)

    page.on("websocket", on_ws)
    try:
        page.goto(f"{app_url}/?model={MODEL}")
        box = page.locator('[data-testid="stChatInputTextArea"]')
        box.wait_for(timeout=60_000)
        page.wait_for_timeout(1000)  # let the first run settle
        page.evaluate(WATCH, last)
        box.fill(query)
        counting[0] = True
        box.press("Enter")
        page.wait_for_function("window.__done !== null", timeout=300_000, polling=100)
        elapsed = page.evaluate("(window.__done - window.__press) / 1000")
        # idle again: the final rerun has drawn the stored answer and the input is back
        page.wait_for_function(
            """() => !document.querySelector('[data-testid="stChatInput"] button[kind*="stop"],'
               + '[data-testid="stChatInputStopButton"]')""",
            timeout=60_000, polling=100,
        )
        page.wait_for_timeout(700)
        counting[0] = False
        return float(elapsed), _kinds(frames), sum(len(f) for f in frames)
    finally:
        page.close()


def measure(replicas: Replicas, rounds: int) -> Section:
    from playwright.sync_api import sync_playwright

    url = replicas.url(1)
    section = Section("ui")
    direct = []
    run_client("qwen_core", url, "script:long:200")
    for _ in range(rounds):
        run = run_client("qwen_core", url, QUERY)
        if run.text != "".join(f"w{i} " for i in range(TOKENS)):
            raise AssertionError("ui: qwen_core got a wrong answer")
        direct.append(run.wall)
    results = []
    with streamlit_app(url) as app_url, _all_cores(), sync_playwright() as pw:
        # the browser stands for the visitor's own machine: free to use every core
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pin_self()
        try:
            _ask(browser, app_url, "script:long:50", "w49")  # warm-up: imports, first run
            for _ in range(rounds):
                results.append(_ask(browser, app_url, QUERY, LAST))
        finally:
            browser.close()
    stream = median(direct)
    shown = median(r[0] for r in results)
    deltas = median(r[1]["delta"] for r in results)
    markdown = median(r[1]["markdown"] for r in results)
    frames = median(r[1]["all"] for r in results)
    nbytes = median(r[2] for r in results)
    bound = shown / FLUSH + CONSTANT
    section.rows.append(Row(
        f"UI: deltas Streamlit sends the browser, {TOKENS:,}-token answer",
        f"{deltas:.0f} deltas ({markdown:.0f} markdown; {frames:.0f} messages, "
        f"{nbytes / 1e6:.1f} MB)", "—", "—",
        f"{deltas / TOKENS:.3f} per token · bound {bound:.0f}",
        f"≤ duration/50 ms + {CONSTANT} (not ∝ tokens)", deltas <= bound,
    ))
    section.rows.append(Row(
        "UI: Enter → whole answer visible vs the stream alone",
        sec(shown), f"stream alone (qwen_core): {sec(stream)}", "—", x(shown / stream),
        "≤ 1.5x the stream's duration", shown / stream <= 1.5,
    ))
    section.notes.append(
        "Streamlit runs on the client core; Chromium (the visitor's browser) on any core. "
        f"{rounds} rounds, fresh page each; UI times (s) "
        + ", ".join(f"{r[0]:.2f}" for r in results) + "; messages by kind "
        + ", ".join(str(r[1]) for r in results) + "; direct stream (s) "
        + ", ".join(f"{d:.2f}" for d in direct)
        + ". Websocket messages (ForwardMsgs) are counted from Enter until the page is idle "
        "(final rerun included); deltas = element updates, markdown = those carrying "
        "markdown (the streamed answer's redraws)."
    )
    return section


if __name__ == "__main__":  # python -m bench.ui URL: one quick round against a replica
    sys.path.insert(0, str(Path(ROOT)))
    out = measure(Replicas(sys.argv[1]), 1)
    for row in out.rows:
        print(row)
    print(out.notes)
