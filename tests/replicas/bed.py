"""Launcher for the replica Spaces: real Gradio servers on 127.0.0.1, one per Space layout.

    from tests.replicas import bed
    with bed.start("max_g6", concurrency=4) as replica:
        replica.base_url            # http://127.0.0.1:PORT
        replica.events()            # the app's generation log (start/token/end records)

Each replica runs its app file with the Python of the Gradio venv it needs, in its own
process group; ``stop()`` kills only that group. ``python -m tests.replicas.bed NAME
[--concurrency N]`` starts one by hand and prints its URL (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPLICAS_DIR = Path(__file__).resolve().parent
APPS_DIR = REPLICAS_DIR / "apps"
REPO_ROOT = REPLICAS_DIR.parents[1]
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class ReplicaSpec:
    name: str
    app: str  # file name in tests/replicas/apps/
    gradio_major: int
    space_id: str
    chat_fn_index: int
    api_prefix: str  # "" (Gradio 4) or "/gradio_api"

    @property
    def app_path(self) -> Path:
        return APPS_DIR / self.app

    @property
    def python(self) -> Path:
        """The venv Python for this Gradio major (env ``REPLICA_PYTHON_G<major>`` wins)."""
        override = os.environ.get(f"REPLICA_PYTHON_G{self.gradio_major}")
        if override:
            return Path(override)
        return REPO_ROOT / f".venv-gradio{self.gradio_major}" / "bin" / "python"


REPLICAS: dict[str, ReplicaSpec] = {
    spec.name: spec
    for spec in (
        ReplicaSpec("max_g5", "qwen25_max_g5.py", 5, "Qwen/Qwen2.5-Max-Demo", 0, "/gradio_api"),
        ReplicaSpec("max_g6", "qwen25_max_g6.py", 6, "Qwen/Qwen2.5-Max-Demo", 0, "/gradio_api"),
        ReplicaSpec("qwen25_g4", "qwen25_g4.py", 4, "Qwen/Qwen2.5", 3, ""),
        ReplicaSpec("qwen2_72b_g4", "qwen2_72b_g4.py", 4, "Qwen/Qwen2-72B-Instruct", 0, ""),
        ReplicaSpec("1m_g4", "qwen25_1m_g4.py", 4, "Qwen/Qwen2.5-1M-Demo", 2, ""),
        ReplicaSpec("qwen3_g5", "qwen3_g5.py", 5, "Qwen/Qwen3-Demo", 13, "/gradio_api"),
    )
}


class ReplicaStartError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-limit:]


@dataclass(eq=False)
class Replica:
    """A running replica server."""

    spec: ReplicaSpec
    port: int
    concurrency: int
    process: subprocess.Popen[bytes]
    workdir: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def space_id(self) -> str:
        return self.spec.space_id

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """``base_url`` + the API prefix (where ``/queue/join`` lives)."""
        return self.base_url + self.spec.api_prefix

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        """JSON-lines generation log written by the app (see apps/_common.py)."""
        return self.workdir / "events.jsonl"

    @property
    def output_path(self) -> Path:
        """The server's stdout+stderr."""
        return self.workdir / "server.log"

    def alive(self) -> bool:
        return self.process.poll() is None

    def events(self) -> list[dict[str, Any]]:
        """The generation log so far: ``start``/``token``/``end`` records."""
        try:
            text = self.log_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def wait_event(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = 10.0,
        interval: float = 0.02,
    ) -> dict[str, Any]:
        """Wait until a log record matches ``predicate``; return it (TimeoutError if not)."""
        deadline = time.monotonic() + timeout
        while True:
            for record in self.events():
                if predicate(record):
                    return record
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name}: no matching event in {self.events()!r}")
            time.sleep(interval)

    def stop(self) -> None:
        """Kill this replica's process group (only it) and wait for it to exit."""
        if self._stopped:
            return
        self._stopped = True
        _RUNNING.discard(self)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT)
        else:  # the leader is gone; make sure no child of its group lingers
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if not os.environ.get("REPLICA_KEEP_LOGS"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_RUNNING: set[Replica] = set()


@atexit.register
def _stop_running() -> None:
    for replica in list(_RUNNING):
        replica.stop()


def _wait_ready(replica: Replica, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"{replica.base_url}/config"
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while True:
            if replica.process.poll() is not None:
                raise ReplicaStartError(
                    f"replica {replica.name} exited with {replica.process.returncode} before"
                    f" serving:\n{_tail(replica.output_path)}"
                )
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() >= deadline:
                raise ReplicaStartError(
                    f"replica {replica.name} not ready after {timeout:.0f}s:\n"
                    f"{_tail(replica.output_path)}"
                )
            time.sleep(0.05)


def start(
    name: str,
    concurrency: int = 1,
    *,
    timeout: float = STARTUP_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> Replica:
    """Start replica ``name`` (a key of ``REPLICAS``) on a free 127.0.0.1 port with
    ``demo.queue(default_concurrency_limit=concurrency)``; return once ``GET /config``
    answers 200."""
    try:
        spec = REPLICAS[name]
    except KeyError:
        raise ValueError(f"unknown replica {name!r}; known: {sorted(REPLICAS)}") from None
    if not spec.python.exists():
        raise ReplicaStartError(
            f"{spec.python} not found: create the Gradio {spec.gradio_major} venv"
        )
    attempts = 3
    for attempt in range(attempts):
        workdir = Path(tempfile.mkdtemp(prefix=f"replica-{name}-"))
        port = _free_port()
        child_env = {
            **os.environ,
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",
            "GRADIO_TEMP_DIR": str(workdir / "gradio-tmp"),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
            "REPLICA_PARENT_PID": str(os.getpid()),  # the app exits when we are gone
            **(env or {}),
        }
        command = [
            str(spec.python),
            str(spec.app_path),
            "--port",
            str(port),
            "--concurrency",
            str(concurrency),
            "--log",
            str(workdir / "events.jsonl"),
        ]
        with open(workdir / "server.log", "wb") as output:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=child_env,
                cwd=str(REPO_ROOT),
                start_new_session=True,  # own process group: stop() kills just it
            )
        replica = Replica(spec, port, concurrency, process, workdir)
        _RUNNING.add(replica)
        try:
            _wait_ready(replica, timeout)
            return replica
        except ReplicaStartError as exc:
            replica.stop()
            port_taken = "address already in use" in str(exc).lower()
            if not port_taken or attempt == attempts - 1:
                raise
        except BaseException:
            replica.stop()
            raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running(name: str, concurrency: int = 1, **kwargs: Any) -> Iterator[Replica]:
    """``with running("max_g6", 4) as replica: ...`` (stopped on exit)."""
    replica = start(name, concurrency, **kwargs)
    try:
        yield replica
    finally:
        replica.stop()


class ReplicaPool:
    """Starts each (name, concurrency) replica once, lazily; ``stop_all()`` at the end.

    Replicas may be requested from several threads; each is started once.
    """

    def __init__(self) -> None:
        self._replicas: dict[tuple[str, int], Replica] = {}
        self._lock = threading.Lock()

    def get(self, name: str, concurrency: int = 1) -> Replica:
        key = (name, concurrency)
        with self._lock:
            replica = self._replicas.get(key)
            if replica is not None and not replica.alive():
                replica.stop()
                replica = None
            if replica is None:
                replica = start(name, concurrency)
                self._replicas[key] = replica
            return replica

    def stop_all(self) -> None:
        with self._lock:
            replicas, self._replicas = list(self._replicas.values()), {}
        for replica in replicas:
            replica.stop()


def space_urls(mapping: Mapping[str, str | Replica] | Iterable[Replica]) -> str:
    """The ``QWEN_SPACE_URLS`` value: ``"Space/Id=http://127.0.0.1:PORT,..."``.

    Takes ``{space_id: url_or_replica}`` or an iterable of replicas (keyed by their
    Space id; a later replica of the same Space wins).
    """
    pairs: dict[str, str] = {}
    if isinstance(mapping, Mapping):
        for space_id, target in mapping.items():
            pairs[space_id] = target.base_url if isinstance(target, Replica) else str(target)
    else:
        for replica in mapping:
            pairs[replica.space_id] = replica.base_url
    for space_id, url in pairs.items():
        if "," in space_id or "=" in space_id or "," in url:
            raise ValueError(f"cannot encode {space_id!r}={url!r}")
    return ",".join(f"{space_id}={url}" for space_id, url in pairs.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one replica Space until interrupted.")
    parser.add_argument("name", choices=sorted(REPLICAS))
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args(argv)
    with running(args.name, args.concurrency) as replica:
        print(f"{replica.name} ({replica.space_id}) at {replica.base_url} pid {replica.pid}")
        print(f"QWEN_SPACE_URLS={space_urls([replica])}", flush=True)
        try:
            replica.process.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
