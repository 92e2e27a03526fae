"""What every benchmark shares: CPU pinning, the replica, the three clients, statistics."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
REPLICAS = ROOT / "tests" / "replicas"
if str(REPLICAS) not in sys.path:
    sys.path.insert(0, str(REPLICAS))  # for ``script`` (expected answers)

MODEL = "qwen-2.5-max"
REPLICA = "max_g6"
SYSTEM = "You are a helpful assistant."  # the Max Space's default system prompt
CLIENTS = ("qwen_core", "raw", "gradio_client")
SERVER_CORE = 0
CLIENT_CORE = 1


# -- cores ---------------------------------------------------------------------------------

def can_pin() -> bool:
    return (
        hasattr(os, "sched_setaffinity")
        and shutil.which("taskset") is not None
        and {SERVER_CORE, CLIENT_CORE} <= os.sched_getaffinity(0)
    )


def pin_self() -> bool:
    """Pin this process (and the children it starts later) to the client core."""
    if not can_pin():
        return False
    os.sched_setaffinity(0, {CLIENT_CORE})
    return True


def pin_pid(pid: int, core: int = SERVER_CORE) -> bool:
    """``taskset -a -c -p core pid``: every thread of ``pid`` onto ``core``."""
    if not can_pin():
        return False
    done = subprocess.run(["taskset", "-a", "-c", "-p", str(core), str(pid)],
                          capture_output=True, text=True, check=False)
    return done.returncode == 0


# -- replicas ------------------------------------------------------------------------------

class Replicas:
    """Replica servers started on demand (``tests/replicas/bed.py``), pinned to core 0."""

    def __init__(self, url: str | None = None) -> None:
        self._fixed = url  # --url: an already running Max g6 replica (not stopped by us)
        self._running: dict[int, object] = {}

    def url(self, concurrency: int = 1) -> str:
        if self._fixed:
            return self._fixed.rstrip("/")
        replica = self._running.get(concurrency)
        if replica is None:
            from tests.replicas import bed

            replica = bed.start(REPLICA, concurrency=concurrency)
            pin_pid(replica.pid)
            self._running[concurrency] = replica
            warm(replica.base_url)
        return replica.base_url  # type: ignore[attr-defined]

    def stop(self, concurrency: int | None = None) -> None:
        keys = list(self._running) if concurrency is None else [concurrency]
        for key in keys:
            replica = self._running.pop(key, None)
            if replica is not None:
                replica.stop()  # type: ignore[attr-defined]


def warm(url: str) -> None:
    """A few requests so the server's first-use costs do not land in a measurement."""
    from . import raw_reader

    for _ in range(3):
        "".join(raw_reader.stream(url, "script:long:50"))


# -- the three clients, driven the same way ------------------------------------------------

@dataclass
class Run:
    """One stream: seconds to the first answer text, total seconds, CPU seconds, text."""

    first: float
    wall: float
    cpu: float
    text: str
    updates: int


def _qwen_core(url: str, query: str) -> Iterable[str]:
    import qwen_core

    return qwen_core.stream_chat(MODEL, [{"role": "user", "content": query}], base_url=url)


def _raw(url: str, query: str) -> Iterable[str]:
    from . import raw_reader

    return raw_reader.stream(url, query, SYSTEM)


def run_delta_client(make: Callable[[str, str], Iterable[str]], url: str, query: str) -> Run:
    parts: list[str] = []
    first = 0.0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for piece in make(url, query):
        if not parts and piece:
            first = time.perf_counter() - t0
        parts.append(piece)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return Run(first, wall, cpu, "".join(parts), len(parts))


def gradio_client_answer(output: object) -> str:
    """The assistant's text in one gradio_client output tuple of the Max g6 replica."""
    chat = output[1]  # type: ignore[index]
    if not chat or chat[-1].get("role") != "assistant":
        return ""
    content = chat[-1]["content"]
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def run_gradio_client(url: str, query: str, cap: int | None = None) -> Run:
    """``Client(url).submit(...)`` iterated, the Client built inside the timed region.
    ``cap``: stop after that many updates (the job is cancelled)."""
    from gradio_client import Client

    first = 0.0
    updates = 0
    last: object = None
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    client = Client(url + "/", verbose=False, analytics_enabled=False)
    try:
        job = client.submit(query, [], SYSTEM, fn_index=0)
        for output in job:
            updates += 1
            last = output
            if not first and gradio_client_answer(output):
                first = time.perf_counter() - t0
            if cap is not None and updates >= cap:
                job.cancel()
                break
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        client.close()
    return Run(first, wall, cpu, gradio_client_answer(last) if last is not None else "", updates)


def run_client(name: str, url: str, query: str) -> Run:
    if name == "qwen_core":
        return run_delta_client(_qwen_core, url, query)
    if name == "raw":
        return run_delta_client(_raw, url, query)
    if name == "gradio_client":
        return run_gradio_client(url, query)
    raise ValueError(name)


def clear_qwen_core_cache() -> None:
    import qwen_core.queue_api

    qwen_core.queue_api.config_cache.clear()


def expected(query: str) -> str:
    import script

    return script.expected_answer(query, system=SYSTEM)


def rotations(names: tuple[str, ...], rounds: int) -> Iterable[tuple[int, str]]:
    """``(round, name)`` in alternating order: each round starts with a different client."""
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            yield r, name


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


# -- the machine ---------------------------------------------------------------------------

def machine() -> dict[str, str]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    gradio = "?"
    g6 = ROOT / ".venv-gradio6" / "bin" / "python"
    if g6.exists():
        done = subprocess.run([str(g6), "-c", "import importlib.metadata as m;"
                               "print(m.version('gradio'))"],
                              capture_output=True, text=True, check=False)
        gradio = done.stdout.strip() or "?"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "gradio (replica)": gradio,
        "gradio_client": version("gradio_client"),
        "httpx": version("httpx"),
        "httpx-sse": version("httpx-sse"),
        "streamlit": version("streamlit"),
        "kernel": platform.release(),
    }
