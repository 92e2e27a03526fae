"""When a run that streams may leave the conversation the page shows as it is (pure: no
Streamlit).

Every Streamlit run re-sends every element it draws. A question sent with 100 earlier
turns on the page would queue ~300 KB of history ahead of the answer's first token, and
the browser re-renders all of it first (measured: the first answer text 1.4 s after
Enter instead of 0.1 s). Streamlit's browser code keeps a container's children when a
run draws the same kind of container at the same place again, until that run finishes;
so a run that streams the answer to a question just asked draws the history container
empty and only the new question after it, and the page's final rerun draws the whole
conversation again. :func:`can_keep` says when what the browser already shows is exactly
what that run would draw."""

from __future__ import annotations

from dataclasses import dataclass

from .conversation import Chat, Message, Role

__all__ = ["Drawn", "can_keep", "drawn"]


@dataclass(frozen=True, slots=True)
class Drawn:
    """What a run drew in the history container: where the container is (its delta
    path) and the messages it showed, in a state with no controls that only apply to
    the last message (an error's way out, an editor, a comparison's choice)."""

    path: tuple[int, ...]
    messages: tuple[Message, ...]


def drawn(chat: Chat, path: tuple[int, ...], *, plain: bool) -> Drawn | None:
    """The record of a history drawn whole; None when it cannot be kept later (it shows
    controls for the last message, or nothing was drawn)."""
    if not plain or not chat.messages or chat.pending:
        return None
    last = chat.messages[-1]
    if last.role is not Role.ASSISTANT or last.error is not None or last.streaming:
        return None
    return Drawn(path, chat.messages)


def can_keep(chat: Chat, before: Drawn | None, path: tuple[int, ...]) -> bool:
    """Whether this run, which streams the answer to ``chat``'s last message, may leave
    the history container as the run before drew it: the container is at the same place,
    the only new message is the question just asked, and everything before it is what
    was drawn."""
    return (
        before is not None
        and chat.pending
        and chat.asking is None
        and before.path == path
        and len(chat.messages) == len(before.messages) + 1
        and chat.messages[-1].role is Role.USER
        and chat.messages[:-1] == before.messages
    )
