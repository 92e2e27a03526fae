"""A fault-injecting fake of the Qwen2.5-Max Space, speaking Gradio 5's queue protocol.

A plain asyncio HTTP/1.1 server (keep-alive, chunked event streams) on 127.0.0.1 in a
background thread, so every byte on the wire is under the test's control:

- ``GET /config``: a Gradio 5-like config (``api_prefix`` ``/gradio_api``, protocol
  ``sse_v3``), event 0 = ``[textbox, chatbot, textbox] -> [textbox, chatbot, textbox]``
  as on the real Space; :attr:`FakeSpace.config_mode` breaks it on demand.
- ``POST /gradio_api/queue/join`` -> ``{"event_id"}``;
- ``GET /gradio_api/queue/data?session_hash=`` -> ``data: {json}\\n\\n`` messages:
  estimation, process_starts, process_generating (full data first, then
  ``[[], [["append", [n, 1], tok]], []]`` diffs), process_completed, close_stream;
- ``POST /gradio_api/cancel`` -> ``{"success": true}``, recorded in :attr:`cancels`.

The answer to a plain question is :func:`answer_for` (an echo of what reached the Space,
so cross-talk shows). A fault is picked by the question's first word,
``fault:NAME[:ARG...]``, or for every job by setting :attr:`FakeSpace.fault` (the app tests
clear it to make a Retry succeed). Faults:

==================  ==========================================================================
``join503``         join answers 503 ``{"detail": "Queue is full."}``
``429:N:SECONDS``   the first N joins of a session answer 429 with ``Retry-After: SECONDS``
``joinhtml``        join answers 200 with a web page (a sleeping Space)
``streamhtml``      the data stream answers 200 with a web page
``cut:K``           K tokens, then the connection is dropped mid-body
``eof:K``           K tokens, then the stream ends cleanly without completing the job
``malformed:K``     K tokens, then a ``data:`` line that is not JSON
``silence:K``       K tokens, then nothing at all until the client leaves
``heartbeats:N:MS`` N heartbeats MS ms apart before the job starts, then the answer
``fail:K``          K tokens, then ``process_completed`` with ``success: false``
``unexpected:K``    K tokens, then ``unexpected_error`` for this event
``lost``            a session-level ``unexpected_error`` (Session not found), then the end
``interleave``      the answer with other events' messages mixed in
``big:N``           one update appending N characters
``badop:K``         K tokens, then an edit with an unknown op
``bytewise``        the whole data response written one byte at a time (UTF-8 split)
``slow:N:MS``       N tokens, MS ms apart (for early close)
``pace:MS``         the usual echo, MS ms between tokens (for overlapping sessions)
``forever:MS``      tokens ``f{i} `` appended without end (MS ms apart; at most 200,000 tokens
                    or 60 s), until the client leaves
``drip:K:MS``       K tokens, then one byte every MS ms (an endless ``:`` comment line: no
                    event, but never silent; at most 60 s), until the client leaves
``hugeline:MIB``    2 tokens, then one ``data:`` line of MIB MiB, sent in 1 MiB chunks
``deep:K``          K tokens, then a message nested 100,000 lists deep
==================  ==========================================================================

Hostile ``/config`` modes (:attr:`FakeSpace.config_mode`) besides the ones of
:func:`_config_for`: ``prefix:VALUE`` serves ``api_prefix`` VALUE; ``huge:MIB`` sends a
``/config`` of MIB MiB (chunked, no length) in 1 MiB chunks; ``protocol:VALUE`` serves
``protocol`` VALUE; ``status:CODE`` answers HTTP CODE with a JSON error; ``reshaped`` keeps
event 0 but with two inputs; ``hang`` accepts and never answers; ``drip:MS`` starts a
``/config`` and sends one byte every MS ms without ever finishing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "FakeSpace",
    "answer_for",
    "tokenize",
    "config_gradio5",
    "DEFAULT_SYSTEM",
    "ERROR_MESSAGE",
    "UNEXPECTED_MESSAGE",
    "BYTEWISE_TOKENS",
    "SLEEPING_PAGE",
    "free_port",
]

PREFIX = "/gradio_api"
DEFAULT_SYSTEM = "You are a helpful assistant."
ERROR_MESSAGE = "Quota exceeded for this model (fake)"
UNEXPECTED_MESSAGE = "CUDA out of memory (fake)"
BYTEWISE_TOKENS = ("Hé", "llo ", "你好", "，", "wörld ", "👍🏽", " 👨\u200d👩\u200d👧", " end")
SLEEPING_PAGE = (
    b"<!DOCTYPE html><html><head><title>Qwen2.5 Max Demo - a Hugging Face Space</title>"
    b"</head><body><h1>This Space is sleeping due to inactivity.</h1></body></html>"
)
_TOKEN_RE = re.compile(r"\s+|\S{1,3}")


def tokenize(text: str) -> list[str]:
    """Small tokens: whitespace runs and up to 3 other characters."""
    return _TOKEN_RE.findall(text)


def answer_for(query: str, system: str = DEFAULT_SYSTEM, history: Any = ()) -> str:
    """The exact answer the fake streams for a question without a fault."""
    pairs = json.dumps([list(p) for p in history], ensure_ascii=False, separators=(",", ":"))
    return f"ECHO query={query} | system={system} | history={pairs}"


# -- /config ----------------------------------------------------------------------------


def config_gradio5(version: str = "5.50.0") -> dict[str, Any]:
    """The Qwen2.5-Max Space's config as Gradio 5 serves it (trimmed to what matters)."""
    def comp(cid: int, kind: str, **props: Any) -> dict[str, Any]:
        return {"id": cid, "type": kind, "props": props, "skip_api": False,
                "component_class_id": f"c{cid}", "key": None}

    components = [
        comp(1, "markdown", value="<center><font size=8>Qwen2.5-Max</center>"),
        comp(4, "textbox", value=DEFAULT_SYSTEM, lines=1, label="System"),
        comp(5, "button", value="🛠️ Set system prompt and clear history"),
        comp(6, "textbox", value=DEFAULT_SYSTEM, visible=False),
        comp(7, "chatbot", label="Qwen2.5-Max", type="tuples", value=[]),
        comp(8, "textbox", lines=1, label="Input"),
        comp(10, "button", value="🧹 Clear history"),
        comp(11, "button", value="🚀 Send"),
    ]

    def dep(did: int, target: list[Any], inputs: list[int], outputs: list[int],
            api_name: str) -> dict[str, Any]:
        return {"id": did, "targets": [target], "inputs": inputs, "outputs": outputs,
                "api_name": api_name, "backend_fn": True, "js": None, "queue": None,
                "trigger_mode": "once", "show_progress": "full", "types":
                {"generator": True, "cancel": False}, "show_api": True}

    return {
        "version": version,
        "mode": "blocks",
        "app_id": 1234,
        "dev_mode": False,
        "analytics_enabled": False,
        "is_space": True,
        "protocol": "sse_v3",
        "api_prefix": PREFIX,
        "root": "",
        "title": "Qwen2.5-Max",
        "components": components,
        "dependencies": [
            dep(0, [8, "submit"], [8, 7, 6], [8, 7, 4], "model_chat"),
            dep(1, [11, "click"], [8, 7, 6], [8, 7, 4], "model_chat_1"),
            dep(2, [10, "click"], [], [8, 7], "clear_session"),
            dep(3, [5, "click"], [4], [6, 4, 7], "modify_system_session"),
        ],
    }


def _config_for(mode: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of ``GET /config`` in each config mode."""
    js = "application/json"
    if mode == "ok":
        return 200, js, _dumps(config_gradio5())
    if mode == "missing":
        return 404, js, b'{"detail":"Not Found"}'
    if mode == "html":  # a sleeping Space answers every path with its splash page
        return 200, "text/html; charset=utf-8", SLEEPING_PAGE
    if mode == "html503":
        return 503, "text/html; charset=utf-8", SLEEPING_PAGE
    if mode == "nofn":  # the chat event is gone; only the housekeeping events remain
        config = config_gradio5()
        config["dependencies"] = config["dependencies"][2:]
        return 200, js, _dumps(config)
    if mode == "moved":  # the chat event now has id 5 (found again by its api_name)
        config = config_gradio5()
        config["dependencies"][0]["id"] = 5
        config["dependencies"] = config["dependencies"][2:] + config["dependencies"][:1]
        return 200, js, _dumps(config)
    if mode == "gradio3":
        config = config_gradio5("3.50.2")
        config["protocol"] = "ws"
        del config["api_prefix"]
        return 200, js, _dumps(config)
    if mode == "gradio3_noproto":  # Gradio 3 configs before "protocol" existed
        config = config_gradio5("3.36.1")
        del config["protocol"], config["api_prefix"]
        return 200, js, _dumps(config)
    if mode.startswith("protocol:"):  # a queue protocol qwen_core does not speak
        config = config_gradio5()
        config["protocol"] = mode[len("protocol:"):]
        return 200, js, _dumps(config)
    if mode.startswith("status:"):  # e.g. status:401 (gated), status:429, status:500
        code = int(mode[len("status:"):])
        return code, js, b'{"detail":"fake status"}'
    if mode == "reshaped":  # the chat event is still 0 but takes other inputs
        config = config_gradio5()
        config["dependencies"][0]["inputs"] = [8, 7]
        config["dependencies"][1]["inputs"] = [8, 7]
        return 200, js, _dumps(config)
    if mode.startswith("prefix:"):  # a hostile api_prefix (e.g. "@127.0.0.1:PORT")
        config = config_gradio5()
        config["api_prefix"] = mode[len("prefix:"):]
        return 200, js, _dumps(config)
    raise ValueError(f"unknown config mode {mode!r}")


def _dumps(value: Any) -> bytes:
    # orjson (what Gradio uses) writes UTF-8, not \\u escapes
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


# -- records ----------------------------------------------------------------------------


@dataclass
class Seen:
    """One HTTP request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Job:
    event_id: str
    session_hash: str
    fn_index: int
    query: str
    history: list[Any]
    system: str
    fault: str | None
    args: list[int]


@dataclass
class _Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def params(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.target).query).items()}


class _Disconnected(Exception):
    pass


@dataclass
class FakeSpace:
    """The fake Space. ``start()`` serves on 127.0.0.1 (``port`` 0: any free port)."""

    port: int = 0
    config_mode: str = "ok"
    fault: str | None = None  # applies to every job (overrides the question's fault word)
    requests: list[Seen] = field(default_factory=list)
    joins: list[Job] = field(default_factory=list)
    cancels: list[dict[str, Any]] = field(default_factory=list)
    connections_open: int = 0
    connections_total: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, list[Job]] = {}
        self._join_attempts: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeSpace:
        self._thread = threading.Thread(target=self._run, name="fake-space", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            self.port = sock.getsockname()[1]
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, sock=sock, limit=1 << 20)
            )
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            loop.stop()

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeSpace:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no client connection is open (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connections_open == 0:
                return True
            time.sleep(0.01)
        return self.connections_open == 0

    def seen(self, path_suffix: str) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith(path_suffix)]

    # -- HTTP -------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        with self._lock:
            self.connections_open += 1
            self.connections_total += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                with self._lock:
                    self.requests.append(Seen(request.method, request.path, request.params,
                                              request.headers, request.body))
                if not await self._dispatch(request, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                _Disconnected, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            with self._lock:
                self.connections_open -= 1
            self._tasks.discard(task)

    async def _dispatch(
        self, req: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False closes the connection."""
        path = req.path
        if req.method == "GET" and path == "/config":
            if self.config_mode.startswith("huge:"):
                return await _huge_config(writer, int(self.config_mode.split(":")[1]))
            if self.config_mode == "hang":  # accepts, then never answers
                await asyncio.sleep(3600)
                return False
            if self.config_mode.startswith("drip:"):
                return await _drip_config(writer, int(self.config_mode.split(":")[1]))
            status, ctype, body = _config_for(self.config_mode)
            return await _respond(writer, status, body, ctype)
        if req.method == "POST" and path == f"{PREFIX}/queue/join":
            return await self._join(req, writer)
        if req.method == "GET" and path == f"{PREFIX}/queue/data":
            return await self._data(req, reader, writer)
        if req.method == "POST" and path == f"{PREFIX}/cancel":
            with self._lock:
                self.cancels.append(json.loads(req.body or b"{}"))
            return await _respond(writer, 200, b'{"success":true}')
        return await _respond(writer, 404, b'{"detail":"Not Found"}')

    async def _join(self, req: _Request, writer: asyncio.StreamWriter) -> bool:
        body = json.loads(req.body)
        data = body.get("data") or ["", [], DEFAULT_SYSTEM]
        query = data[0] if isinstance(data[0], str) else ""
        name, args = self._fault_of(query)
        session = str(body.get("session_hash"))
        with self._lock:
            attempt = self._join_attempts.get(session, 0)
            self._join_attempts[session] = attempt + 1
        if name == "join503":
            return await _respond(writer, 503, b'{"detail":"Queue is full."}')
        if name == "429" and attempt < (args[0] if args else 10**9):
            seconds = str(args[1]) if len(args) > 1 else "1"
            return await _respond(writer, 429, b'{"detail":"Too many requests."}',
                                  headers={"Retry-After": seconds})
        if name == "joinhtml":
            return await _respond(writer, 200, SLEEPING_PAGE, "text/html; charset=utf-8")
        job = Job(
            event_id=secrets.token_hex(16), session_hash=session,
            fn_index=int(body.get("fn_index", -1)), query=query,
            history=data[1] if len(data) > 1 and isinstance(data[1], list) else [],
            system=data[2] if len(data) > 2 and isinstance(data[2], str) else DEFAULT_SYSTEM,
            fault=name, args=args,
        )
        with self._lock:
            self.joins.append(job)
            self._jobs.setdefault(session, []).append(job)
        return await _respond(writer, 200, _dumps({"event_id": job.event_id}))

    def _fault_of(self, query: str) -> tuple[str | None, list[int]]:
        word = self.fault
        if word is None:
            first = query.split(maxsplit=1)[0] if query.split() else ""
            word = first[len("fault:"):] if first.startswith("fault:") else None
        if not word:
            return None, []
        name, *rest = word.split(":")
        return name, [int(a) for a in rest if a.lstrip("-").isdigit()]

    async def _data(
        self, req: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        session = req.params.get("session_hash", "")
        with self._lock:
            jobs = self._jobs.pop(session, [])
        fault = jobs[0].fault if jobs else None
        if fault == "streamhtml":
            return await _respond(writer, 200, SLEEPING_PAGE, "text/html; charset=utf-8")
        bytewise = fault == "bytewise"
        out = _EventStream(writer, bytewise=bytewise)
        # watch for the client leaving while the script sleeps (silence, slow tokens)
        gone = asyncio.ensure_future(reader.read(1))
        script = asyncio.ensure_future(self._script(out, jobs))
        try:
            done, _ = await asyncio.wait({gone, script}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (gone, script):
                if not task.done():
                    task.cancel()
            await asyncio.gather(gone, script, return_exceptions=True)
        if script not in done or script.cancelled() or script.exception() is not None:
            return False  # the client left (or the script dropped the connection)
        return script.result()

    async def _script(self, out: _EventStream, jobs: list[Job]) -> bool:
        """Stream the jobs' messages; True if the response ended cleanly (keep-alive)."""
        await out.begin()
        if not jobs:  # what Gradio 5 sends for an unknown session
            await out.send({"msg": "unexpected_error", "event_id": None,
                            "message": "Session not found.", "session_not_found": True,
                            "success": False})
            await out.end()
            return True
        for job in jobs:
            outcome = await self._run_job(out, job)
            if outcome == "drop":
                out.abort()
                return False
            if outcome == "hang":
                await asyncio.sleep(3600)
            if outcome == "end":
                await out.end()
                return True
        await out.send({"msg": "close_stream", "event_id": None})
        await out.end()
        return True

    async def _run_job(self, out: _EventStream, job: Job) -> str:  # noqa: C901 - one per fault
        """Send one job's messages; returns "ok", "drop", "hang" or "end"."""
        eid, fault, args = job.event_id, job.fault, job.args
        k = args[0] if args else 0

        def msg(kind: str, **fields: Any) -> dict[str, Any]:
            return {"msg": kind, "event_id": eid, **fields}

        history = [list(p) for p in job.history]
        n = len(history)
        text = answer_for(job.query, job.system, job.history)
        tokens = tokenize(text)
        delay = 0.0
        if fault == "bytewise":
            tokens = list(BYTEWISE_TOKENS)
        elif fault in ("cut", "eof", "malformed", "silence", "fail", "unexpected", "badop"):
            tokens = tokens[:k]
        elif fault == "slow":
            tokens = [f"s{i} " for i in range(k)]
            delay = (args[1] if len(args) > 1 else 50) / 1000
        elif fault == "pace":
            delay = k / 1000
        elif fault == "big":
            tokens = [("0123456789abcdef" * (k // 16 + 1))[:k]]
        elif fault in ("drip", "deep"):
            tokens = tokens[:k]
        elif fault == "hugeline":
            tokens = tokens[:2]
        elif fault == "forever":
            tokens = []

        if fault == "lost":
            await out.send({"msg": "unexpected_error", "event_id": None,
                            "message": "Session not found.", "session_not_found": True,
                            "success": False})
            return "end"
        if fault == "heartbeats":
            count, gap = (args + [5, 300])[:2]
            for _ in range(count):
                await out.send({"msg": "heartbeat", "event_id": None})
                await asyncio.sleep(gap / 1000)
        other = secrets.token_hex(16)
        if fault == "interleave":
            await out.send({"msg": "estimation", "event_id": other, "rank": 0,
                            "queue_size": 2, "rank_eta": 3.0})
        await out.send(msg("estimation", rank=0, queue_size=1, rank_eta=None))
        await out.send(msg("process_starts", eta=None, progress=None))
        if fault == "interleave":
            await out.send({"msg": "process_starts", "event_id": other, "eta": None})
            await out.send({"msg": "process_generating", "event_id": other, "success": True,
                            "output": {"data": ["", [["other", "OTHER"]], "x"],
                                       "is_generating": True}})

        def data(answer: str) -> list[Any]:
            return ["", [*history, [job.query, answer]], job.system]

        await out.send(msg("process_generating", success=True,
                           output={"data": data(""), "is_generating": True}))
        answer = ""
        for i, token in enumerate(tokens):
            if delay:
                await asyncio.sleep(delay)
            answer += token
            await out.send(msg("process_generating", success=True, output={
                "data": [[], [["append", [n, 1], token]], []], "is_generating": True}))
            if fault == "interleave" and i % 3 == 0:
                await out.send({"msg": "process_generating", "event_id": other,
                                "success": True, "output": {"data": [
                                    [], [["append", [0, 1], "X"], ["delete", [7], None]],
                                    [["replace", [], 42]]], "is_generating": True}})
                await out.send({"msg": "heartbeat", "event_id": None})
        if fault == "forever":
            started = time.monotonic()
            for i in range(200_000):
                if k:
                    await asyncio.sleep(k / 1000)
                elif i % 100 == 0:
                    await asyncio.sleep(0)  # let the client's leaving be noticed
                if time.monotonic() - started > 60:
                    break
                await out.send(msg("process_generating", success=True, output={
                    "data": [[], [["append", [n, 1], f"f{i} "]], []], "is_generating": True}))
            return "end"
        if fault == "drip":
            await out.send_raw(b":")
            started = time.monotonic()
            while time.monotonic() - started < 60:
                await asyncio.sleep((args[1] if len(args) > 1 else 100) / 1000)
                await out.send_raw(b"x")
            return "end"
        if fault == "hugeline":
            await out.send_raw(b'data: {"msg": "process_generating", "event_id": "' +
                               eid.encode() + b'", "pad": "')
            chunk = b"a" * (1 << 20)
            for _ in range(k):
                await out.send_raw(chunk)
            await out.send_raw(b'"}\n\n')
            return "end"
        if fault == "deep":
            await out.send_raw(b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n")
            return "end"
        if fault == "cut":
            return "drop"
        if fault == "eof":
            return "end"
        if fault == "silence":
            return "hang"
        if fault == "malformed":
            await out.send_raw(b'data: {"msg": "process_generating", "event_id": "' +
                               eid.encode() + b'", "output": {"data": [[], [["app\n\n')
            return "end"
        if fault == "badop":
            await out.send(msg("process_generating", success=True, output={
                "data": [[], [["frobnicate", [n, 1], "x"]], []], "is_generating": True}))
            return "end"
        if fault == "fail":
            await out.send(msg("process_completed", success=False, title="Error", output={
                "error": ERROR_MESSAGE, "duration": 10, "visible": True, "title": "Error"}))
            return "end"
        if fault == "unexpected":
            await out.send(msg("unexpected_error", message=UNEXPECTED_MESSAGE,
                               session_not_found=False, success=False))
            return "end"
        if fault == "interleave":
            await out.send({"msg": "process_completed", "event_id": other, "success": False,
                            "output": {"error": "not yours"}})
        await out.send(msg("process_completed", success=True, title=None,
                           output={"data": data(answer), "is_generating": False}))
        return "ok"


class _EventStream:
    """A chunked ``text/event-stream`` response (optionally one byte per write)."""

    def __init__(self, writer: asyncio.StreamWriter, *, bytewise: bool) -> None:
        self.writer = writer
        self.bytewise = bytewise

    async def _write(self, data: bytes) -> None:
        if self.writer.is_closing():
            raise _Disconnected
        if not self.bytewise:
            self.writer.write(data)
            await self.writer.drain()
            return
        for i in range(len(data)):
            self.writer.write(data[i:i + 1])  # TCP_NODELAY: one segment per byte
            await self.writer.drain()
            time.sleep(0.00002)  # let the reader take it before the next byte

    async def begin(self) -> None:
        await self._write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"cache-control: no-cache\r\nx-accel-buffering: no\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_raw(b"data: " + _dumps(message) + b"\n\n")

    async def send_raw(self, payload: bytes) -> None:
        await self._write(b"%x\r\n%s\r\n" % (len(payload), payload))

    async def end(self) -> None:
        await self._write(b"0\r\n\r\n")

    def abort(self) -> None:
        """Drop the connection mid-body (no final chunk)."""
        transport = self.writer.transport
        transport.abort()


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    body = await reader.readexactly(length) if length else b""
    return _Request(method, target, headers, body)


_REASONS = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 503: "Service Unavailable"}


async def _respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> bool:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
             f"content-type: {content_type}", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
    return True


async def _huge_config(writer: asyncio.StreamWriter, mib: int) -> bool:
    """A /config of ``mib`` MiB, chunked (no length to refuse up front), 1 MiB at a time;
    stops when the client leaves."""
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                 b"transfer-encoding: chunked\r\n\r\n")
    chunk = b"a" * (1 << 20)
    head = b'{"version": "'
    writer.write(b"%x\r\n%s\r\n" % (len(head), head))
    for _ in range(mib):
        if writer.is_closing():
            return False
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
    writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (2, b'"}'))
    await writer.drain()
    return True


async def _drip_config(writer: asyncio.StreamWriter, ms: int) -> bool:
    """A /config that never completes: headers, then one byte every ``ms`` ms (never
    silent, so no read timeout fires; at most 60 s), until the client leaves."""
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                 b"transfer-encoding: chunked\r\n\r\n1\r\n{\r\n")
    await writer.drain()
    started = time.monotonic()
    while time.monotonic() - started < 60:
        await asyncio.sleep(ms / 1000)
        if writer.is_closing():
            return False
        writer.write(b"1\r\n \r\n")
        await writer.drain()
    return False


def free_port() -> int:
    """A port nothing listens on (bound and released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

