"""``python -m qwen_core "question" --model ID [--system S]``, ``--list`` and ``--doctor``."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import TextIO

from . import doctor
from .client import stream_events
from .errors import InvalidRequest, SpaceError
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


def _event(check: doctor.SpaceCheck) -> str:
    """Where the chat event is: ``0``, ``0->5`` (moved), ``0->?`` (gone), ``0?`` (unchecked)."""
    want, found = check.fn_index_expected, check.fn_index_found
    if not check.checked:
        return f"{want}?"
    if found == want:
        return str(want)
    return f"{want}->{'?' if found is None else found}"


def _doctor_rows(checks: Sequence[doctor.SpaceCheck]) -> str:
    rows = [f"{'space':<24} {'verdict':<12} {'gradio':<8} {'protocol':<9} {'event':<6} "
            "url  detail"]
    for c in checks:
        verdict = "moved (fits)" if c.state == "moved" else c.state
        rows.append(
            f"{c.space_id:<24} {verdict:<12} {c.gradio_version or '-':<8} "
            f"{c.protocol or '-':<9} {_event(c):<6} {c.base_url}  {c.detail}"
        )
    fit = sum(c.fits for c in checks)
    misfit = sum(c.checked and not c.fits for c in checks)
    unchecked = sum(not c.checked for c in checks)
    rows.append(f"{fit} fit, {misfit} no longer fit, {unchecked} not checked "
                f"(exit {doctor.exit_code(checks)})")
    return "\n".join(rows) + "\n"


def _doctor(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Check the named Spaces (default: all) live; print one row each; exit 0, 1 or 2."""
    if args.question is not None:
        parser.error("--doctor takes Space or model names, not a question")
    names: list[str] = args.doctor
    if args.base_url is not None and len(names) != 1:
        parser.error("--doctor with --base-url checks one Space: name it, e.g. "
                     "--doctor qwen-2.5-max --base-url http://127.0.0.1:7860")
    timeout = doctor.DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    out, err = _Terminal(sys.stdout), _Terminal(sys.stderr)
    try:
        if args.base_url is not None:
            checks = [doctor.check_space(names[0], base_url=args.base_url, timeout=timeout)]
        else:
            checks = doctor.check_all(names or None, timeout=timeout)
    except InvalidRequest as exc:  # an unknown name, a malformed URL: nothing was checked
        err.write(f"error: {type(exc).__name__}: {exc}\n")
        return 2
    except KeyboardInterrupt:
        err.write("\n[stopped]\n")
        return 130
    out.write(_doctor_rows(checks))
    out.flush()
    return doctor.exit_code(checks)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qwen_core",
        description="Ask a Qwen model on its Hugging Face Space; the answer streams to stdout.",
        epilog="Env: QWEN_SPACE_URLS='Owner/Space=http://host:port,...' points Spaces at "
        "duplicates or local apps; HF_TOKEN is sent only to Hugging Face or those URLs. "
        "--doctor reads each Space's GET /config (no chat is started) and prints one row "
        "per Space: fits, moved (the chat event has another fn_index, found by its api_name "
        "or shape: still fits), changed, unsupported (Gradio 3 or an unknown queue "
        "protocol), asleep or unreachable. Its exit status: 0 every adapter fits; 1 some "
        "adapter no longer fits (changed or unsupported); 2 some Space could not be checked "
        "(asleep or unreachable) and none misfits, or a bad command line.",
    )
    parser.add_argument("question", nargs="?", help="your message ('-' reads stdin)")
    parser.add_argument("--model", "-m", default="qwen-2.5-max", help="model id or alias")
    parser.add_argument("--system", "-s", help="system prompt (default: the Space's own)")
    parser.add_argument("--list", action="store_true", help="list every model and exit")
    parser.add_argument("--doctor", nargs="*", metavar="SPACE",
                        help="check the Spaces (default: all; or these Space/model names) "
                        "still fit qwen_core's adapters, then exit 0, 1 or 2 (see below)")
    parser.add_argument("--base-url", help="the Space's root URL (overrides QWEN_SPACE_URLS)")
    parser.add_argument("--timeout", type=float,
                        help="longest silence tolerated, seconds (--doctor: per Space, "
                        f"default {doctor.DEFAULT_TIMEOUT:g})")
    parser.add_argument("--thinking-budget", type=int, help="Qwen3: thinking budget (thousands)")
    parser.add_argument("--show-reasoning", action="store_true",
                        help="print reasoning (thinking) to stderr")
    args = parser.parse_args(argv)
    if args.list:
        print(_list())
        return 0
    if args.doctor is not None:
        return _doctor(parser, args)
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
