"""Replica of Qwen/Qwen2.5 (Gradio 4 + modelscope_studio 0.5.2 Chatbot, api_open=False).

Events in the Space's order:
  0, 1, 2  the three model radio groups' ``.change`` (set the hidden radio)
  3        ``textbox.submit(model_chat)``  inputs [query, chatbot, system, radio]
  4        Send button, same function
  5        clear history
  6        set system prompt (and clear history)
  7        hidden radio ``.change`` (relabels and clears the chatbot)
``model_chat`` reads each history side's ``.text`` (modelscope message objects) and
yields ``('', history + [[query, partial]], system)`` with plain strings, which the
modelscope Chatbot turns into message objects on the wire.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr
import modelscope_studio as mgr
from _common import (
    EventLog,
    Generation,
    launch,
    parse_args,
    script,
    session_of,
    side_text,
    stream_tokens,
)

DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
QWEN_VARIANTS = ["72B", "32B", "14B", "7B", "3B", "1.5B", "0.5B"]
MATH_VARIANTS = ["Math-72B", "Math-7B", "Math-1.5B"]
CODER_VARIANTS = ["Coder-7B", "Coder-1.5B"]
VARIANTS = QWEN_VARIANTS + MATH_VARIANTS + CODER_VARIANTS


def build(log: EventLog) -> gr.Blocks:
    def model_chat(
        query: str | None,
        history: list[list[Any]] | None,
        system: str | None,
        radio: str | None,
        request: gr.Request,
    ) -> Iterator[tuple[str, list[list[str | None]], str]]:
        query = query or ""
        system = system if system is not None else DEFAULT_SYSTEM
        if radio not in VARIANTS:
            raise gr.Error(f"Unknown model variant: {radio!r}")
        pairs = [[side_text(pair[0]), side_text(pair[1])] for pair in (history or [])]
        plan = script.plan(query, system=system, history=pairs, variant=radio)
        session = session_of(request)
        with Generation(log, session, query, variant=radio):
            answer = ""
            for token in stream_tokens(plan, log, session=session):
                answer += token
                yield "", [*pairs, [query, answer]], system

    def clear_session() -> tuple[str, list[Any]]:
        return "", []

    def modify_system_session(system: str) -> tuple[str, str, list[Any]]:
        system = system or DEFAULT_SYSTEM
        return system, system, []

    def select(choice: str | None) -> tuple[Any, Any, Any]:
        """A radio group was picked: set the hidden radio, clear the other groups."""
        if not choice:  # cleared by another group's handler: change nothing
            return gr.update(), gr.update(), gr.update()
        return choice, None, None

    def choose_radio(radio: str, system: str) -> tuple[Any, list[Any], str]:
        label = f"Qwen2.5-{radio}-Instruct"
        return gr.update(value=f"<center><font size=6>{label}👾</center>"), [], ""

    with gr.Blocks(title="Qwen2.5") as demo:
        gr.Markdown('<p align="center"><b>Qwen</b></p>')  # the Space shows its logo here
        gr.Markdown(
            "<center><font size=8>Qwen2.5: A Party of Foundation Models! (replica)</center>"
        )
        with gr.Row():
            with gr.Accordion("🙋 Model list", open=True):
                with gr.Row():
                    with gr.Column(scale=1, min_width=0):
                        radio1 = gr.Radio(choices=QWEN_VARIANTS, label="Qwen2.5:", value="72B")
                        radio2 = gr.Radio(choices=MATH_VARIANTS, label="Qwen2.5-Math:")
                        radio3 = gr.Radio(choices=CODER_VARIANTS, label="Qwen2.5-Coder:")
                    with gr.Column(scale=4, min_width=0):
                        gr.Markdown("**Qwen2.5**: general models, 0.5B to 72B.")
                        gr.Markdown("**Qwen2.5-Math**: mathematical reasoning.")
                        gr.Markdown("**Qwen2.5-Coder**: code generation.")
                    radio = gr.Radio(choices=VARIANTS, value="72B", visible=False)
        gr.Markdown("Duplicate this Space to skip the queue.")
        mark = gr.Markdown("<center><font size=6>Qwen2.5-72B-Instruct👾</center>")
        with gr.Row():
            system_input = gr.Textbox(value=DEFAULT_SYSTEM, lines=1, label="System", scale=5)
            modify_system = gr.Button("🛠️ Set system prompt and clear history", scale=1)
        system_state = gr.Textbox(value=DEFAULT_SYSTEM, visible=False)
        chatbot = mgr.Chatbot(label="Qwen2.5-72B-Instruct")
        textbox = gr.Textbox(lines=1, label="Input")
        with gr.Row():
            clear_history = gr.Button("🧹 Clear history")
            submit = gr.Button("🚀 Send")

        radio1.change(select, inputs=[radio1], outputs=[radio, radio2, radio3])  # fn_index 0
        radio2.change(select, inputs=[radio2], outputs=[radio, radio1, radio3])  # 1
        radio3.change(select, inputs=[radio3], outputs=[radio, radio1, radio2])  # 2
        chat_io = {
            "inputs": [textbox, chatbot, system_state, radio],
            "outputs": [textbox, chatbot, system_input],
        }
        textbox.submit(model_chat, **chat_io, concurrency_limit="default")  # 3
        submit.click(model_chat, **chat_io, concurrency_limit="default")  # 4
        clear_history.click(clear_session, inputs=[], outputs=[textbox, chatbot])  # 5
        modify_system.click(  # 6
            modify_system_session,
            inputs=[system_input],
            outputs=[system_state, system_input, chatbot],
        )
        radio.change(  # 7
            choose_radio, inputs=[radio, system_input], outputs=[mark, chatbot, textbox]
        )
    return demo


def main() -> None:
    options = parse_args(__doc__ or "")
    launch(build(EventLog(options.log)), options)  # api_open=False, as the Space sets


if __name__ == "__main__":
    main()
