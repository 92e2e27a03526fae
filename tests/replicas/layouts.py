"""What each replica's chat event looks like on the wire, as code.

For every replica: the chat ``fn_index``, the component types of its inputs/outputs in
``GET /config``, how to build the request ``data`` (query, earlier turns, system, variant)
in that Space's native format, and where the answer (and reasoning) sit in the output
``data``. Shared by ``test_bed.py`` and ``record_transcripts.py``; the README explains it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tests.replicas import script

Pairs = Sequence[Sequence[str | None]]

MAX_SYSTEM = "You are a helpful assistant."
QWEN25_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
QWEN3_SYSTEM = "You are a helpful and harmless assistant."
QWEN3_MODEL = "qwen3-235b-a22b"
QWEN3_BUDGET = 38


def ms_message(text: str | None) -> dict[str, Any] | None:
    """A modelscope_studio 0.5 Chatbot message object (what the browser sends back)."""
    if text is None:
        return None
    return {
        "id": None,
        "elem_id": None,
        "elem_classes": None,
        "name": None,
        "text": text,
        "flushing": None,
        "avatar": "",
        "files": [],
    }


def g6_message(role: str, text: str) -> dict[str, Any]:
    """A Gradio 6 Chatbot message as it travels (content is a list of parts)."""
    return {
        "role": role,
        "metadata": None,
        "content": [{"text": text, "type": "text"}],
        "options": None,
    }


def g6_history(pairs: Pairs) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for user, bot in pairs:
        if user is not None:
            messages.append(g6_message("user", user))
        if bot is not None:
            messages.append(g6_message("assistant", bot))
    return messages


def _max_data(query: str, pairs: Pairs, system: str, variant: str | None) -> list[Any]:
    return [query, [list(pair) for pair in pairs], system]


def _max_answer(data: list[Any]) -> str:
    return str(data[1][-1][1])


def _g6_data(query: str, pairs: Pairs, system: str, variant: str | None) -> list[Any]:
    return [query, g6_history(pairs), system]


def _g6_answer(data: list[Any]) -> str:
    message = data[1][-1]
    return "".join(part["text"] for part in message["content"] if part.get("type") == "text")


def _qwen25_data(query: str, pairs: Pairs, system: str, variant: str | None) -> list[Any]:
    history = [[ms_message(user), ms_message(bot)] for user, bot in pairs]
    return [query, history, system, variant or "72B"]


def _qwen25_answer(data: list[Any]) -> str:
    return str(data[1][-1][1]["text"])


def one_m_chatbot(query: str, pairs: Pairs) -> list[Any]:
    """The 1M Space's chatbot value with ``query`` as the new turn (bot side null);
    earlier bot sides are lists of message objects, as the Space sends them."""
    history: list[Any] = [
        [ms_message(user), [ms_message(bot)] if bot is not None else None] for user, bot in pairs
    ]
    history.append([ms_message(query), None])
    return history


def _one_m_data(query: str, pairs: Pairs, system: str, variant: str | None) -> list[Any]:
    return [one_m_chatbot(query, pairs), None, 0]


def _one_m_answer(data: list[Any]) -> str:
    text = str(data[0][-1][1][0]["text"])
    return text.split("\n<summary>", 1)[0]


def _qwen3_data(query: str, pairs: Pairs, system: str, variant: str | None) -> list[Any]:
    # History cannot be sent: it lives in the session's State (re-use the session_hash).
    settings = {
        "model": variant or QWEN3_MODEL,
        "sys_prompt": system,
        "thinking_budget": QWEN3_BUDGET,
    }
    return [query, settings, None, None]


def qwen3_chatbot(data: list[Any]) -> list[dict[str, Any]]:
    value = data[5]
    if isinstance(value, dict) and value.get("__type__") == "update":
        value = value["value"]
    return list(value)


def _qwen3_items(data: list[Any], kind: str) -> str:
    message = qwen3_chatbot(data)[-1]
    content = message["content"]
    if isinstance(content, str):
        return content if kind == "text" else ""
    return "".join(str(item.get("content") or "") for item in content if item.get("type") == kind)


def _qwen3_answer(data: list[Any]) -> str:
    return _qwen3_items(data, "text")


def _qwen3_reasoning(data: list[Any]) -> str:
    return _qwen3_items(data, "tool")


@dataclass(frozen=True)
class Layout:
    name: str  # the bed.REPLICAS key
    fn_index: int
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    default_system: str
    default_variant: str | None
    # Whether the chatbot runs inspect.cleandoc over string messages (see script.cleandoc).
    cleandoc: bool
    build: Callable[[str, Pairs, str, str | None], list[Any]]
    answer: Callable[[list[Any]], str]
    reasoning: Callable[[list[Any]], str] | None = None
    sends_system: bool = True
    sends_history: bool = True

    def data(
        self,
        query: str,
        history: Pairs = (),
        *,
        system: str | None = None,
        variant: str | None = None,
    ) -> list[Any]:
        system = self.default_system if system is None else system
        return self.build(query, history, system, variant or self.default_variant)

    def expected(
        self,
        query: str,
        history: Pairs = (),
        *,
        system: str | None = None,
        variant: str | None = None,
    ) -> str:
        """The answer the replica streams for ``self.data(...)`` with the same arguments."""
        system = self.default_system if system is None else system
        answer = script.expected_answer(
            query,
            system=system if self.sends_system else "",
            history=history,
            variant=variant or self.default_variant,
            thinking_budget=QWEN3_BUDGET if self.reasoning is not None else None,
        )
        return script.cleandoc(answer) if self.cleandoc else answer

    def expected_reasoning(self, query: str) -> str:
        """The reasoning streamed for ``self.data(query)`` (Qwen3 sends budget 38)."""
        if self.reasoning is None:
            return ""
        return script.expected_reasoning(query, thinking_budget=QWEN3_BUDGET)


TEXTBOX_CHAT = ("textbox", "chatbot", "textbox")
LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            "max_g5", 0, TEXTBOX_CHAT, TEXTBOX_CHAT, MAX_SYSTEM, None, False, _max_data, _max_answer
        ),
        Layout(
            "max_g6", 0, TEXTBOX_CHAT, TEXTBOX_CHAT, MAX_SYSTEM, None, True, _g6_data, _g6_answer
        ),
        Layout(
            "qwen25_g4",
            3,
            ("textbox", "modelscopechatbot", "textbox", "radio"),
            ("textbox", "modelscopechatbot", "textbox"),
            QWEN25_SYSTEM,
            "72B",
            True,
            _qwen25_data,
            _qwen25_answer,
        ),
        Layout(
            "qwen2_72b_g4",
            0,
            TEXTBOX_CHAT,
            TEXTBOX_CHAT,
            MAX_SYSTEM,
            None,
            True,
            _max_data,
            _max_answer,
        ),
        Layout(
            "1m_g4",
            2,
            ("modelscopechatbot", "state", "state"),
            ("modelscopechatbot",),
            "",
            None,
            True,
            _one_m_data,
            _one_m_answer,
            sends_system=False,
        ),
        Layout(
            "qwen3_g5",
            13,
            ("antdxsender", "antdform", "state", "state"),
            (
                "antdxsender",
                "antdbutton",
                "antdmenuitem",
                "antdbutton",
                "antdxconversations",
                "modelscopeprochatbot",
                "state",
            ),
            QWEN3_SYSTEM,
            QWEN3_MODEL,
            False,
            _qwen3_data,
            _qwen3_answer,
            reasoning=_qwen3_reasoning,
            sends_history=False,
        ),
    )
}

# Gradio 4's gr.Error reaches the client as repr(message) (quoted); 5 and 6 send it as is.
ERROR_TEXT = {
    4: repr(script.ERROR_MESSAGE),
    5: script.ERROR_MESSAGE,
    6: script.ERROR_MESSAGE,
}


def component_types(config: dict[str, Any], ids: Sequence[int]) -> tuple[str, ...]:
    by_id = {component["id"]: component for component in config["components"]}
    return tuple(str(by_id[i]["type"]) for i in ids)
