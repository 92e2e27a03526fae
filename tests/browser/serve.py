"""Start and stop ``streamlit run streamlit_app.py`` on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

__all__ = ["free_port", "kill_process", "port_of", "start_streamlit", "stop_process"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_streamlit(
    cwd: Path, python: str, env: dict[str, str], log: Path, args: Sequence[str] = (),
    port: int | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """``streamlit run streamlit_app.py [args]`` headless on a loopback port (``port``, e.g.
    the one of a server that was just stopped, else a free one); returns once
    ``/_stcore/health`` answers."""
    port = port or free_port()
    command = [
        python, "-m", "streamlit", "run", "streamlit_app.py",
        "--server.headless", "true", "--server.port", str(port),
        "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false", *args,
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{log.read_text()[-3000:]}")
            try:
                if client.get(f"{url}/_stcore/health").text.strip() == "ok":
                    return process, url
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                stop_process(process)
                raise RuntimeError(f"streamlit did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop the one process we started, by its PID."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def kill_process(process: subprocess.Popen[bytes]) -> None:
    """``kill -9`` the one process we started, by its PID (a crash: nothing runs its
    ``finally``), and reap it."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def port_of(url: str) -> int:
    """The port of ``http://127.0.0.1:PORT``."""
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])
