"""Replica of Qwen/Qwen2.5-Max-Demo (Gradio 5, tuples Chatbot); Qwen/Qwen2-72B-Instruct
(Gradio 4) has the same layout and reuses :func:`build` (see qwen2_72b_g4.py).

fn_index 0 = chat: inputs [Textbox query, Chatbot history (tuples), Textbox system],
outputs [Textbox, Chatbot, Textbox]. Each yield is ``('', history + [[query, partial]],
system)``, like the real app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
from _common import EventLog, Generation, launch, parse_args, script, session_of, stream_tokens

DEFAULT_SYSTEM = "You are a helpful assistant."

Pair = list[str | None]


def build(log: EventLog, title: str = "Qwen2.5-Max", heading: str = "Qwen2.5-Max") -> gr.Blocks:
    def model_chat(
        query: str | None,
        history: list[Pair] | None,
        system: str | None,
        request: gr.Request,
    ) -> Iterator[tuple[str, list[Pair], str]]:
        query = query or ""
        history = [list(pair) for pair in (history or [])]
        system = system if system is not None else DEFAULT_SYSTEM
        plan = script.plan(query, system=system, history=history, variant=None)
        session = session_of(request)
        with Generation(log, session, query):
            answer = ""
            for token in stream_tokens(plan, log, session=session):
                answer += token
                yield "", [*history, [query, answer]], system

    def clear_session() -> tuple[str, list[Pair]]:
        return "", []

    def modify_system_session(system: str) -> tuple[str, str, list[Pair]]:
        system = system or DEFAULT_SYSTEM
        return system, system, []

    return max_layout(
        model_chat,
        clear_session,
        modify_system_session,
        title=title,
        heading=heading,
        chatbot=gr.Chatbot(label=title, type="tuples", render=False),
    )


def max_layout(
    model_chat: Callable[..., Any],
    clear_session: Callable[..., Any],
    modify_system_session: Callable[..., Any],
    *,
    title: str,
    heading: str,
    chatbot: gr.Chatbot,
) -> gr.Blocks:
    """The Qwen2.5-Max page (also Qwen2-72B's): events 0-3 as the Space has them. The
    chatbot is passed in unrendered because its format differs between Gradio versions."""
    with gr.Blocks(title=title) as demo:
        gr.Markdown(f"<center><font size=8>{heading} (replica)</center>")
        with gr.Row():
            with gr.Column(scale=3):
                system_input = gr.Textbox(value=DEFAULT_SYSTEM, lines=1, label="System")
            with gr.Column(scale=1):
                modify_system = gr.Button("🛠️ Set system prompt and clear history", scale=2)
            system_state = gr.Textbox(value=DEFAULT_SYSTEM, visible=False)
        chatbot.render()
        textbox = gr.Textbox(lines=1, label="Input")
        with gr.Row():
            clear_history = gr.Button("🧹 Clear history")
            submit = gr.Button("🚀 Send")

        chat_io = {
            "inputs": [textbox, chatbot, system_state],
            "outputs": [textbox, chatbot, system_input],
        }
        textbox.submit(model_chat, **chat_io, concurrency_limit="default")  # fn_index 0
        submit.click(model_chat, **chat_io, concurrency_limit="default")  # 1
        clear_history.click(clear_session, inputs=[], outputs=[textbox, chatbot])  # 2
        modify_system.click(  # 3
            modify_system_session,
            inputs=[system_input],
            outputs=[system_state, system_input, chatbot],
        )
    return demo


def main() -> None:
    options = parse_args(__doc__ or "")
    launch(build(EventLog(options.log)), options)


if __name__ == "__main__":
    main()
