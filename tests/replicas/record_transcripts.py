"""Record raw wire transcripts from every replica into tests/replicas/transcripts/.

    .venv/bin/python -m tests.replicas.record_transcripts [NAME ...]

Per replica NAME:
  NAME.config.json        GET /config trimmed: version, protocol, api_prefix, every
                          dependency (main keys) and the components of the chat event
  NAME.echo.request.json  the /queue/join body of a short echo request with one earlier turn
  NAME.echo.sse           the exact /queue/data stream for it (``data: ...`` + blank line)
  NAME.error.sse          the stream for ``script:error:3`` (gr.Error after 3 tokens)
  NAME.cancel.sse         the stream for ``script:slow:20:50`` cancelled after 3 updates
  1m_g4.add.json          (1M only) the non-queued ``/run/predict`` call of fn 1
Event ids, session hashes, durations and (Qwen3) message keys differ on every run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.replicas import bed, raw
from tests.replicas.layouts import LAYOUTS, Layout

OUT_DIR = Path(__file__).resolve().parent / "transcripts"
HISTORY = [["What is 2+2?", "2+2 equals 4."]]
QUERY = "Hi"
DEPENDENCY_KEYS = (
    "id",
    "targets",
    "inputs",
    "outputs",
    "queue",
    "api_name",
    "backend_fn",
    "types",
    "trigger_after",
    "cancels",
)


def trim_config(config: dict[str, Any], fn_index: int) -> dict[str, Any]:
    dependencies = [
        {key: dep[key] for key in DEPENDENCY_KEYS if key in dep} for dep in config["dependencies"]
    ]
    chat = config["dependencies"][fn_index]
    wanted = set(chat["inputs"]) | set(chat["outputs"]) | {t[0] for t in chat["targets"]}
    components = [c for c in config["components"] if c["id"] in wanted]
    trimmed = {key: config[key] for key in ("version", "protocol", "api_prefix") if key in config}
    trimmed["chat_fn_index"] = fn_index
    trimmed["dependencies"] = dependencies
    trimmed["components"] = components
    return trimmed


def sse_text(transcript: raw.Transcript) -> str:
    return "".join(f"{line}\n\n" for line in transcript.lines)


def join_body(layout: Layout, data: list[Any], session: str) -> dict[str, Any]:
    return {
        "data": data,
        "fn_index": layout.fn_index,
        "session_hash": session,
        "event_data": None,
        "trigger_id": None,
    }


def cancelled(replica: bed.Replica, layout: Layout) -> raw.Transcript:
    session = raw.new_session_hash()
    prefix = replica.spec.api_prefix
    event_id = raw.join(
        replica.base_url,
        layout.fn_index,
        layout.data("script:slow:20:50"),
        prefix=prefix,
        session_hash=session,
    )
    transcript = raw.Transcript(session_hash=session, event_id=event_id)
    with httpx.Client(timeout=raw.DEFAULT_TIMEOUT) as client:
        url = f"{replica.base_url}{prefix}/queue/data"
        with client.stream("GET", url, params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[len("data:") :])
                transcript.lines.append(line)
                transcript.messages.append(message)
                if len(transcript.generating) == 3 and message["msg"] == "process_generating":
                    raw.cancel(
                        replica.base_url,
                        prefix=prefix,
                        session_hash=session,
                        fn_index=layout.fn_index,
                        event_id=event_id,
                    )
                if message["msg"] == "close_stream":
                    break
    return transcript


def record(name: str) -> list[Path]:
    layout = LAYOUTS[name]
    written: list[Path] = []

    def write(suffix: str, text: str) -> None:
        path = OUT_DIR / f"{name}.{suffix}"
        path.write_text(text, encoding="utf-8")
        written.append(path)

    with bed.running(name) as replica:
        prefix = replica.spec.api_prefix
        config = raw.get_config(replica.base_url)
        write("config.json", json.dumps(trim_config(config, layout.fn_index), indent=1) + "\n")

        session = raw.new_session_hash()
        history: list[list[str]] = [list(pair) for pair in HISTORY]
        if not layout.sends_history:  # Qwen3: make the earlier turn in this session first
            first = raw.run_queued(
                replica.base_url,
                layout.fn_index,
                layout.data(history[0][0]),
                prefix=prefix,
                session_hash=session,
            )
            history = [[history[0][0], layout.answer(first.completed["output"]["data"])]]
        data = layout.data(QUERY, history)
        if name == "1m_g4":
            add_data = [{"files": [], "text": QUERY}, data[0][:-1], []]
            added = raw.run_predict(replica.base_url, 1, add_data, session_hash=session)
            add_request = {"fn_index": 1, "data": add_data, "session_hash": session}
            write("add.json", json.dumps({"request": add_request, "response": added}, indent=1))
            data = [added["data"][1], None, 0]
        write("echo.request.json", json.dumps(join_body(layout, data, session), indent=1) + "\n")
        echo = raw.run_queued(
            replica.base_url, layout.fn_index, data, prefix=prefix, session_hash=session
        )
        assert layout.answer(echo.completed["output"]["data"]) == layout.expected(QUERY, history)
        write("echo.sse", sse_text(echo))

        error = raw.run_queued(
            replica.base_url, layout.fn_index, layout.data("script:error:3"), prefix=prefix
        )
        write("error.sse", sse_text(error))
        write("cancel.sse", sse_text(cancelled(replica, layout)))
    return written


def main(argv: list[str]) -> int:
    names = argv or list(bed.REPLICAS)
    OUT_DIR.mkdir(exist_ok=True)
    for name in names:
        for path in record(name):
            print(path.relative_to(OUT_DIR.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
