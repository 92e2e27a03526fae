"""OpenAI-style messages turned into what a Space needs: system, earlier turns, prompt."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRequest

__all__ = ["Conversation", "parse_messages", "flatten_history"]

_ROLES = frozenset({"system", "user", "assistant"})


@dataclass(frozen=True, slots=True)
class Conversation:
    """``system`` is None when the caller gave none (the Space's default applies)."""

    system: str | None
    turns: tuple[tuple[str, str], ...]  # earlier (user, assistant) pairs, oldest first
    prompt: str

    def size(self) -> int:
        """Characters the Space would receive (for the input-size guard)."""
        return len(self.prompt) + len(self.system or "") + sum(
            len(u) + len(a) for u, a in self.turns
        )


def _encodable(text: str, index: int) -> str:
    """Refuse text that cannot be sent as UTF-8 (a lone UTF-16 surrogate, e.g. from
    ``"\\ud800"`` in JSON): a clear InvalidRequest instead of an encoding error later."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequest(
                f"message {index}: the text holds an invalid character (a lone surrogate "
                f"{text[exc.start]!a} at position {exc.start}) that cannot be sent"
            ) from None
    return text


def _content_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return _encodable(content, index)
    if isinstance(content, list):  # OpenAI "parts": only text parts can be sent
        texts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(
                part.get("text"), str
            ):
                texts.append(part["text"])
            else:
                raise InvalidRequest(
                    f"message {index}: only text content can be sent to these Spaces"
                )
        return _encodable("".join(texts), index)
    raise InvalidRequest(f"message {index}: content must be a string, got {type(content).__name__}")


def parse_messages(messages: Iterable[Mapping[str, Any]]) -> Conversation:
    """Split messages into system text, (user, assistant) pairs and the final prompt.

    System messages anywhere are joined with blank lines. Consecutive user (or assistant)
    messages are joined so that pairs alternate. The last message must come from the user.
    """
    if isinstance(messages, (str, bytes)):
        raise InvalidRequest("messages must be a list of {'role', 'content'} dicts, not a string")
    systems: list[str] = []
    turns: list[tuple[str, str]] = []
    user: list[str] = []
    bot: list[str] = []
    count = 0
    last_role = None
    for i, message in enumerate(messages):
        count += 1
        if not isinstance(message, Mapping):
            raise InvalidRequest(f"message {i} must be a dict with 'role' and 'content'")
        role = message.get("role")
        if role not in _ROLES:
            raise InvalidRequest(
                f"message {i}: role must be system, user or assistant, got {role!r}"
            )
        text = _content_text(message.get("content"), i)
        if role == "system":
            systems.append(text)
            continue
        if role == "user":
            if bot:  # a new user message closes the previous pair
                turns.append(("\n\n".join(user), "\n\n".join(bot)))
                user, bot = [], []
            user.append(text)
        else:
            bot.append(text)
        last_role = role
    if count == 0:
        raise InvalidRequest("messages is empty: send at least one user message")
    if last_role != "user":
        raise InvalidRequest("the last message must come from the user")
    return Conversation(
        system="\n\n".join(systems) if systems else None,
        turns=tuple(turns),
        prompt="\n\n".join(user),
    )


def flatten_history(conv: Conversation) -> str:
    """One prompt holding the earlier turns, for Spaces whose event takes no history."""
    if not conv.turns:
        return conv.prompt
    lines = ["Earlier in this conversation:"]
    for user, assistant in conv.turns:
        lines.append(f"User: {user}")
        lines.append(f"Assistant: {assistant}")
    lines.append("")
    lines.append(f"Now answer the user's new message:\n{conv.prompt}")
    return "\n".join(lines)
