"""The OpenAI-compatible API (``qwen_chat/api.py``) side by side with qwen_core itself,
against the same Qwen2.5-Max Gradio 6 replica (started with concurrency 50).

``streamlit run streamlit_app.py`` (headless, 127.0.0.1, ``QWEN_SPACE_URLS`` → the
replica, 64 streams per caller) serves the API; it is pinned to the client core, where
the direct qwen_core client runs too, so the API server stands exactly where qwen_core
would. Three measurements, rounds alternating API and direct:

- **first token, warm**: from sending the request to the first answer text in hand.
  API: ``POST /v1/chat/completions`` with ``stream: true`` over a kept-alive httpx
  connection, SSE lines parsed; direct: ``qwen_core.stream_chat`` with a pooled
  ``httpx.Client``, and ``qwen_core.astream_events`` with a pooled ``httpx.AsyncClient``
  (the path the server itself runs). All have the Space's ``/config`` cached and a warm
  pool: the best each can do. Goal: API ≤ direct (``stream_chat``) + 5 ms, medians. The
  openai SDK's figure is noted.
- **CPU per streamed token**: ``script:long:5000`` (5,000 updates). API: the server
  process's CPU (utime + stime of every thread, ``/proc/<pid>/stat``) over the stream;
  direct: this process's CPU running ``qwen_core.astream_events`` (the same async path
  the server runs) on an event loop. Goal: API ≤ 1.5x direct.
- **50 concurrent API streams**: 50 streams at once from one asyncio client, stream i
  asking ``script:slow:{40+i}:50``; every answer must be exactly its script's. Total time
  vs one API stream of the longest script alone, with the same 50 through
  ``qwen_core.astream_events`` directly beside it. The Gradio replica cannot run 50 such
  jobs at once, whoever asks (each generator step runs in one of Gradio's 40 worker
  threads and sleeps there between tokens), so the goal (≤ 1.5x one stream, 50/50
  exact) is checked against a Space that is not the bottleneck: the asyncio fake Space
  of ``tests/faults/fake_space.py`` (in its own process on the replica's core) serving
  ``fault:slow:{40+i}:50`` to ``qwen-2-72b``, same token count and pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from .common import (
    CLIENT_CORE,
    MODEL,
    ROOT,
    SERVER_CORE,
    SYSTEM,
    Replicas,
    expected,
    median,
    pin_pid,
)
from .report import Row, Section, ms, sec, us, x

SPACE_ID = "Qwen/Qwen2.5-Max-Demo"
TTFT_QUERY = "script:long:20"
CPU_TOKENS = 5_000
STREAMS = 50
N0 = 40
MS = 50
LOG = ROOT / "bench" / "results" / "streamlit-api.log.tmp"
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


FAKE_SPACE_ID = "Qwen/Qwen2-72B-Instruct"
FAKE_MODEL = "qwen-2-72b"


@contextlib.contextmanager
def fake_space() -> Iterator[str]:
    """The asyncio fake Space (``tests/faults/fake_space.py``) in its own process, pinned
    to the replica core; yields its URL."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from tests.faults.fake_space import FakeSpace; space = FakeSpace().start(); "
            "print(space.port, flush=True); sys.stdin.read(); space.stop()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(ROOT)], cwd=str(ROOT),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        pin_pid(proc.pid, SERVER_CORE)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def api_server(replica_url: str, fake_url: str | None = None) -> Iterator[tuple[str, int]]:
    """``streamlit run streamlit_app.py`` serving the API (Qwen2.5-Max → the replica,
    Qwen2-72B → ``fake_url``); yields (URL, PID)."""
    port = _free_port()
    urls = f"{SPACE_ID}={replica_url}" + (f",{FAKE_SPACE_ID}={fake_url}" if fake_url else "")
    env = {**os.environ, "QWEN_SPACE_URLS": urls, "QWEN_OFFLINE": "1",
           "QWEN_CHAT_HISTORY": "off", "QWEN_API_STREAMS_PER_KEY": "64",
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    for name in ("HF_TOKEN", "QWEN_API_KEYS", "QWEN_CORS_ORIGINS"):
        env.pop(name, None)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(LOG, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
             "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none", "--server.runOnSave", "false"],
            cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited; see {LOG}")
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("streamlit did not start in 60 s")
            time.sleep(0.1)
        pin_pid(proc.pid, CLIENT_CORE)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _body(query: str, stream: bool = True, model: str = MODEL) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": query}], "stream": stream}


def api_stream(client: httpx.Client, query: str, model: str = MODEL) -> tuple[float, str]:
    """(seconds to the first answer text, the whole answer) through the API."""
    parts: list[str] = []
    first = 0.0
    t0 = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions",
                       json=_body(query, model=model)) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"]
            text = delta.get("content")
            if text:
                if not parts:
                    first = time.perf_counter() - t0
                parts.append(text)
    return first, "".join(parts)


def direct_stream(client: httpx.Client, url: str, query: str) -> tuple[float, str]:
    import qwen_core

    parts: list[str] = []
    first = 0.0
    t0 = time.perf_counter()
    for text in qwen_core.stream_chat(MODEL, [{"role": "user", "content": query}],
                                      base_url=url, client=client):
        if text and not parts:
            first = time.perf_counter() - t0
        parts.append(text)
    return first, "".join(parts)


def sdk_first(sdk: object, query: str) -> float:
    t0 = time.perf_counter()
    first = 0.0
    stream = sdk.chat.completions.create(  # type: ignore[attr-defined]
        model=MODEL, messages=[{"role": "user", "content": query}], stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and not first:
            first = time.perf_counter() - t0
    return first


async def direct_async(client: httpx.AsyncClient, url: str, query: str) -> tuple[float, str]:
    """(seconds to the first answer text, the answer) through ``astream_events``."""
    import qwen_core

    parts: list[str] = []
    first = 0.0
    t0 = time.perf_counter()
    gen = qwen_core.astream_events(MODEL, [{"role": "user", "content": query}],
                                   base_url=url, client=client)
    async for event in gen:
        if type(event) is qwen_core.events.TextDelta:
            if not parts:
                first = time.perf_counter() - t0
            parts.append(event.text)
    return first, "".join(parts)


async def _direct_async(url: str, query: str) -> str:
    async with httpx.AsyncClient(follow_redirects=True) as client:
        return (await direct_async(client, url, query))[1]


CLIENTS = ("api", "sync", "async")


def _ttft(section: Section, api: httpx.Client, direct: httpx.Client, url: str,
          rounds: int) -> None:
    want = expected(TTFT_QUERY)
    loop = asyncio.new_event_loop()
    aclient = httpx.AsyncClient(timeout=httpx.Timeout(60, connect=10), follow_redirects=True)

    def run(name: str) -> tuple[float, str]:
        if name == "api":
            return api_stream(api, TTFT_QUERY)
        if name == "sync":
            return direct_stream(direct, url, TTFT_QUERY)
        return loop.run_until_complete(direct_async(aclient, url, TTFT_QUERY))

    times: dict[str, list[float]] = {name: [] for name in CLIENTS}
    try:
        for _ in range(3):  # warm: imports, the config cache, the pools
            for name in CLIENTS:
                run(name)
        for r in range(rounds):
            k = r % len(CLIENTS)
            for name in CLIENTS[k:] + CLIENTS[:k]:
                gc.collect()
                first, text = run(name)
                if text != want:
                    raise AssertionError(f"api bench: {name} streamed a wrong answer: "
                                         f"{text[:80]!r}")
                times[name].append(first)
    finally:
        loop.run_until_complete(aclient.aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    med = {k: median(v) for k, v in times.items()}
    over = med["api"] - med["sync"]
    section.rows.append(Row(
        "API: first token, warm (median)", ms(med["api"]),
        f"direct qwen_core: stream_chat {ms(med['sync'])} · astream_events "
        f"{ms(med['async'])}", "—",
        f"API − stream_chat {over * 1e3:+.1f} ms · API − astream_events "
        f"{(med['api'] - med['async']) * 1e3:+.1f} ms",
        "API ≤ direct + 5 ms", over <= 0.005,
    ))
    section.notes.append(
        f"first token: {rounds} rounds of `{TTFT_QUERY}`, each starting with another "
        "client; min–max " + ", ".join(
            f"{name} {ms(min(times[name]))}–{ms(max(times[name]))}" for name in CLIENTS)
        + " (api = through the API; sync = stream_chat; async = astream_events)."
    )


def _sdk_note(section: Section, base: str, rounds: int) -> None:
    import openai

    sdk = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    try:
        sdk_first(sdk, TTFT_QUERY)
        firsts = [sdk_first(sdk, TTFT_QUERY) for _ in range(rounds)]
    finally:
        sdk.close()
    section.notes.append(
        f"first token through the openai SDK (its own client costs included): median "
        f"{ms(median(firsts))} over {rounds} rounds."
    )


def _cpu(section: Section, api: httpx.Client, url: str, pid: int, rounds: int) -> None:
    query = f"script:long:{CPU_TOKENS}"
    want = expected(query)
    api_cpu: list[float] = []
    direct_cpu: list[float] = []
    walls: dict[str, list[float]] = {"api": [], "direct": []}
    asyncio.run(_direct_async(url, "script:long:50"))  # warm
    for r in range(rounds):
        order = ("api", "direct") if r % 2 == 0 else ("direct", "api")
        for name in order:
            gc.collect()
            t0 = time.perf_counter()
            if name == "api":
                before = cpu_seconds(pid)
                _, text = api_stream(api, query)
                api_cpu.append(cpu_seconds(pid) - before)
            else:
                before = time.process_time()
                text = asyncio.run(_direct_async(url, query))
                direct_cpu.append(time.process_time() - before)
            walls[name].append(time.perf_counter() - t0)
            if text != want:
                raise AssertionError(f"api bench: {name} got a wrong {CPU_TOKENS}-token answer")
    per_api = median(api_cpu) / CPU_TOKENS
    per_direct = median(direct_cpu) / CPU_TOKENS
    ratio = per_api / per_direct
    section.rows.append(Row(
        f"API: CPU per streamed token, {CPU_TOKENS:,} tokens (median)", us(per_api),
        f"direct qwen_core (async): {us(per_direct)}", "—", f"API/direct {x(ratio)}",
        "API ≤ 1.5x direct", ratio <= 1.5,
    ))
    section.notes.append(
        f"CPU per token: API = the streamlit server process (every thread, "
        f"/proc/PID/stat, {1000 // TICK} ms ticks), direct = this process running "
        f"astream_events; {rounds} rounds; CPU (s) API "
        + ", ".join(f"{c:.2f}" for c in api_cpu) + "; direct "
        + ", ".join(f"{c:.2f}" for c in direct_cpu) + "; walls (s) API "
        + ", ".join(f"{w:.2f}" for w in walls["api"]) + "; direct "
        + ", ".join(f"{w:.2f}" for w in walls["direct"]) + "."
    )


def _query(i: int, fake: bool = False) -> str:
    return f"fault:slow:{N0 + i}:{MS}" if fake else f"script:slow:{N0 + i}:{MS}"


def _want(i: int, fake: bool = False) -> str:
    return "".join(f"s{k} " for k in range(N0 + i)) if fake else expected(_query(i))


async def _together(base: str, direct_url: str | None = None,
                    fake: bool = False) -> tuple[float, int]:
    """50 streams at once through the API at ``base`` (or, with ``direct_url``, straight
    to that Space with ``astream_events``); ``fake``: to the fake Space. (seconds, exact
    answers)."""
    model = FAKE_MODEL if fake else MODEL
    limits = httpx.Limits(max_connections=STREAMS + 10, max_keepalive_connections=STREAMS)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits,
                                 trust_env=False) as client:

        async def one(i: int, start: asyncio.Event) -> str:
            await start.wait()
            if direct_url is not None:
                return (await direct_async(client, direct_url, _query(i)))[1]
            parts: list[str] = []
            async with client.stream("POST", "/v1/chat/completions",
                                     json=_body(_query(i, fake), model=model)) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        text = json.loads(line[6:])["choices"][0]["delta"].get("content")
                        if text:
                            parts.append(text)
            return "".join(parts)

        start = asyncio.Event()
        tasks = [asyncio.create_task(one(i, start)) for i in range(STREAMS)]
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        start.set()
        answers = await asyncio.gather(*tasks)
        total = time.perf_counter() - t0
    exact = sum(answers[i] == _want(i, fake) for i in range(STREAMS))
    return total, exact


def _concurrency(section: Section, api: httpx.Client, base: str, url: str,
                 rounds: int) -> None:
    longest = _query(STREAMS - 1)
    singles = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        _, text = api_stream(api, longest)
        singles.append(time.perf_counter() - t0)
        if text != expected(longest):
            raise AssertionError("api bench: the single stream got a wrong answer")
    runs, directs = [], []
    for _ in range(rounds):
        runs.append(asyncio.run(_together(base)))
        directs.append(asyncio.run(_together(base, direct_url=url)))
    fake_singles, fakes = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        _, text = api_stream(api, _query(STREAMS - 1, True), model=FAKE_MODEL)
        fake_singles.append(time.perf_counter() - t0)
        if text != _want(STREAMS - 1, True):
            raise AssertionError("api bench: the single fake-Space stream got a wrong answer")
        fakes.append(asyncio.run(_together(base, fake=True)))
    single = median(singles)
    total = median(t for t, _ in runs)
    direct = median(t for t, _ in directs)
    fake_single = median(fake_singles)
    fake_total = median(t for t, _ in fakes)
    exact = min(e for _, e in runs)
    fake_exact = min(e for _, e in fakes)
    section.rows.append(Row(
        f"API: {STREAMS} concurrent streams, Space not the bottleneck (asyncio fake Space)",
        sec(fake_total), f"one API stream alone: {sec(fake_single)}", "—",
        f"{x(fake_total / fake_single)} of one", "≤ 1.5x one stream",
        fake_total / fake_single <= 1.5,
    ))
    section.rows.append(Row(
        f"API: {STREAMS} concurrent streams on the Gradio 6 replica (replica-bound)",
        sec(total), f"one API stream alone: {sec(single)} · {STREAMS} direct "
        f"(astream_events): {sec(direct)}", "—",
        f"API {x(total / single)} of one · direct {x(direct / single)} of one · "
        f"API/direct {x(total / direct)}", "—", None,
    ))
    section.rows.append(Row(
        f"API: {STREAMS} concurrent streams, exact answers",
        f"{exact}/{STREAMS} replica · {fake_exact}/{STREAMS} fake Space",
        f"direct: {min(e for _, e in directs)}/{STREAMS}", "—", "—",
        f"{STREAMS}/{STREAMS}", exact == STREAMS and fake_exact == STREAMS,
    ))
    section.notes.append(
        f"{STREAMS} streams ask `script:slow:{N0}..{N0 + STREAMS - 1}:{MS}` at once (one "
        f"asyncio httpx client) on a replica with concurrency={STREAMS}; {rounds} rounds; "
        "API totals (s) " + ", ".join(f"{t:.2f}" for t, _ in runs) + "; direct totals (s) "
        + ", ".join(f"{t:.2f}" for t, _ in directs) + "; one API stream alone (s) "
        + ", ".join(f"{s:.2f}" for s in singles) + "; fake Space: 50 at once (s) "
        + ", ".join(f"{t:.2f}" for t, _ in fakes) + ", one alone (s) "
        + ", ".join(f"{s:.2f}" for s in fake_singles) + "."
    )


def measure(replicas: Replicas, rounds: int, cpu_rounds: int = 3) -> Section:
    url = replicas.url(STREAMS)
    section = Section("api")
    with fake_space() as fake_url, api_server(url, fake_url) as (base, pid), \
            httpx.Client(base_url=base, timeout=120, trust_env=False) as api, \
            httpx.Client(timeout=httpx.Timeout(60, connect=10), follow_redirects=True) as direct:
        _ttft(section, api, direct, url, rounds)
        _sdk_note(section, base, max(5, rounds // 3))
        _cpu(section, api, url, pid, cpu_rounds)
        _concurrency(section, api, base, url, max(1, cpu_rounds))
    section.notes.append(
        f"API server: `streamlit run streamlit_app.py` pinned to core {CLIENT_CORE} (where "
        "the direct client runs); replica: Max on Gradio 6, concurrency 50, system prompt "
        f"{SYSTEM!r}."
    )
    return section


if __name__ == "__main__":  # python -m bench.api [URL]: one quick run
    from .common import pin_self

    pin_self()
    reps = Replicas(sys.argv[1] if len(sys.argv) > 1 else None)
    try:
        out = measure(reps, rounds=8, cpu_rounds=1)
    finally:
        reps.stop()
    for row in out.rows:
        print(row)
    for note in out.notes:
        print("-", note)
