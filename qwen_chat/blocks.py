"""Where a Markdown answer may be cut into blocks that render exactly as the whole does
(pure: no Streamlit).

Streaming re-sends the open element on every flush; a finished block that becomes an
element of its own is sent once. :class:`BlockSplitter` finds finished blocks in a growing
answer; :func:`split_blocks` cuts a stored answer at the same places, so an answer looks
the same while it streams and after a reload.

A cut is made only at a blank line whose next line starts at the margin, so that nothing
can continue across it, and never:

- inside a fenced code block or an HTML block that runs to an end marker;
- inside a list (a list item or an indented line after the blank line continues it) or
  an indented code block;
- inside ``$$`` … ``$$`` math (inline syntax never crosses a blank line, and
  :func:`~qwen_chat.display.display_markdown` converts paragraph by paragraph);
- anywhere at all once the answer defines a link reference or footnote (``[x]: …``),
  which applies to the whole document.

A decision at a blank line needs the next line whole (or the end of the answer), so the
streaming splitter and :func:`split_blocks` cut at the same places."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from .display import display_markdown, stable_prefix_length
from .draft import Draft
from .mdlines import Kind, LineKinds

__all__ = ["BlockSplitter", "WholeBlock", "split_blocks", "stream_blocks", "close_block"]

_LIST_ITEM = re.compile(r" {0,3}(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")
_REFERENCE = re.compile(r" {0,3}\[[^\]\n]+\]:")
_ITEM_PREFIX = re.compile(r"[-+*]|\d{1,9}[.)]?")  # may still become a list item's marker


class BlockSplitter:
    """Finds the ends of finished blocks in a growing text, line by line (each line is
    looked at once). :meth:`feed` takes the whole text so far and returns the new cut
    offsets; with ``final=True`` the text is complete."""

    def __init__(self) -> None:
        self.cuts: list[int] = []
        self.block_start = 0
        self._pos = 0  # start of the first line not yet looked at
        self._kinds = LineKinds()
        self._in_list = False
        self._blank = False  # a blank line was seen since the last non-blank one
        self._math = 0  # "$$" seen in this block, outside code
        self.disabled = False  # a link reference definition: no more cuts

    def feed(self, text: str, final: bool = False) -> list[int]:
        new: list[int] = []
        n = len(text)
        while self._pos < n:
            end = text.find("\n", self._pos)
            if end < 0:
                if not final:
                    # the cut before a line is mostly clear from its first characters
                    # (a list item's marker): no need to wait for the whole line
                    if self._blank and (early := self._early(text[self._pos:])) is not None:
                        self._blank = False
                        if early:
                            new.append(self._cut(self._pos))
                    break
                end = n
            else:
                end += 1
            cut = self._line(text, self._pos, text[self._pos:end])
            if cut is not None:
                new.append(cut)
            self._pos = end
        self.cuts += new
        return new

    @property
    def pending(self) -> int | None:
        """Offset of a place after a blank line where a cut is not decided yet (the next
        line is not long enough to tell); text past it may still go to another block."""
        return self._pos if self._blank else None

    def _early(self, partial: str) -> bool | None:
        """Whether a cut goes before a line of which only ``partial`` has come (the
        same answer as for the whole line), or None while its first characters cannot
        tell: blank so far, or, in a list, what may still become another item's marker
        (``-``, ``12``, ``3.``)."""
        first = partial[0]
        if first in " \t\r":
            return False if partial.strip() else None  # indented: never a cut
        if self._in_list and _ITEM_PREFIX.fullmatch(partial):
            return None
        return self._cut_allowed(partial)

    def _cut_allowed(self, line: str) -> bool:
        return (not self.disabled and line[0] not in " \t"
                and not (self._in_list and _LIST_ITEM.match(line))
                and self._math % 2 == 0)

    def _cut(self, at: int) -> int:
        self.block_start = at
        self._in_list = False
        self._math = 0
        return at

    def _line(self, text: str, start: int, line: str) -> int | None:
        in_code = self._kinds.in_code
        cut = None
        if self._blank and not in_code and line.strip():
            self._blank = False
            if self._cut_allowed(line):
                cut = self._cut(start)
        kind = self._kinds.kind(line)
        if kind is Kind.BLANK:
            self._blank = True
        elif kind is Kind.TEXT:
            if _REFERENCE.match(line):
                self.disabled = True
            if _LIST_ITEM.match(line):
                self._in_list = True
            self._math += line.count("$$")
        return cut


def split_blocks(text: str) -> list[str]:
    """``text`` cut into blocks that render, one element each, as the whole renders; the
    blocks joined give ``text`` back. A text defining link references stays whole."""
    splitter = BlockSplitter()
    splitter.feed(text, final=True)
    if splitter.disabled:
        return [text]
    bounds = [0, *splitter.cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def close_block() -> None:
    """Yielded to ``st.write_stream`` after a finished block: it completes that element."""


class WholeBlock:
    """A finished block none of which is on screen yet (it came whole within one batch).
    ``st.write_stream`` calls it, as any callable, and it draws the block as one element
    with ``draw`` (``st.markdown``): one message to the browser, where streaming it would
    send the open element and then its final form."""

    __slots__ = ("draw", "text")

    def __init__(self, text: str, draw: Callable[[str], object]) -> None:
        self.text = text
        self.draw = draw

    def __call__(self) -> None:
        self.draw(self.text)


def stream_blocks(
    batches: Iterator[object], draft: Draft, restart: list[bool], *, images: bool = False,
    cap: int | None = None, draw: Callable[[str], object] | None = None,
) -> Iterator[str | Callable[[], None]]:
    """What ``st.write_stream`` gets: the answer as the page will show it once stored
    (LaTeX converted, remote images disarmed, cut at ``cap``; see
    :func:`~qwen_chat.display.display_markdown`), so nothing is fetched while it
    streams either, cut into blocks (:mod:`qwen_chat.blocks`). A finished block is
    completed and closed with a no-op callable — ``st.write_stream`` then turns it
    into an element of its own, sent once — and only the open block after it is
    re-sent on each flush, so the bytes sent grow with the answer, not its square.
    A block that came whole within one batch is drawn at once (:class:`WholeBlock`,
    with ``draw``). Within the open block only what later text cannot change is shown
    (:func:`~qwen_chat.display.stable_prefix_length`), so it only grows."""
    splitter = BlockSplitter()
    rewrites = draft.rewrites
    done = 0  # raw offset where the open block starts
    shown = ""  # display text of the open block already sent
    final = False
    size = -1
    while not final:
        try:
            next(batches)
        except StopIteration:
            final = True
        if draft.rewrites != rewrites:  # the Space rewrote its answer: draw it anew
            restart.append(True)
            return
        text = draft.text if cap is None or draft.size <= cap else draft.text[:cap]
        if len(text) == size and not final:
            continue
        size = len(text)
        for cut in splitter.feed(text, final=final):
            block = display_markdown(text[done:cut], images=images)
            if not block.startswith(shown):  # not expected (see the tests): redraw
                restart.append(True)
                return
            if not shown and block and draw is not None:
                yield WholeBlock(block, draw)
            else:
                yield block[len(shown):]
                yield close_block
            done, shown = cut, ""
        tail = text[done:]
        if final:
            open_text = display_markdown(tail, images=images)
        else:  # never past an undecided cut, only what later text cannot change
            pending = splitter.pending
            if pending is not None:
                tail = tail[:pending - done]
            open_text = display_markdown(tail[:stable_prefix_length(tail)],
                                         images=images)
        if not open_text.startswith(shown):
            restart.append(True)
            return
        if len(open_text) > len(shown):
            yield open_text[len(shown):]
            shown = open_text
