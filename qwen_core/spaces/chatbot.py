"""Chatbot value formats shared by several Spaces: building history in the format a
Chatbot input takes, and finding this turn's answer leaves in a Chatbot output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..conversation import Conversation
from .base import Layout, Path, Segment

__all__ = [
    "modelscope_message",
    "uses_messages_format",
    "tuples_history",
    "messages_history",
    "pair_segments",
    "message_segments",
]


def uses_messages_format(layout: Layout, input_index: int) -> bool:
    """Gradio 6 Chatbots only take messages; Gradio 5 says so in the component's props."""
    if layout.major is not None and layout.major >= 6:
        return True
    if input_index < len(layout.input_props):
        return layout.input_props[input_index].get("type") == "messages"
    return False


def modelscope_message(text: str) -> dict[str, Any]:
    """One side of a modelscope_studio (0.5) Chatbot pair, as the Space's page sends it."""
    return {
        "id": None, "elem_id": None, "elem_classes": None, "name": None,
        "text": text, "flushing": None, "avatar": "", "files": [],
    }


def tuples_history(conv: Conversation) -> list[list[str]]:
    return [[user, assistant] for user, assistant in conv.turns]


def messages_history(conv: Conversation) -> list[dict[str, Any]]:
    """Gradio 6 message dicts; content as a list of text parts (a plain string fails
    Gradio 6's validation)."""
    out: list[dict[str, Any]] = []
    for user, assistant in conv.turns:
        for role, text in (("user", user), ("assistant", assistant)):
            out.append({
                "role": role,
                "metadata": None,
                "content": [{"type": "text", "text": text}],
                "options": None,
            })
    return out


def _leaf_paths(value: Any, base: Path) -> list[Path]:
    """Paths of the text leaves of one message side: a string, {"text"}, {"content"}, or a
    list of those."""
    if isinstance(value, str):
        return [base]
    if isinstance(value, Mapping):
        if isinstance(value.get("text"), str):
            return [(*base, "text")]
        content = value.get("content")
        if isinstance(content, str):
            return [(*base, "content")]
        if isinstance(content, list):
            return _leaf_paths(content, (*base, "content"))
        return []
    if isinstance(value, list):
        paths: list[Path] = []
        for i, item in enumerate(value):
            if isinstance(item, Mapping) and item.get("type") not in (None, "text"):
                continue  # files, images, tool calls: not answer text
            paths.extend(_leaf_paths(item, (*base, i)))
        return paths
    return []


def pair_segments(outputs: list[Any], output_index: int, pair_index: int) -> list[Segment]:
    """Tuples-style chatbot: the bot side of pair ``pair_index``."""
    chatbot = outputs[output_index] if output_index < len(outputs) else None
    if not isinstance(chatbot, list) or pair_index >= len(chatbot):
        return []
    pair = chatbot[pair_index]
    if not isinstance(pair, list) or len(pair) < 2:
        return []
    return [Segment("answer", p) for p in _leaf_paths(pair[1], (output_index, pair_index, 1))]


def message_segments(outputs: list[Any], output_index: int, first: int) -> list[Segment]:
    """Messages-style chatbot: the assistant messages from position ``first`` on."""
    chatbot = outputs[output_index] if output_index < len(outputs) else None
    if not isinstance(chatbot, list):
        return []
    segments: list[Segment] = []
    for i in range(first, len(chatbot)):
        message = chatbot[i]
        if isinstance(message, Mapping) and message.get("role") == "assistant":
            content = message.get("content")
            if isinstance(content, str):
                segments.append(Segment("answer", (output_index, i, "content")))
            elif isinstance(content, list):
                segments.extend(
                    Segment("answer", p)
                    for p in _leaf_paths(content, (output_index, i, "content"))
                )
    return segments
