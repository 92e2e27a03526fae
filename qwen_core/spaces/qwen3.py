"""Qwen3 — ``Qwen/Qwen3-Demo`` (Gradio 5, modelscope_studio "pro" chatbot).

Event 13 takes ``[user_message, {"model", "sys_prompt", "thinking_budget"}, state, state]``;
the conversation lives in server-side state, so earlier turns are flattened into the
message. Output 5 is the chatbot: a list of messages whose assistant ``content`` is a list
of items — ``{"type": "tool"}`` items hold the thinking (title in ``options.title``),
``{"type": "text"}`` items the answer. A tool item whose ``options.status`` is not
``done`` gives its title as a status line. The chatbot output arrives either as the
message list or wrapped in an update object (``{"value": [...], "__type__": "update"}``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..conversation import Conversation, flatten_history
from ..errors import InvalidRequest
from .base import Layout, ModelSpec, Payload, Segment, SpaceAdapter

CHATBOT_OUTPUT = 5
DEFAULT_BUDGET = 38  # thousands of tokens, the Space's own default
MODEL_NAMES = (
    "qwen3-235b-a22b", "qwen3-32b", "qwen3-30b-a3b", "qwen3-14b",
    "qwen3-8b", "qwen3-4b", "qwen3-1.7b", "qwen3-0.6b",
)


def _model(name: str) -> ModelSpec:
    aliases: tuple[str, ...] = (name.replace("qwen3-", "qwen-3-"),)
    if name == "qwen3-235b-a22b":
        aliases += ("qwen3", "qwen-3", "qwen-qwen3-demo")
    return ModelSpec(name, "Qwen3-" + name.removeprefix("qwen3-").upper(), name, aliases)


class Qwen3(SpaceAdapter):
    space_id = "Qwen/Qwen3-Demo"
    label = "Qwen3"
    seed_name = "Qwen_Qwen_3"
    fn_index = 13
    api_prefix = "/gradio_api"
    input_types = (None, None, None, None)
    default_system = "You are a helpful and harmless assistant."
    supports_history = False
    supports_reasoning = True
    models = tuple(_model(n) for n in MODEL_NAMES)
    options = {"thinking_budget": "thinking budget in thousands of tokens (1-38)"}

    @classmethod
    def build(
        cls, model: ModelSpec, conv: Conversation, layout: Layout, options: Mapping[str, Any]
    ) -> Payload:
        budget = options.get("thinking_budget", DEFAULT_BUDGET)
        if not isinstance(budget, int) or isinstance(budget, bool) or not 1 <= budget <= 38:
            raise InvalidRequest(
                f"thinking_budget must be a whole number of thousands from 1 to 38, got {budget!r}"
            )
        settings = {
            "model": model.variant,
            "sys_prompt": cls.system_text(conv),
            "thinking_budget": budget,
        }
        return Payload(data=[flatten_history(conv), settings, None, None])

    @classmethod
    def segments(cls, outputs: list[Any], payload: Payload) -> list[Segment]:
        chatbot = outputs[CHATBOT_OUTPUT] if len(outputs) > CHATBOT_OUTPUT else None
        root: tuple[Any, ...] = (CHATBOT_OUTPUT,)
        if isinstance(chatbot, Mapping):  # a gr.update(value=[...]) from the pro chatbot
            chatbot, root = chatbot.get("value"), (CHATBOT_OUTPUT, "value")
        if not isinstance(chatbot, list):
            return []
        last_user = max(
            (i for i, m in enumerate(chatbot)
             if isinstance(m, Mapping) and m.get("role") == "user"),
            default=-1,
        )
        segments: list[Segment] = []
        for i in range(last_user + 1, len(chatbot)):
            message = chatbot[i]
            if not isinstance(message, Mapping) or message.get("role") != "assistant":
                continue
            base = (*root, i, "content")
            content = message.get("content")
            if isinstance(content, str):
                segments.append(Segment("answer", base))
                continue
            if not isinstance(content, list):
                continue
            for j, item in enumerate(content):
                if not isinstance(item, Mapping):
                    continue
                kind = item.get("type")
                if kind == "tool":
                    segments.append(Segment("reasoning", (*base, j, "content")))
                    opts = item.get("options")
                    if isinstance(opts, Mapping) and opts.get("status") not in (None, "done"):
                        if isinstance(opts.get("title"), str):
                            segments.append(Segment("status", (*base, j, "options", "title")))
                elif kind == "text" or kind is None:
                    segments.append(Segment("answer", (*base, j, "content")))
        return segments
