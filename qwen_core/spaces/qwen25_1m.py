"""Qwen2.5-1M — ``Qwen/Qwen2.5-1M-Demo`` (Gradio 4, modelscope_studio; very long inputs).

The page first adds the user's message (event 1, not queued) and then generates with the
queued event 2, whose data is ``[CHATBOT, null, 0]``: the chatbot already holding the new
turn. Event 1 only echoes the message into the page, so the client calls event 2 directly
with the chatbot it builds. The Space has no system prompt input: a system message is put
before the prompt. While it works the bot text reads ``Qwen is thinking...`` (a status,
not answer), and the finished text may end with ``\\n<summary>`` and a details block
(reported as reasoning, never as answer)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..conversation import Conversation
from .base import Layout, ModelSpec, Payload, Segment, SpaceAdapter
from .chatbot import modelscope_message, pair_segments

PLACEHOLDER = "Qwen is thinking..."
SUMMARY_MARKER = "\n<summary>"


class Qwen25_1M(SpaceAdapter):
    space_id = "Qwen/Qwen2.5-1M-Demo"
    label = "Qwen2.5-1M"
    seed_name = "Qwen_Qwen_2_5M"
    fn_index = 2
    input_types = (frozenset({"modelscopechatbot", "chatbot"}), None, None)
    default_system = ""
    supports_system = False
    max_input_chars = 10_000_000
    models = (
        ModelSpec(
            "qwen-2.5-1m", "Qwen2.5-14B-Instruct-1M",
            aliases=("qwen-2.5-1m-demo", "qwen-2-5m", "qwen2.5-1m", "qwen-qwen2-5-1m-demo"),
        ),
    )

    @classmethod
    def build(
        cls, model: ModelSpec, conv: Conversation, layout: Layout, options: Mapping[str, Any]
    ) -> Payload:
        prompt = conv.prompt if not conv.system else f"{conv.system}\n\n{conv.prompt}"
        chatbot: list[list[Any]] = [
            [modelscope_message(u), [modelscope_message(a)]] for u, a in conv.turns
        ]
        chatbot.append([modelscope_message(prompt), None])
        return Payload(data=[chatbot, None, 0], answer_index=len(conv.turns))

    @classmethod
    def segments(cls, outputs: list[Any], payload: Payload) -> list[Segment]:
        found = pair_segments(outputs, 0, payload.answer_index)
        result: list[Segment] = []
        for seg in found:
            leaf: Any = outputs
            for key in seg.path:
                leaf = leaf[key]
            if isinstance(leaf, str) and leaf.strip() == PLACEHOLDER:
                result.append(Segment("status", seg.path))
            else:
                result.append(Segment("answer", seg.path, marker=SUMMARY_MARKER))
        return result
