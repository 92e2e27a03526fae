"""Display helpers (pure: no Streamlit): status lines, captions, Space states, and the
text transforms applied before Markdown is drawn. Every transform is linear in its input:
one message must never be able to hold the server's CPU."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import qwen_core
from qwen_core import events as ev

from .mdlines import Kind, LineKinds, maybe_block_start

if TYPE_CHECKING:
    from .conversation import Message

__all__ = [
    "queue_line", "model_caption", "capabilities", "space_state", "override_state",
    "model_label", "clean_text", "escape_markdown", "redact", "display_markdown",
]

def queue_line(queue: ev.QueueStatus | None, started: bool = False) -> str:
    """The waiting line shown while the Space's queue holds the request."""
    if started:
        return "The Space is working on it…"
    if queue is None:
        return "Connecting to the Space…"
    parts = ["Waiting in the Space's queue"]
    if queue.rank is not None:
        where = f"position {queue.rank + 1}"
        if queue.queue_size:
            where += f" of {max(queue.queue_size, queue.rank + 1)}"
        parts.append(where)
    if queue.eta is not None and queue.eta >= 0.5:
        parts.append(f"about {queue.eta:.0f} s")
    return " · ".join(parts)


def model_caption(message: Message) -> str:
    """Caption under an answer: who wrote it, and how it ended."""
    parts = [f"{model_label(message.model)} · {message.model}"]
    if message.stopped:
        parts.append(":material/stop_circle: stopped")
    if message.error:
        parts.append(":material/error: failed")
    return " · ".join(parts)


def capabilities(model: qwen_core.Model) -> str:
    """``System prompt ✓ · History ✓ · Reasoning ✗`` for one model."""
    def mark(ok: bool) -> str:
        return "✓" if ok else "✗"

    history = "native" if model.supports_history else "in the prompt"
    return (
        f"System prompt {mark(model.supports_system)} · History {history}"
        f" · Reasoning {mark(model.supports_reasoning)}"
    )


_STAGES = {
    "RUNNING": "running",
    "RUNNING_BUILDING": "running",
    "RUNNING_APP_STARTING": "running",
    "SLEEPING": "sleeping",
    "PAUSED": "sleeping",
    "STOPPED": "sleeping",
    "BUILDING": "building",
    "APP_STARTING": "building",
    "BUILD_ERROR": "error",
    "RUNTIME_ERROR": "error",
    "CONFIG_ERROR": "error",
    "NO_APP_FILE": "error",
}


def space_state(stage: Any) -> str:
    """The Hub's ``runtime.stage`` -> running / sleeping / building / error / unknown."""
    return _STAGES.get(stage.upper(), "unknown") if isinstance(stage, str) else "unknown"


def override_state(url: str) -> str:
    """State shown for a Space reached at a configured URL (the Hub is not asked):
    ``local`` for a loopback host, else ``custom URL``."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return "local"
    try:
        return "local" if ipaddress.ip_address(host).is_loopback else "custom URL"
    except ValueError:
        return "custom URL"




# --- text transforms before Markdown ----------------------------------------------------

_MD_SPECIAL = frozenset("\\`*_{}[]()<>#+-.!|~:$&\"'=^")
_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*@")
_SURROGATE = re.compile("[\ud800-\udfff]")
_WWW = re.compile(r"www\\\.", re.I)


def model_label(model_id: str | None) -> str:
    model = qwen_core.MODELS.get(model_id or "")
    return model.label if model else (model_id or "unknown model")


def clean_text(text: str) -> str:
    """``text`` with lone surrogates (which a Space can send as ``"\\ud800"`` in JSON, and
    which Streamlit cannot serialise) replaced by U+FFFD. Linear; no copy when clean."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def escape_markdown(text: str, limit: int | None = 200) -> str:
    """``text`` (from a URL, a setting, a file name) shown literally inside Markdown: every
    character Markdown or Streamlit's directives could act on is backslash-escaped, newlines
    become spaces, and it is cut to ``limit`` characters."""
    text = clean_text(text)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    text = " ".join(text.split())
    text = "".join("\\" + c if c in _MD_SPECIAL else c for c in text)
    # GFM links bare URLs even with their punctuation escaped: a zero-width space after
    # the scheme (and in "www.") keeps them plain text
    if "\\:" in text:
        text = text.replace("\\:/", "\\:\u200b/")
    if "www" in text.lower():
        text = _WWW.sub(lambda m: m.group(0)[:3] + "\u200b" + m.group(0)[3:], text)
    return text


def redact(text: str) -> str:
    """Credentials in URLs (``scheme://user:password@host``) replaced by ``***``."""
    return _CREDENTIALS.sub(r"\1***@", text) if "@" in text else text


def _code_runs(text: str) -> tuple[list[tuple[int, int]], int | None]:
    """Spans ``[start, end)`` of inline code (CommonMark: a run of n backticks up to the
    next run of exactly n), and where the first run that closes nothing starts (later
    text may still close it). O(n log n): each run finds its closer by bisection."""
    import bisect

    runs: list[tuple[int, int]] = []  # (start, length)
    i, n = 0, len(text)
    while True:
        i = text.find("`", i)
        if i < 0:
            break
        j = i
        while j < n and text[j] == "`":
            j += 1
        runs.append((i, j - i))
        i = j
    by_length: dict[int, list[int]] = {}
    for index, (_, length) in enumerate(runs):
        by_length.setdefault(length, []).append(index)
    spans: list[tuple[int, int]] = []
    unmatched: int | None = None
    k = 0
    while k < len(runs):
        start, length = runs[k]
        same = by_length[length]
        at = bisect.bisect_right(same, k)
        if at < len(same):
            close = same[at]
            spans.append((start, runs[close][0] + length))
            k = close + 1
        else:
            if unmatched is None:
                unmatched = start
            k += 1
    return spans, unmatched


def _pair_spans(text: str, opener: str, closer: str) -> tuple[list[tuple[int, int]], int | None]:
    """``opener…closer`` pairs left to right (each opener takes the next closer), in one
    pass, and where the first opener without a closer stands."""
    spans: list[tuple[int, int]] = []
    i = 0
    while True:
        a = text.find(opener, i)
        if a < 0:
            return spans, None
        b = text.find(closer, a + len(opener) + 1)
        if b < 0:
            return spans, a  # no closer after this opener: none after any later one either
        spans.append((a, b + len(closer)))
        i = b + len(closer)


def _pairs(text: str, opener: str, closer: str, wrap: str, strip: bool) -> str:
    """Replace ``opener…closer`` by ``wrap…wrap`` left to right, in one pass."""
    if opener not in text:
        return text
    out: list[str] = []
    i = 0
    for a, end in _pair_spans(text, opener, closer)[0]:
        inner = text[a + len(opener):end - len(closer)]
        out.append(text[i:a])
        out.append(f"{wrap}{inner.strip() if strip else inner}{wrap}")
        i = end
    out.append(text[i:])
    return "".join(out)


def _prose(text: str, images: bool) -> str:
    """LaTeX delimiters converted and (unless ``images``) image syntax disarmed, outside
    inline code."""
    pieces: list[str] = []
    last = 0
    for start, end in _code_runs(text)[0] if "`" in text else ():
        pieces.append(_plain(text[last:start], images))
        pieces.append(text[start:end])
        last = end
    pieces.append(_plain(text[last:], images))
    return "".join(pieces)


def _plain(text: str, images: bool) -> str:
    text = _pairs(text, "\\[", "\\]", "$$", strip=False)
    text = _pairs(text, "\\(", "\\)", "$", strip=True)
    if not images and "![" in text:
        text = _disarm_images(text)
    return text


def _disarm_images(text: str) -> str:
    """``![alt](url)`` -> ``\\![alt](url)``: an escaped ``!`` turns the image into a link,
    so the browser fetches nothing until the person clicks it."""
    out: list[str] = []
    i = 0
    while True:
        a = text.find("![", i)
        if a < 0:
            break
        slashes = 0  # backslashes just before: an odd count escapes the "!" already
        while a - slashes - 1 >= 0 and text[a - slashes - 1] == "\\":
            slashes += 1  # (each run is walked once: runs end at the previous "![")
        out.append(text[i:a])
        out.append("!" if slashes % 2 else "\\!")
        i = a + 1
    out.append(text[i:])
    return "".join(out)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def display_markdown(text: str, *, images: bool = False) -> str:
    """What the page hands to ``st.markdown`` for a message or an answer. Qwen writes
    LaTeX as ``\\(...\\)`` and ``\\[...\\]``; Streamlit's Markdown renders ``$...$`` and
    ``$$...$$``: converted outside code blocks and inline code. Remote images are shown as
    links unless ``images`` (a setting) allows them. Lone surrogates are replaced.

    Each paragraph (text between blank lines, outside fenced code and HTML blocks) is
    converted on its own, as Markdown itself treats inline syntax: so a text cut at blank
    lines converts exactly as the whole does (see :mod:`qwen_chat.blocks`). Linear in the
    text; the stored text is left untouched."""
    text = clean_text(text)
    if "\\(" not in text and "\\[" not in text and (images or "![" not in text):
        return text
    out: list[str] = []
    para: list[str] = []
    kinds = LineKinds()
    for line in _lines(text):
        if kinds.kind(line) is Kind.TEXT:
            para.append(line)
            continue
        if para:
            out.append(_prose("".join(para), images))
            para = []
        out.append(line)
    if para:
        out.append(_prose("".join(para), images))
    return "".join(out)


def stable_prefix_length(text: str) -> int:
    """How much of a growing ``text`` can be shown now: the length of its longest prefix
    whose :func:`display_markdown` no later text can change (so a streamed display only
    ever grows). Held back: an unclosed ``\\(`` or ``\\[``, inline code not closed yet,
    a trailing ``!`` or backslash, and an unfinished line that may open a fence or an
    HTML block."""
    kinds = LineKinds()
    para_start = 0
    pos = 0
    end_of_text = len(text)
    for line in _lines(text):
        end = pos + len(line)
        if not line.endswith(("\n", "\r")):  # the unfinished last line
            if not kinds.in_code and maybe_block_start(line):
                end_of_text = pos
            break
        if kinds.kind(line) is not Kind.TEXT:
            para_start = end
        pos = end
    if kinds.in_code:
        return end_of_text  # inside code: shown as it comes
    return para_start + _settled(text[para_start:end_of_text])


def _settled(para: str) -> int:
    """Length of the part of an unfinished paragraph that later text cannot change."""
    limit = len(para)
    spans: list[tuple[int, int]] = []
    if "`" in para:  # a run of backticks that closes nothing may still be closed later
        spans, unmatched = _code_runs(para)
        if unmatched is not None:
            limit = unmatched
        if para.endswith("`") and spans and spans[-1][1] == len(para):
            # a closing run at the very end may still grow into another length
            limit = min(limit, spans[-1][0])
    piece_start = max((e for _, e in spans if e <= limit), default=0)
    piece = para[piece_start:limit]
    for opener, closer in (("\\[", "\\]"), ("\\(", "\\)")):
        open_at = _pair_spans(piece, opener, closer)[1]
        if open_at is not None:
            limit = min(limit, piece_start + open_at)
    while limit > 0 and para[limit - 1] in "!\\":
        limit -= 1
    return limit
