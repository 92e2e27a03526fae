"""Scripted behaviour shared by every replica Space.

Pure Python (no gradio import): the replica apps import it inside their gradio venvs and
the tests import it from the main venv to compute the exact text a replica will stream.

The script is chosen by the first word of the user's query:

- anything else: an echo of what reached the Space
  (``ECHO query=... | system=... | history=[...] | variant=...``), split into small tokens;
- ``script:repeat``: identical tokens ``ha ha ha " " ha``;
- ``script:unicode``: emoji (also multi-codepoint ones, one of them split across two
  tokens), CJK, a fenced Python block with indentation, and trailing spaces at the end;
- ``script:long:N``: exactly N tokens ``w0 `` ... ``w{N-1} ``;
- ``script:bytes:TOTAL:CHUNK``: TOTAL characters (no whitespace) in chunks of CHUNK;
- ``script:slow:N:MS``: N tokens ``s{i} `` with MS milliseconds before each token;
- ``script:error:K``: K tokens ``e{i} `` then the replica raises ``gr.Error(ERROR_MESSAGE)``;
- ``script:html``: an answer holding a ``<script>`` tag and an ``<img onerror>`` tag;
- ``script:markdown:N`` (or ``script:markdown:N:SEED``, ``script:markdown:N:SEED:MS``):
  exactly N tokens of a realistic Markdown answer (a title, paragraphs of ~40-120 tokens,
  headings, lists, code fences, tables, block quotes, inline code and math), its last
  token ``MARKDOWN_END``; with MS, MS milliseconds before each token (a model's pace);
- ``script:rich``: every Markdown construct the page draws (headings, nested lists, a
  table, LaTeX in all three forms, a block quote, raw HTML, CJK, emoji, code fences), the
  last fence never closed.

When ``thinking_budget`` is given and positive (the Qwen3 replica), the plan also has
reasoning tokens, streamed before the answer; the echo answer then names the budget.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

ERROR_MESSAGE = "Quota exceeded for this model (scripted)"
# What the Qwen2.5-1M replica shows before the first answer token.
THINKING_PLACEHOLDER = "Qwen is thinking..."
# What the Qwen2.5-1M replica appends after the answer (not part of the answer).
ONE_M_SUFFIX = (
    "\n<summary>Processed 1 document</summary>\n"
    "<details>Input: 1 message, 0 files. Model: qwen2.5-14b-instruct-1m.</details>"
)
# Alphabet of the ``script:bytes`` answer: no whitespace, no markup, 64 characters.
BYTES_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"

UNICODE_TOKENS: tuple[str, ...] = (
    "Emoji:",
    " ",
    "👍🏽",
    " ",
    "👨\u200d👩",  # the family emoji is split across two tokens on purpose
    "\u200d👧",
    " ",
    "🎉",
    "\n",
    "CJK: ",
    "你好",
    "，",
    "世界",
    "\n",
    "```python",
    "\n",
    "def greet(name):",
    "\n",
    "    ",
    'message = f"hi {name}"',
    "\n",
    "    ",
    "return message",
    "\n",
    "```",
    "\n",
    "end",
    "   ",
)
REPEAT_TOKENS: tuple[str, ...] = ("ha", "ha", "ha", " ", "ha")
HTML_TOKENS: tuple[str, ...] = (
    "Careful: ",
    "<script>",
    "alert(1)",
    "</script>",
    " and ",
    "<img src=x onerror=alert(1)>",
    " done.",
)

# The last token of every ``script:markdown`` answer (a character found nowhere else in
# it, so a page can tell the whole answer is on screen).
MARKDOWN_END = "\u220e"  # ∎

RICH_TEXT = "\n".join([
    "# Rich answer 🎉",
    "",
    "Intro with **bold**, *italic*, `inline code`, inline math \\(x^2\\) and $a+b$.",
    "",
    "## Lists",
    "",
    "- top item",
    "  - nested item with `code`",
    "    - deeper item",
    "- second top item",
    "  1. numbered inside",
    "  2. another one",
    "",
    "1. first",
    "2. second",
    "   - nested bullet",
    "",
    "## Table",
    "",
    "| Name | Value | Note |",
    "|:-----|------:|:----:|",
    "| alpha | 1 | 你好 |",
    "| beta | 2.5 | 🎉 |",
    "",
    "## Math",
    "",
    "Display math with brackets:",
    "",
    "\\[E=mc^2\\]",
    "",
    "And with dollars:",
    "",
    "$$",
    "\\int_0^1 x^2\\,dx = \\frac{1}{3}",
    "$$",
    "",
    "> A block quote",
    "> over two lines, with **bold**.",
    "",
    "### Raw HTML",
    "",
    "Shown as text: <b>not bold</b> <script>alert(1)</script> <img src=x onerror=alert(1)>",
    "",
    "<div>a div block</div>",
    "",
    "CJK: 你好，世界。日本語のテキスト。한국어 텍스트.",
    "Emoji: 👍🏽 👨\u200d👩\u200d👧 🎉",
    "",
    "```python",
    "def greet(name):",
    '    return f"hi {name}"',
    "```",
    "",
    "A last fence that never closes:",
    "",
    "```text",
    "still inside the fence",
    "    indented line",
    "last line of the open fence",
])

_TOKEN_RE = re.compile(r"\s+|\S{1,3}")


@dataclass(frozen=True)
class ScriptError:
    """An error the replica raises (as ``gr.Error(message)``) after ``after`` tokens."""

    message: str
    after: int


@dataclass(frozen=True)
class Plan:
    """What a replica streams for one request."""

    tokens: list[str]
    delay: float = 0.0  # seconds to wait before each answer token
    error: ScriptError | None = None
    reasoning: list[str] = field(default_factory=list)

    @property
    def answer(self) -> str:
        """The text streamed before the error (or the whole answer without one)."""
        if self.error is not None:
            return "".join(self.tokens[: self.error.after])
        return "".join(self.tokens)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)


def tokenize(text: str) -> list[str]:
    """Split text into small tokens: whitespace runs and up to 3 other characters."""
    return _TOKEN_RE.findall(text)


def history_json(history: Sequence[Sequence[str | None]]) -> str:
    """The compact JSON of the history pairs, as the echo answer shows it."""
    pairs = [list(pair) for pair in history]
    return json.dumps(pairs, ensure_ascii=False, separators=(",", ":"))


def echo_text(
    query: str,
    *,
    system: str,
    history: Sequence[Sequence[str | None]],
    variant: str | None,
    thinking_budget: int | None = None,
) -> str:
    text = (
        f"ECHO query={query} | system={system} | history={history_json(history)}"
        f" | variant={variant}"
    )
    if thinking_budget is not None:
        text += f" | thinking_budget={thinking_budget}"
    return text


def _ints(args: list[str], count: int, name: str) -> list[int]:
    if len(args) != count:
        raise ValueError(f"script:{name} takes {count} integer argument(s), got {args!r}")
    try:
        values = [int(arg) for arg in args]
    except ValueError as exc:
        raise ValueError(f"script:{name}: bad integer in {args!r}") from exc
    if any(value < 0 for value in values):
        raise ValueError(f"script:{name}: arguments must be >= 0, got {args!r}")
    return values


def bytes_chunks(total: int, chunk: int) -> list[str]:
    """``total`` characters of a repeating alphabet cut into ``chunk``-sized pieces."""
    if chunk <= 0:
        raise ValueError("script:bytes: CHUNK must be > 0")
    reps = total // len(BYTES_ALPHABET) + 1
    text = (BYTES_ALPHABET * reps)[:total]
    return [text[i : i + chunk] for i in range(0, total, chunk)]


# --- script:markdown --------------------------------------------------------------------

_WORDS = (
    "the", "model", "answer", "stream", "block", "token", "value", "result", "server",
    "client", "request", "cache", "memory", "time", "list", "table", "data", "user",
    "page", "text", "file", "query", "system", "queue", "event", "update", "state",
    "function", "return", "error", "simple", "fast", "large", "small", "each", "every",
    "which", "when", "because", "while", "about", "between", "without", "through",
    "should", "could", "might", "usually", "often", "always", "first", "second", "last",
    "next", "other", "same", "different", "important", "useful", "correct", "example",
    "number", "size", "limit", "budget", "browser", "network", "message", "markdown",
)
_CODE_LINES = (
    ("def summarize(items):", '    """Add up the values, skipping None."""',
     "    total = 0", "    for item in items:", "        if item is None:",
     "            continue", "        total += item.value", "    return total"),
    ("import json", "", "def load(path):", "    with open(path) as fh:",
     "        return json.load(fh)"),
    ("for i in range(10):", "    if i % 2:", '        print(i, "odd")', "    else:",
     '        print(i, "even")'),
    ("class Cache:", "    def __init__(self, size=128):", "        self.size = size",
     "        self.items = {}", "", "    def get(self, key):",
     "        return self.items.get(key)"),
)


class _Rng:
    """xorshift32: the same numbers in every Python (the replicas' venvs may differ)."""

    def __init__(self, seed: int) -> None:
        self.state = (seed * 2654435761 + 0x9E3779B9) & 0xFFFFFFFF or 1

    def below(self, n: int) -> int:
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x % n

    def between(self, lo: int, hi: int) -> int:
        return lo + self.below(hi - lo + 1)


def _words(rng: _Rng, count: int, capital: bool = False) -> list[str]:
    """``count`` word tokens, each but the first with its leading space."""
    out = []
    for i in range(count):
        word = _WORDS[rng.below(len(_WORDS))]
        if i == 0 and capital:
            word = word.capitalize()
        out.append(word if i == 0 else " " + word)
    return out


def _paragraph(rng: _Rng) -> list[str]:
    target = rng.between(40, 120)
    tokens: list[str] = []
    while len(tokens) < target:
        sentence = _words(rng, rng.between(6, 18), capital=True)
        if tokens:
            sentence[0] = " " + sentence[0]
        roll = rng.below(10)
        at = rng.between(1, len(sentence) - 1)
        if roll == 0:
            sentence[at:at] = [" `", _WORDS[rng.below(len(_WORDS))], "()`"]
        elif roll == 1:
            sentence[at:at] = [" **", _WORDS[rng.below(len(_WORDS))], "**"]
        elif roll == 2:
            sentence[at:at] = [" \\(", "x", "^", "2", "\\)"]
        elif roll == 3:
            sentence.insert(at, ",")
        tokens += sentence
        tokens.append(".")
    return tokens


def _list(rng: _Rng) -> list[str]:
    tokens: list[str] = []
    numbered = rng.below(3) == 0
    for i in range(rng.between(3, 6)):
        if tokens and not numbered and rng.below(4) == 0:
            tokens += ["  ", "-", " "] + _words(rng, rng.between(3, 8)) + ["\n"]
        tokens += [f"{i + 1}." if numbered else "-", " "]
        tokens += _words(rng, rng.between(4, 14), capital=True) + ["\n"]
    return tokens


def _code(rng: _Rng) -> list[str]:
    lines = _CODE_LINES[rng.below(len(_CODE_LINES))]
    tokens = ["```", "python", "\n"]
    for line in lines:
        tokens += tokenize(line) + ["\n"]
    return tokens + ["```", "\n"]


def _table(rng: _Rng) -> list[str]:
    tokens = tokenize("| Name | Value | Notes |") + ["\n"] + tokenize("|---|---:|---|") + ["\n"]
    for _ in range(rng.between(3, 6)):
        name = _WORDS[rng.below(len(_WORDS))]
        tokens += ["|", " " + name, " |", f" {rng.below(1000)}", " |"]
        tokens += _words(rng, rng.between(2, 6)) + [" |", "\n"]
    return tokens


def markdown_tokens(n: int, seed: int = 0) -> list[str]:
    """Exactly ``n`` tokens of a realistic Markdown answer, the last one ``MARKDOWN_END``
    (deterministic for ``n`` and ``seed``)."""
    if n <= 0:
        return []
    rng = _Rng(seed)
    tokens = ["#", " "] + _words(rng, rng.between(3, 6), capital=True) + ["\n\n"]
    previous = "heading"
    while len(tokens) < n:
        roll = rng.below(100)
        if roll < 10 and previous != "heading":
            kind = "heading"
            block = ["##", " "] + _words(rng, rng.between(2, 5), capital=True) + ["\n"]
        elif roll < 25:
            kind, block = "list", _list(rng)
        elif roll < 33:
            kind, block = "code", _code(rng)
        elif roll < 40:
            kind, block = "table", _table(rng)
        elif roll < 45:
            kind = "quote"
            block = [">", " "] + _words(rng, rng.between(8, 25), capital=True) + [".", "\n"]
        else:
            kind, block = "paragraph", _paragraph(rng) + ["\n"]
        tokens += block + ["\n"]
        previous = kind
    tokens = tokens[:n]
    tokens[-1] = MARKDOWN_END
    return tokens


def _reasoning(query: str, thinking_budget: int | None) -> list[str]:
    if thinking_budget is None or thinking_budget <= 0:
        return []
    return tokenize(f"THINK about {query!r} with budget {thinking_budget}k. Done thinking.")


def plan(
    query: str,
    *,
    system: str,
    history: Sequence[Sequence[str | None]],
    variant: str | None,
    thinking_budget: int | None = None,
) -> Plan:
    """The scripted reply to ``query`` (see the module docstring for the scripts)."""
    reasoning = _reasoning(query, thinking_budget)
    words = query.split(maxsplit=1)
    head = words[0] if words else ""
    if head.startswith("script:"):
        name, *args = head[len("script:") :].split(":")
        if name == "repeat":
            return Plan(tokens=list(REPEAT_TOKENS), reasoning=reasoning)
        if name == "unicode":
            return Plan(tokens=list(UNICODE_TOKENS), reasoning=reasoning)
        if name == "html":
            return Plan(tokens=list(HTML_TOKENS), reasoning=reasoning)
        if name == "rich":
            return Plan(tokens=tokenize(RICH_TEXT), reasoning=reasoning)
        if name == "markdown":
            if not 1 <= len(args) <= 3:
                raise ValueError(f"script:markdown takes N[:SEED[:MS]], got {args!r}")
            n, seed, ms = [*_ints(args, len(args), name), 0, 0][:3]
            return Plan(tokens=markdown_tokens(n, seed), delay=ms / 1000.0, reasoning=reasoning)
        if name == "long":
            (n,) = _ints(args, 1, name)
            return Plan(tokens=[f"w{i} " for i in range(n)], reasoning=reasoning)
        if name == "bytes":
            total, chunk = _ints(args, 2, name)
            return Plan(tokens=bytes_chunks(total, chunk), reasoning=reasoning)
        if name == "slow":
            n, ms = _ints(args, 2, name)
            return Plan(tokens=[f"s{i} " for i in range(n)], delay=ms / 1000.0, reasoning=reasoning)
        if name == "error":
            (k,) = _ints(args, 1, name)
            return Plan(
                tokens=[f"e{i} " for i in range(k)],
                error=ScriptError(ERROR_MESSAGE, after=k),
                reasoning=reasoning,
            )
    text = echo_text(
        query, system=system, history=history, variant=variant, thinking_budget=thinking_budget
    )
    return Plan(tokens=tokenize(text), reasoning=reasoning)


def expected_answer(
    query: str,
    *,
    system: str,
    history: Sequence[Sequence[str | None]] = (),
    variant: str | None = None,
    thinking_budget: int | None = None,
) -> str:
    """The exact answer text a replica streams for this request (before any error)."""
    return plan(
        query, system=system, history=history, variant=variant, thinking_budget=thinking_budget
    ).answer


def expected_reasoning(
    query: str,
    *,
    system: str = "",
    history: Sequence[Sequence[str | None]] = (),
    variant: str | None = None,
    thinking_budget: int | None = None,
) -> str:
    """The exact reasoning (thinking) text the Qwen3 replica streams before the answer."""
    return plan(
        query, system=system, history=history, variant=variant, thinking_budget=thinking_budget
    ).reasoning_text


def cleandoc(text: str) -> str:
    """``inspect.cleandoc``: what Gradio 4/6 Chatbots and modelscope_studio 0.5's Chatbot do
    to every string message before sending it (first line lstripped, common indentation
    removed, tabs expanded, leading/trailing blank lines dropped).

    The scripts are written so that ``cleandoc(answer) == answer`` for complete answers;
    partial answers ending in a newline lose that newline until the next token arrives.
    """
    return inspect.cleandoc(text)
