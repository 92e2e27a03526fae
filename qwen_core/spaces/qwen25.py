"""Qwen2.5 family — ``Qwen/Qwen2.5`` (Gradio 4, modelscope_studio Chatbot, REST closed).

Events in order: three radio ``.change`` listeners (0-2), ``textbox.submit(model_chat)``
(3), the Send button (4), clear (5), set system prompt (6), hidden radio (7).
``model_chat(query, history, system, radio)``: the radio picks the variant and the Space
calls ``qwen2.5-<variant>-instruct``. Each Qwen2.5 variant is its own model id here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..conversation import Conversation
from .base import Layout, ModelSpec, Payload, Segment, SpaceAdapter
from .chatbot import modelscope_message, pair_segments

TEXT = frozenset({"textbox"})
CHATBOT = frozenset({"modelscopechatbot", "chatbot"})
RADIO = frozenset({"radio", "dropdown"})

VARIANTS = (
    "72B", "32B", "14B", "7B", "3B", "1.5B", "0.5B",
    "Math-72B", "Math-7B", "Math-1.5B", "Coder-7B", "Coder-1.5B",
)


def _model(variant: str) -> ModelSpec:
    if variant == "72B":
        return ModelSpec(
            "qwen-2.5", "Qwen2.5-72B-Instruct", variant,
            aliases=("qwen-2.5-72b", "qwen-qwen2-5", "qwen2.5", "qwen2.5-72b-instruct"),
        )
    lower = variant.lower()
    return ModelSpec(
        f"qwen-2.5-{lower}", f"Qwen2.5-{variant}-Instruct", variant,
        aliases=(f"qwen2.5-{lower}-instruct", f"qwen2.5-{lower}"),
    )


class Qwen25(SpaceAdapter):
    space_id = "Qwen/Qwen2.5"
    label = "Qwen2.5"
    seed_name = "Qwen_Qwen_2_5"
    fn_index = 3
    api_name = "model_chat"
    input_types = (TEXT, CHATBOT, TEXT, RADIO)
    output_types = (TEXT, CHATBOT, TEXT)
    default_system = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    models = tuple(_model(v) for v in VARIANTS)

    @classmethod
    def build(
        cls, model: ModelSpec, conv: Conversation, layout: Layout, options: Mapping[str, Any]
    ) -> Payload:
        history = [[modelscope_message(u), modelscope_message(a)] for u, a in conv.turns]
        return Payload(
            data=[conv.prompt, history, cls.system_text(conv), model.variant],
            answer_index=len(conv.turns),
        )

    @classmethod
    def segments(cls, outputs: list[Any], payload: Payload) -> list[Segment]:
        return pair_segments(outputs, 1, payload.answer_index)
