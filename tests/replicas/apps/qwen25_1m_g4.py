"""Replica of Qwen/Qwen2.5-1M-Demo (Gradio 4 + modelscope_studio 0.5.2).

Events:
  0  "Example" button -> fills the input (not queued)
  1  ``input.submit(add_text)`` (not queued, ``POST /run/predict``):
     data ``[{"files": [], "text": PROMPT}, CHATBOT, []]`` -> appends ``[user_msg, None]``;
     outputs [input, chatbot, documents state]
  2  ``.then(bot)`` (queued): data ``[CHATBOT, null, 0]`` (chatbot, documents state, turn
     counter state); output 0 is the chatbot. The bot side of the last pair is a *list*
     of message objects: first ``Qwen is thinking...`` (placeholder, yielded twice
     ``PLACEHOLDER_DELAY`` apart), then the streamed
     answer, and at the end the answer followed by ``script.ONE_M_SUFFIX``
     (``\\n<summary>...</summary>\\n<details>...</details>``), like the Space.
  3  ``.then`` re-enables the input (not queued)
"""

from __future__ import annotations

import time
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

EXAMPLE_PROMPT = "Summarise the attached document in three sentences."
PLACEHOLDER_DELAY = 0.05  # seconds the placeholder stays before the first answer token


def bot_message(text: str) -> list[dict[str, Any]]:
    return [{"text": text, "flushing": False}]


def build(log: EventLog) -> gr.Blocks:
    def load_example() -> dict[str, Any]:
        return {"text": EXAMPLE_PROMPT, "files": []}

    def add_text(
        message: Any, history: list[list[Any]] | None, documents: list[Any] | None
    ) -> tuple[Any, list[list[Any]], list[Any]]:
        text = getattr(message, "text", None) or ""
        files = list(getattr(message, "files", None) or [])
        history = list(history or [])
        history.append([{"text": text, "files": files}, None])
        return gr.update(value=None, interactive=False), history, [*(documents or []), *files]

    def bot(
        history: list[list[Any]] | None,
        documents: list[Any] | None,
        turns: int | None,
        request: gr.Request,
    ) -> Iterator[list[list[Any]]]:
        history = list(history or [])
        if not history:
            raise gr.Error("Please enter a message first.")
        query = side_text(history[-1][0]) or ""
        earlier = [[side_text(pair[0]), side_text(pair[1])] for pair in history[:-1]]
        plan = script.plan(query, system="", history=earlier, variant=None)
        session = session_of(request)
        with Generation(log, session, query, turns=turns):
            # The placeholder is shown twice (the second yield changes nothing: Gradio
            # sends an empty diff for it), like a Space polling a slow backend.
            history[-1] = [history[-1][0], bot_message(script.THINKING_PLACEHOLDER)]
            yield history
            time.sleep(PLACEHOLDER_DELAY)
            yield history
            answer = ""
            for token in stream_tokens(plan, log, session=session):
                answer += token
                history[-1] = [history[-1][0], bot_message(answer)]
                yield history
            history[-1] = [history[-1][0], bot_message(answer + script.ONE_M_SUFFIX)]
            yield history

    with gr.Blocks(title="Qwen2.5-1M") as demo:
        gr.Markdown("<center><font size=8>Qwen2.5-1M Demo (replica)</center>")
        documents = gr.State([])
        turns = gr.State(0)
        chatbot = mgr.Chatbot(label="Qwen2.5-14B-Instruct-1M", height=600)
        with gr.Row():
            user_input = mgr.MultimodalInput(
                placeholder="Upload a document and ask about it",
                upload_button_props={"visible": True},
            )
        example = gr.Button("📝 Example")

        example.click(load_example, inputs=[], outputs=[user_input], queue=False)  # fn_index 0
        submitted = user_input.submit(  # 1
            add_text,
            inputs=[user_input, chatbot, documents],
            outputs=[user_input, chatbot, documents],
            queue=False,
        )
        generated = submitted.then(  # 2
            bot, inputs=[chatbot, documents, turns], outputs=[chatbot], concurrency_limit="default"
        )
        generated.then(  # 3
            lambda: gr.update(interactive=True), inputs=[], outputs=[user_input], queue=False
        )
    return demo


def main() -> None:
    options = parse_args(__doc__ or "")
    launch(build(EventLog(options.log)), options)


if __name__ == "__main__":
    main()
