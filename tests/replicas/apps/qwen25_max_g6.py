"""Replica of Qwen/Qwen2.5-Max-Demo as if it moved to Gradio 6 (messages Chatbot).

Same layout as ``qwen25_max_g5.py``: fn_index 0 = chat, inputs [Textbox query, Chatbot
history, Textbox system], outputs [Textbox, Chatbot, Textbox]. Gradio 6's Chatbot only
has the messages format: the app yields ``history + [user msg, assistant msg]`` as
``{"role", "content": str}`` dicts, which Gradio serialises as
``{"role", "metadata", "content": [{"text", "type": "text"}], "options"}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr
from _common import EventLog, Generation, launch, parse_args, script, session_of, stream_tokens
from qwen25_max_g5 import max_layout

DEFAULT_SYSTEM = "You are a helpful assistant."

Message = dict[str, Any]


def message_text(message: Message) -> str:
    """The text of a preprocessed Gradio 6 message (content is a list of parts)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    return "".join(
        part.get("text", "")
        for part in parts
        if isinstance(part, dict) and part.get("type") == "text"
    )


def messages_to_pairs(messages: list[Message]) -> list[list[str | None]]:
    """User/assistant messages -> [user, bot] pairs (as the Space builds its prompt)."""
    pairs: list[list[str | None]] = []
    for message in messages:
        text = message_text(message)
        if message.get("role") == "user":
            pairs.append([text, None])
        elif pairs and pairs[-1][1] is None:
            pairs[-1][1] = text
        else:
            pairs.append([None, text])
    return pairs


def build(log: EventLog) -> gr.Blocks:
    def model_chat(
        query: str | None,
        history: list[Message] | None,
        system: str | None,
        request: gr.Request,
    ) -> Iterator[tuple[str, list[Message], str]]:
        query = query or ""
        history = list(history or [])
        system = system if system is not None else DEFAULT_SYSTEM
        pairs = messages_to_pairs(history)
        plan = script.plan(query, system=system, history=pairs, variant=None)
        session = session_of(request)
        with Generation(log, session, query):
            answer = ""
            for token in stream_tokens(plan, log, session=session):
                answer += token
                yield (
                    "",
                    [
                        *history,
                        {"role": "user", "content": query},
                        {"role": "assistant", "content": answer},
                    ],
                    system,
                )

    def clear_session() -> tuple[str, list[Message]]:
        return "", []

    def modify_system_session(system: str) -> tuple[str, str, list[Message]]:
        system = system or DEFAULT_SYSTEM
        return system, system, []

    return max_layout(
        model_chat,
        clear_session,
        modify_system_session,
        title="Qwen2.5-Max",
        heading="Qwen2.5-Max (replica, Gradio 6)",
        chatbot=gr.Chatbot(label="Qwen2.5-Max", render=False),
    )


def main() -> None:
    options = parse_args(__doc__ or "")
    launch(build(EventLog(options.log)), options)


if __name__ == "__main__":
    main()
