"""Replica of Qwen/Qwen3-Demo (Gradio 5 + modelscope_studio 1.x "pro" Chatbot).

fn_index 13 = ``sender.submit(submit)`` with inputs
``[antdx.Sender (str), antd.Form settings ({"model", "sys_prompt", "thinking_budget"}),
gr.State conversation state, gr.State turn counter]`` -- on the wire
``[user_message, {...settings}, null, null]`` (Gradio ignores the values sent for State
inputs and uses the session's own). Outputs ``[sender, clear_btn, delete menu item,
new-conversation button, conversations, chatbot, state]``: output 5 is the pro Chatbot.

Each yield is a dict of ``gr.update``s, like the Space: the chatbot value is the whole
conversation of pro-chatbot messages. The assistant message starts as
``{"content": [], "loading": True, "status": "pending"}``; thinking streams into a
``{"type": "tool", "content": ..., "options": {"title": "Thinking...", "status":
"pending"}}`` item (title becomes "Thinking completed", status "done" when the answer
starts), the answer into a ``{"type": "text", "content": ...}`` item, and the message's
``status`` becomes "done" at the end. History lives in the session's State (a client keeps a
conversation by re-using its ``session_hash``); events 0-12 are the page's other
(harmless) listeners so that the chat event sits at fn_index 13.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import gradio as gr
import modelscope_studio.components.antd as antd
import modelscope_studio.components.antdx as antdx
import modelscope_studio.components.base as ms
import modelscope_studio.components.pro as pro
from _common import EventLog, Generation, launch, parse_args, script, session_of, stream_tokens

DEFAULT_SYSTEM = "You are a helpful and harmless assistant."
MODELS = [
    "qwen3-235b-a22b",
    "qwen3-32b",
    "qwen3-30b-a3b",
    "qwen3-14b",
    "qwen3-8b",
    "qwen3-4b",
    "qwen3-1.7b",
    "qwen3-0.6b",
]
DEFAULT_SETTINGS: dict[str, Any] = {
    "model": MODELS[0],
    "sys_prompt": DEFAULT_SYSTEM,
    "thinking_budget": 38,
}
THINKING_TITLE = "Thinking..."
THINKING_DONE_TITLE = "Thinking completed"

Message = dict[str, Any]
State = dict[str, Any]


def new_state() -> State:
    return {"conversations": [], "conversation_id": "", "histories": {}}


def message_answer(message: Message) -> str:
    """Answer text of a pro-chatbot message (text items only; tool items are thinking)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    items = content if isinstance(content, list) else [content]
    return "".join(
        str(item.get("content") or "")
        for item in items
        if isinstance(item, dict) and item.get("type", "text") == "text"
    )


def history_pairs(history: list[Message]) -> list[list[str | None]]:
    pairs: list[list[str | None]] = []
    for message in history:
        text = message_answer(message)
        if message.get("role") == "user":
            pairs.append([text, None])
        elif pairs and pairs[-1][1] is None:
            pairs[-1][1] = text
        else:
            pairs.append([None, text])
    return pairs


def budget_of(settings: dict[str, Any]) -> int:
    value = settings.get("thinking_budget", DEFAULT_SETTINGS["thinking_budget"])
    try:
        return int(value)
    except (TypeError, ValueError):
        raise gr.Error(f"Invalid thinking budget: {value!r}") from None


def build(log: EventLog) -> gr.Blocks:
    with gr.Blocks(title="Qwen3-Demo") as demo, ms.Application(), antdx.XProvider():
        state = gr.State(new_state())
        turns = gr.State(0)
        with antd.Row(gutter=[20, 20], wrap=False, elem_id="chatbot"):
            with antd.Col(md={"flex": "0 0 260px", "span": 24, "order": 0}, span=0, order=1):
                with antd.Flex(vertical=True, gap="small"):
                    ms.Markdown("**Qwen3** (replica)")
                    antd.Typography.Text("Think deeper, act faster", type="secondary")
                    antd.Divider()
                    with antd.Button(
                        value=None, color="primary", variant="filled", block=True
                    ) as add_btn:
                        ms.Text("New Conversation")
                    with antdx.Conversations() as conversations:
                        with ms.Slot("menu.items"):
                            with antd.Menu.Item(
                                label="Delete", key="delete", danger=True
                            ) as delete_item:
                                ms.Text("Delete")
                    antd.Divider()
                    with ms.Div():
                        antd.Typography.Text("Powered by Qwen3", type="secondary")
            with antd.Col(flex=1):
                with antd.Flex(vertical=True, gap="small"):
                    with antd.Flex(justify="space-between"):
                        antd.Typography.Text("Model")
                        antd.Tag(MODELS[0])
                    antd.Divider()
                    chatbot = pro.Chatbot(
                        height=600,
                        welcome_config={
                            "title": "Hello, I'm Qwen3",
                            "description": "Ask me anything.",
                        },
                        user_config={"actions": ["copy", "edit"]},
                        bot_config={"actions": ["copy", "like", "dislike", "retry"]},
                    )
                    with antdx.Sender(
                        placeholder="Enter to send, Shift + Enter for a new line"
                    ) as sender:
                        with ms.Slot("prefix"):
                            with antd.Button(value=None, type="text") as settings_btn:
                                ms.Text("⚙️")
                            with antd.Button(value=None, type="text") as clear_btn:
                                ms.Text("🧹")
        with antd.Modal(title="Settings", open=False) as settings_modal:
            with antd.Form(value=DEFAULT_SETTINGS) as settings_form:
                with antd.Form.Item(form_name="model", label="Model"):
                    model_select = antd.Select(options=[{"label": m, "value": m} for m in MODELS])
                with antd.Form.Item(form_name="sys_prompt", label="System Prompt"):
                    antd.Input.Textarea(auto_size={"minRows": 2, "maxRows": 6})
                with antd.Form.Item(form_name="thinking_budget", label="Thinking Budget (k)"):
                    antd.Slider(min=0, max=38, step=1)

        # -- events 0..12: the page's other listeners (harmless here) ---------------------
        def new_chat(state_value: State) -> tuple[Any, Any, Any]:
            state_value["conversation_id"] = ""
            return gr.update(active_key=None), gr.update(value=[]), gr.update(value=state_value)

        def select_conversation(state_value: State, e: gr.EventData) -> tuple[Any, Any]:
            key = (e._data or {}).get("payload", [None])[0]
            if key not in state_value["histories"]:
                return gr.skip(), gr.skip()
            state_value["conversation_id"] = key
            return gr.update(value=state_value["histories"][key]), gr.update(value=state_value)

        def delete_conversation(state_value: State, e: gr.EventData) -> tuple[Any, Any, Any]:
            key = ((e._data or {}).get("component") or {}).get("key")
            state_value["histories"].pop(key, None)
            state_value["conversations"] = [
                item for item in state_value["conversations"] if item.get("key") != key
            ]
            if state_value["conversation_id"] == key:
                state_value["conversation_id"] = ""
            return (
                gr.update(items=state_value["conversations"]),
                gr.update(value=[]),
                gr.update(value=state_value),
            )

        def noop_state(state_value: State) -> Any:
            return gr.update(value=state_value)

        def clear(state_value: State) -> tuple[Any, Any]:
            key = state_value["conversation_id"]
            if key:
                state_value["histories"][key] = []
            return gr.update(value=[]), gr.update(value=state_value)

        def show_modal(is_open: bool) -> Any:
            return gr.update(open=is_open)

        add_btn.click(new_chat, inputs=[state], outputs=[conversations, chatbot, state])  # 0
        conversations.active_change(  # 1
            select_conversation, inputs=[state], outputs=[chatbot, state]
        )
        conversations.menu_click(  # 2
            delete_conversation, inputs=[state], outputs=[conversations, chatbot, state]
        )
        chatbot.welcome_prompt_select(lambda: gr.update(), outputs=[sender])  # 3
        chatbot.edit(noop_state, inputs=[state], outputs=[state])  # 4
        chatbot.delete(noop_state, inputs=[state], outputs=[state])  # 5
        chatbot.retry(noop_state, inputs=[state], outputs=[state])  # 6
        chatbot.like(noop_state, inputs=[state], outputs=[state])  # 7
        clear_btn.click(clear, inputs=[state], outputs=[chatbot, state])  # 8
        settings_btn.click(lambda: show_modal(True), outputs=[settings_modal])  # 9
        settings_modal.ok(lambda: show_modal(False), outputs=[settings_modal])  # 10
        settings_modal.cancel(lambda: show_modal(False), outputs=[settings_modal])  # 11
        model_select.change(lambda: gr.skip(), outputs=[sender])  # 12

        # -- event 13: chat ----------------------------------------------------------------
        submit_outputs = [sender, clear_btn, delete_item, add_btn, conversations, chatbot, state]

        def updates(
            state_value: State, history: list[Message], *, busy: bool, clear_input: bool = False
        ) -> dict[Any, Any]:
            sender_update = (
                gr.update(value=None, loading=busy) if clear_input else gr.update(loading=busy)
            )
            return {
                sender: sender_update,
                clear_btn: gr.update(disabled=busy),
                delete_item: gr.update(disabled=busy),
                add_btn: gr.update(disabled=busy),
                conversations: gr.update(items=state_value["conversations"]),
                chatbot: gr.update(value=history),
                state: gr.update(value=state_value),
            }

        def submit(
            sender_value: str | None,
            settings_value: dict[str, Any] | None,
            state_value: State | None,
            turn_count: int | None,
            request: gr.Request,
        ) -> Iterator[dict[Any, Any]]:
            query = sender_value or ""
            settings = {**DEFAULT_SETTINGS, **(settings_value or {})}
            model = str(settings.get("model") or DEFAULT_SETTINGS["model"])
            if model not in MODELS:
                raise gr.Error(f"Unknown model: {model!r}")
            system = str(settings.get("sys_prompt") or "")
            budget = budget_of(settings)
            state_value = state_value or new_state()
            if not state_value["conversation_id"]:
                key = uuid.uuid4().hex
                state_value["conversation_id"] = key
                state_value["histories"][key] = []
                state_value["conversations"].append({"label": query[:40], "key": key})
            history: list[Message] = state_value["histories"][state_value["conversation_id"]]
            plan = script.plan(
                query,
                system=system,
                history=history_pairs(history),
                variant=model,
                thinking_budget=budget,
            )
            session = session_of(request)
            history.append({"role": "user", "content": query, "key": uuid.uuid4().hex})
            bot: Message = {
                "role": "assistant",
                "content": [],
                "key": uuid.uuid4().hex,
                "header": model,
                "loading": True,
                "status": "pending",
            }
            history.append(bot)
            with Generation(
                log, session, query, model=model, thinking_budget=budget, turns=turn_count
            ):
                yield updates(state_value, history, busy=True, clear_input=True)
                started = time.monotonic()
                try:
                    if plan.reasoning:
                        thinking: Message = {
                            "type": "tool",
                            "content": "",
                            "options": {"title": THINKING_TITLE, "status": "pending"},
                            "copyable": False,
                            "editable": False,
                        }
                        bot["content"] = [thinking]
                        bot["loading"] = False
                        for token in stream_tokens(
                            plan, log, session=session, tokens=plan.reasoning, kind="reasoning"
                        ):
                            thinking["content"] += token
                            yield updates(state_value, history, busy=True)
                        thinking["options"]["title"] = THINKING_DONE_TITLE
                        thinking["options"]["status"] = "done"
                    answer: Message = {"type": "text", "content": ""}
                    bot["content"] = [*bot["content"], answer]
                    for token in stream_tokens(plan, log, session=session):
                        answer["content"] += token
                        bot["loading"] = False
                        yield updates(state_value, history, busy=True)
                finally:
                    bot["loading"] = False
                    bot["status"] = "done"
                    bot["footer"] = f"{time.monotonic() - started:.2f}s"
                yield updates(state_value, history, busy=False)

        submit_event = sender.submit(  # 13
            submit,
            inputs=[sender, settings_form, state, turns],
            outputs=submit_outputs,
            concurrency_limit="default",
        )
        sender.cancel(  # 14
            lambda: gr.update(loading=False), outputs=[sender], cancels=[submit_event], queue=False
        )
    return demo


def main() -> None:
    options = parse_args(__doc__ or "")
    launch(build(EventLog(options.log)), options)


if __name__ == "__main__":
    main()
