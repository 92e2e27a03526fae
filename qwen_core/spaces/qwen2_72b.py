"""Qwen2-72B-Instruct — ``Qwen/Qwen2-72B-Instruct`` (Gradio 4, no API prefix).

Event 0 takes ``[query, history (tuples), system]``; the answer is the bot side of this
turn's pair in output 1."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..conversation import Conversation
from .base import Layout, ModelSpec, Payload, Segment, SpaceAdapter
from .chatbot import pair_segments, tuples_history

TEXT = frozenset({"textbox"})
CHATBOT = frozenset({"chatbot"})


class Qwen2_72B(SpaceAdapter):
    space_id = "Qwen/Qwen2-72B-Instruct"
    label = "Qwen2-72B-Instruct"
    seed_name = "Qwen_Qwen_2_72B"
    fn_index = 0
    api_name = "model_chat"
    input_types = (TEXT, CHATBOT, TEXT)
    output_types = (TEXT, CHATBOT, TEXT)
    default_system = "You are a helpful assistant."
    models = (
        ModelSpec(
            "qwen-2-72b", "Qwen2-72B-Instruct",
            aliases=("qwen-qwen2-72b-instruct", "qwen2-72b-instruct", "qwen-2-72b-instruct"),
        ),
    )

    @classmethod
    def build(
        cls, model: ModelSpec, conv: Conversation, layout: Layout, options: Mapping[str, Any]
    ) -> Payload:
        return Payload(
            data=[conv.prompt, tuples_history(conv), cls.system_text(conv)],
            answer_index=len(conv.turns),
        )

    @classmethod
    def segments(cls, outputs: list[Any], payload: Payload) -> list[Segment]:
        return pair_segments(outputs, 1, payload.answer_index)
