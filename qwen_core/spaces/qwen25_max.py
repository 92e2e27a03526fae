"""Qwen2.5-Max — ``Qwen/Qwen2.5-Max-Demo`` (Gradio 5; Alibaba's hosted qwen-max).

Event 0 takes ``[query, history, system]`` and returns ``[textbox, chatbot, system]``;
history is the Chatbot value (tuples on Gradio 5, messages on Gradio 6) and the answer is
the bot side of this turn's pair."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..conversation import Conversation
from .base import Layout, ModelSpec, Payload, Segment, SpaceAdapter
from .chatbot import (
    message_segments,
    messages_history,
    pair_segments,
    tuples_history,
    uses_messages_format,
)

TEXT = frozenset({"textbox"})
CHATBOT = frozenset({"chatbot"})


class Qwen25Max(SpaceAdapter):
    space_id = "Qwen/Qwen2.5-Max-Demo"
    label = "Qwen2.5-Max"
    seed_name = "Qwen_Qwen_2_5_Max"
    fn_index = 0
    api_name = "model_chat"
    api_prefix = "/gradio_api"
    input_types = (TEXT, CHATBOT, TEXT)
    output_types = (TEXT, CHATBOT, TEXT)
    default_system = "You are a helpful assistant."
    models = (
        ModelSpec(
            "qwen-2.5-max", "Qwen2.5-Max",
            aliases=("qwen-2-5-max", "qwen-qwen2-5-max", "qwen2.5-max", "qwen-max"),
        ),
    )

    @classmethod
    def build(
        cls, model: ModelSpec, conv: Conversation, layout: Layout, options: Mapping[str, Any]
    ) -> Payload:
        messages = uses_messages_format(layout, 1)
        history = messages_history(conv) if messages else tuples_history(conv)
        return Payload(
            data=[conv.prompt, history, cls.system_text(conv)],
            answer_index=2 * len(conv.turns) if messages else len(conv.turns),
            extra={"messages": messages},
        )

    @classmethod
    def segments(cls, outputs: list[Any], payload: Payload) -> list[Segment]:
        if payload.extra.get("messages"):
            return message_segments(outputs, 1, payload.answer_index)
        return pair_segments(outputs, 1, payload.answer_index)
