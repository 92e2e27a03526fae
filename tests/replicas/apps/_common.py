"""Helpers shared by the replica apps (imported inside the gradio venvs only).

Every app is started as ``python <app>.py --port P [--concurrency N] [--log FILE]``.
``--log`` (or env ``REPLICA_LOG``) names a JSON-lines file where the app records each
generation's life: ``start``, one ``token`` per streamed token, and ``end`` with
``"how": "done" | "error" | "closed"`` ("closed" = the generator was stopped early,
e.g. by ``/cancel``). The tests use it to prove a cancel really stopped the generator.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

REPLICAS_DIR = Path(__file__).resolve().parents[1]
if str(REPLICAS_DIR) not in sys.path:
    sys.path.insert(0, str(REPLICAS_DIR))

import script  # noqa: E402  (tests/replicas/script.py, pure Python)

__all__ = ["EventLog", "Options", "launch", "parse_args", "script", "stream_tokens"]

GRADIO_MAJOR = int(gr.__version__.split(".")[0])


class Options(argparse.Namespace):
    port: int
    concurrency: int
    log: str | None


def parse_args(description: str) -> Options:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--log", default=os.environ.get("REPLICA_LOG") or None)
    return parser.parse_args(namespace=Options())


class EventLog:
    """Append-only JSON-lines log of generations (a no-op without a path)."""

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        if not self._path:
            return
        line = json.dumps({"t": time.time(), "event": event, **fields}, ensure_ascii=False)
        with self._lock, open(self._path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def session_of(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def stream_tokens(
    plan: script.Plan,
    log: EventLog,
    *,
    session: str | None,
    tokens: list[str] | None = None,
    kind: str = "answer",
) -> Iterator[str]:
    """Yield the plan's tokens (or ``tokens``) one by one, sleeping ``plan.delay`` before
    each, logging each one; raise ``gr.Error`` where the plan has its error.

    The caller accumulates the tokens into its own output value.
    """
    items = plan.tokens if tokens is None else tokens
    for index, token in enumerate(items):
        if kind == "answer" and plan.error is not None and index >= plan.error.after:
            break
        if plan.delay:
            time.sleep(plan.delay)
        log.write("token", session=session, kind=kind, index=index)
        yield token
    if kind == "answer" and plan.error is not None:
        raise gr.Error(plan.error.message)


class Generation:
    """Context manager logging a generation's start and end (done / error / closed)."""

    def __init__(self, log: EventLog, session: str | None, query: str, **fields: Any) -> None:
        self.log = log
        self.session = session
        self.query = query
        self.fields = fields

    def __enter__(self) -> Generation:
        self.log.write("start", session=self.session, query=self.query, **self.fields)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc_type is None:
            self.log.write("end", session=self.session, query=self.query, how="done")
        elif issubclass(exc_type, GeneratorExit):
            self.log.write("end", session=self.session, query=self.query, how="closed")
        else:
            self.log.write(
                "end", session=self.session, query=self.query, how="error", error=str(exc)
            )


def exit_with_parent() -> None:
    """If started by tests/replicas/bed.py (env ``REPLICA_PARENT_PID``), exit as soon as
    that process is gone, so a killed test run leaves no orphan server behind."""
    raw_pid = os.environ.get("REPLICA_PARENT_PID", "")
    if not raw_pid.isdigit():
        return
    parent = int(raw_pid)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="replica-parent-watch", daemon=True).start()


def launch(demo: gr.Blocks, options: Options, *, api_open: bool = False) -> None:
    """Queue and serve ``demo`` on 127.0.0.1:``options.port`` (blocking).

    ``api_open`` defaults to False because that is Gradio's default on a Space
    (``Blocks.api_open = utils.get_space() is None``): queued events refuse direct
    ``/run/predict`` calls, non-queued ones still answer there.
    """
    exit_with_parent()
    demo.queue(default_concurrency_limit=options.concurrency, api_open=api_open)
    kwargs: dict[str, Any] = {
        "server_name": "127.0.0.1",
        "server_port": options.port,
        "share": False,
        "quiet": True,
        "inbrowser": False,
    }
    if GRADIO_MAJOR >= 5:
        kwargs["ssr_mode"] = False
    demo.launch(**kwargs)


def side_text(side: Any) -> str | None:
    """Text of one side of a modelscope pair: message object, dict, str or a list of them."""
    if side is None:
        return None
    if isinstance(side, str):
        return side
    if isinstance(side, dict):
        return side.get("text") or ""
    if isinstance(side, (list, tuple)):
        texts = [side_text(item) for item in side]
        return "".join(text for text in texts if text)
    return getattr(side, "text", None) or ""
