"""Markdown lines as CommonMark's block parser sees them, as far as this app needs:
fenced code and HTML blocks (whose lines are left alone), blank lines, and the rest
(pure; one state machine shared by the display transform and the block splitter, so
both agree on what is code)."""

from __future__ import annotations

import re
from enum import Enum

__all__ = ["Kind", "LineKinds"]

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_HTML_ENDS = (  # CommonMark HTML blocks of types 1-5: they run to an end marker
    (re.compile(r" {0,3}<(?:script|pre|style|textarea)(?:[\s>]|$)", re.I),
     ("</script>", "</pre>", "</style>", "</textarea>")),
    (re.compile(r" {0,3}<!--"), ("-->",)),
    (re.compile(r" {0,3}<\?"), ("?>",)),
    (re.compile(r" {0,3}<![A-Za-z]"), (">",)),
    (re.compile(r" {0,3}<!\[CDATA\["), ("]]>",)),
)
_HTML_BLOCK = re.compile(  # type 6: runs to a blank line, may interrupt a paragraph
    r" {0,3}</?(?:address|article|aside|base|basefont|blockquote|body|caption|center|col"
    r"|colgroup|dd|details|dialog|dir|div|dl|dt|fieldset|figcaption|figure|footer|form"
    r"|frame|frameset|h[1-6]|head|header|hr|html|iframe|legend|li|link|main|menu|menuitem"
    r"|nav|noframes|ol|optgroup|option|p|param|search|section|summary|table|tbody|td"
    r"|tfoot|th|thead|title|tr|track|ul)(?:[ \t]|/?>|$)", re.I)
_HTML_TAG_LINE = re.compile(  # type 7: one whole tag alone on its line, not in a paragraph
    r" {0,3}(?:<[A-Za-z][A-Za-z0-9-]*(?:\s+[A-Za-z_:][\w.:-]*(?:\s*=\s*(?:[^\s\"'=<>`]+"
    r"|'[^']*'|\"[^\"]*\"))?)*\s*/?>|</[A-Za-z][A-Za-z0-9-]*\s*>)\s*$")


class Kind(Enum):
    TEXT = "text"  # a line of a paragraph, list, table, heading, quote …
    BLANK = "blank"
    FENCE = "fence"  # a fence line itself, or a line inside fenced code
    HTML = "html"  # a line of an HTML block


class LineKinds:
    """Feed lines in order (each with its newline); :meth:`kind` says what each one is.
    :attr:`in_code` tells whether the next line starts inside fenced code or an HTML
    block that only an end marker closes."""

    def __init__(self) -> None:
        self._fence: tuple[str, int] | None = None
        self._html_end: tuple[str, ...] | None = None
        self._html_block = False  # an HTML block that ends at a blank line
        self._para = False  # the previous line continues a paragraph

    @property
    def in_code(self) -> bool:
        return self._fence is not None or self._html_end is not None

    def kind(self, line: str) -> Kind:
        if self._fence is not None:
            if "`" in line or "~" in line:
                match = _FENCE.match(line)
                char, size = self._fence
                if match and match.group(1)[0] == char and len(match.group(1)) >= size \
                        and not line[match.end():].strip():
                    self._fence = None
            return Kind.FENCE
        if self._html_end is not None:
            lowered = line.lower()
            if any(end in lowered for end in self._html_end):
                self._html_end = None
            return Kind.HTML
        if not line.strip():
            self._html_block = self._para = False
            return Kind.BLANK
        if self._html_block:
            return Kind.HTML
        if "`" in line or "~" in line:
            match = _FENCE.match(line)
            if match and not (match.group(1)[0] == "`" and "`" in line[match.end():]):
                self._fence = (match.group(1)[0], len(match.group(1)))
                self._para = False
                return Kind.FENCE
        if "<" in line[:4]:
            for opener, ends in _HTML_ENDS:
                if opener.match(line):
                    lowered = line.lower()
                    if not any(end in lowered[4:] for end in ends):
                        self._html_end = ends
                    self._para = False
                    return Kind.HTML
            if _HTML_BLOCK.match(line) or (not self._para and _HTML_TAG_LINE.match(line)):
                self._html_block = True
                self._para = False
                return Kind.HTML
        self._para = True
        return Kind.TEXT


def maybe_block_start(line: str) -> bool:
    """An unfinished line that may still turn out to open a fence or an HTML block."""
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3 or not stripped:
        return False
    first = stripped[0]
    if first in "`~":  # a fence needs three: "`x` is ..." is a paragraph
        run = len(stripped) - len(stripped.lstrip(first))
        return run == len(stripped) or run >= 3
    # an HTML block starts with "<" and a letter, "/", "!" or "?"
    return first == "<" and (len(stripped) == 1 or stripped[1].isalpha()
                             or stripped[1] in "/!?")
