"""``python -m qwen_core "question" --model ID [--system S]`` and ``--list``."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import TextIO

from .client import stream_events
from .errors import SpaceError
from .events import Done, QueueStatus, ReasoningDelta, Status, TextDelta, TextReplaced
from .models import MODELS

# C0 controls but \t and \n, DEL, and C1 controls (\x9b is a one-byte CSI on some
# terminals): a Space's text must not move the cursor, retitle the window, write the
# clipboard (OSC 52) or anything else a terminal does on an escape sequence. Stripping ESC
# itself means pieces split across deltas cannot join into a sequence.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]+")


def sanitize(text: str) -> str:
    """``text`` without terminal control characters (``\n`` and ``\t`` stay); linear."""
    return _CONTROL.sub("", text)


class _Terminal:
    """Writes sanitized text, never failing on the stream's encoding: what it cannot
    encode (a lone surrogate, CJK on an ASCII terminal) is replaced, not a traceback."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = sanitize(text)
        try:
            self.stream.write(text)
        except UnicodeEncodeError:
            encoding = getattr(self.stream, "encoding", None) or "utf-8"
            self.stream.write(
                text.encode(encoding, "replace").decode(encoding, "replace")
            )

    def flush(self) -> None:
        self.stream.flush()


def _list() -> str:
    rows = ["model id              space                      system history reasoning"]
    for model in MODELS.values():
        rows.append(
            f"{model.id:<21} {model.space_id:<26} "
            f"{'yes' if model.supports_system else 'no':<6} "
            f"{'native' if model.supports_history else 'flat':<7} "
            f"{'yes' if model.supports_reasoning else 'no'}"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qwen_core",
        description="Ask a Qwen model on its Hugging Face Space; the answer streams to stdout.",
        epilog="Env: QWEN_SPACE_URLS='Owner/Space=http://host:port,...' points Spaces at "
        "duplicates or local apps; HF_TOKEN is sent only to Hugging Face or those URLs.",
    )
    parser.add_argument("question", nargs="?", help="your message ('-' reads stdin)")
    parser.add_argument("--model", "-m", default="qwen-2.5-max", help="model id or alias")
    parser.add_argument("--system", "-s", help="system prompt (default: the Space's own)")
    parser.add_argument("--list", action="store_true", help="list every model and exit")
    parser.add_argument("--base-url", help="the Space's root URL (overrides QWEN_SPACE_URLS)")
    parser.add_argument("--timeout", type=float, help="longest silence tolerated, seconds")
    parser.add_argument("--thinking-budget", type=int, help="Qwen3: thinking budget (thousands)")
    parser.add_argument("--show-reasoning", action="store_true",
                        help="print reasoning (thinking) to stderr")
    args = parser.parse_args(argv)
    if args.list:
        print(_list())
        return 0
    if args.question is None:
        parser.error("a question is needed (or --list)")
    question = sys.stdin.read() if args.question == "-" else args.question
    messages = []
    if args.system is not None:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": question})
    options = {} if args.thinking_budget is None else {"thinking_budget": args.thinking_budget}
    out, err = _Terminal(sys.stdout), _Terminal(sys.stderr)
    wrote = False
    try:
        with stream_events(args.model, messages, base_url=args.base_url,
                           timeout=args.timeout, **options) as events:
            for event in events:
                if isinstance(event, TextDelta):
                    out.write(event.text)
                    out.flush()
                    wrote = True
                elif isinstance(event, TextReplaced):
                    out.write(f"\n[the Space rewrote its answer]\n{event.text}")
                elif isinstance(event, ReasoningDelta) and args.show_reasoning:
                    err.write(event.text)
                elif isinstance(event, QueueStatus) and event.rank is not None:
                    eta = f", about {event.eta:.0f} s" if event.eta else ""
                    err.write(f"[queue: position {event.rank + 1}{eta}]\n")
                elif isinstance(event, Status) and event.text and event.level != "info":
                    err.write(f"[{event.level}: {event.text}]\n")
                elif isinstance(event, Done):
                    out.write("\n")
    except SpaceError as exc:
        if wrote:
            out.write("\n")
        err.write(f"error: {type(exc).__name__}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        err.write("\n[stopped]\n")
        return 130
    return 0
