"""Qwen Spaces Chat — chat with the free Qwen demos on Hugging Face Spaces.

Layout and wiring only: the conversation and its transitions live in ``chat_state.py``,
the Space clients in ``qwen_core``. The script reads in the order it runs: settings and
state → sidebar → history → chat input → stream the answer → store it (then rerun, so the
stored conversation is what the page shows).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import chat_state as cs
import qwen_core

st.set_page_config(page_title="Qwen Spaces Chat", page_icon=":material/forum:", layout="centered")

ss = st.session_state
MODELS = qwen_core.MODELS
SPACES: dict[str, qwen_core.Model] = {}  # Space id -> its first (default) model
for _model in MODELS.values():
    SPACES.setdefault(_model.space_id, _model)
HUB_API = "https://huggingface.co/api/spaces/"
STATE_ICONS = {  # Material icons ship with Streamlit; emoji fonts may be missing
    "running": ":green[:material/check_circle:]", "sleeping": ":orange[:material/bedtime:]",
    "building": ":blue[:material/construction:]", "error": ":red[:material/error:]",
    "local": ":violet[:material/computer:]", "custom URL": ":violet[:material/link:]",
    "unknown": ":gray[:material/help:]",
}
BUDGET = "thinking_budget"


# --- settings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    hf_token: str | None  # never shown or logged
    space_urls: dict[str, str]  # Space id -> base URL override
    problem: str | None  # why the overrides could not be read
    offline: bool  # QWEN_OFFLINE: never ask the Hub for Space states


def _secret(name: str) -> object:
    try:
        return st.secrets.get(name)
    except FileNotFoundError:  # no (readable) secrets.toml: StreamlitSecretNotFoundError
        return None


def read_settings() -> Settings:
    token = _secret("HF_TOKEN")
    token = token if isinstance(token, str) and token else os.environ.get("HF_TOKEN") or None
    urls: dict[str, str] = {}
    problem = None
    try:
        table = _secret("space_urls")
        if isinstance(table, (str, Mapping)):
            urls.update(qwen_core.parse_space_urls(table))
        urls.update(qwen_core.parse_space_urls(os.environ.get("QWEN_SPACE_URLS")))
    except qwen_core.SpaceError as exc:
        problem = f"Space URL overrides ignored: {exc}"
    offline = os.environ.get("QWEN_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    return Settings(token, urls, problem, offline)


@st.cache_data(ttl=60, show_spinner=False)
def hub_states(space_ids: tuple[str, ...]) -> dict[str, str]:
    """Each Space's live state from the Hub API, asked in parallel with a 2 s timeout;
    ``unknown`` when the Hub cannot be reached. Cached for a minute for every visitor."""

    def one(space_id: str) -> str:
        try:
            response = httpx.get(HUB_API + space_id, timeout=2.0, follow_redirects=True)
            response.raise_for_status()
            runtime = response.json().get("runtime") or {}
            return cs.space_state(runtime.get("stage"))
        except (httpx.HTTPError, ValueError, AttributeError):
            return "unknown"

    with ThreadPoolExecutor(max_workers=max(1, len(space_ids))) as pool:
        return dict(zip(space_ids, pool.map(one, space_ids), strict=True))


def space_states(settings: Settings, *, ask_hub: bool) -> dict[str, str]:
    """States of all Spaces. Overridden Spaces are never looked up on the Hub (``local``
    / ``custom URL``); nor is anything when offline or when ``ask_hub`` is False (then
    the last states this session saw are reused)."""
    states = dict(ss.get("space_states") or {})
    ask = []
    for space_id in SPACES:
        if space_id in settings.space_urls:
            states[space_id] = cs.override_state(settings.space_urls[space_id])
        elif settings.offline:
            states[space_id] = "unknown"
        else:
            ask.append(space_id)
    if ask and ask_hub:
        states.update(hub_states(tuple(ask)))
    ss.space_states = states
    return states


# --- state and callbacks ------------------------------------------------------------------


def default_system(model_id: str) -> str:
    return MODELS[model_id].adapter.default_system


def box() -> cs.ChatBox:
    """This session's conversation (see ``chat_state.ChatBox`` for why it is a box)."""
    return ss.box


def init_state() -> None:
    if "box" not in ss:
        chat = cs.new_chat()
        wanted = st.query_params.get("model")
        if wanted:
            try:
                chat = cs.switch_model(chat, wanted)
            except qwen_core.InvalidRequest:
                label = MODELS[chat.model].label
                flash("warning", f"The link names an unknown model, {wanted!r}: "
                                 f"talking to {label} instead.")
        ss.box = cs.ChatBox(chat)
        ss.system_text = default_system(chat.model)
        ss.budget = 38
        ss.editing = False
        ss.upload_gen = 0
    box().settle(timeout=5.0)  # an abandoned run may still be storing its answer
    box().refresh = False  # a full run shows any stopped answer already
    if st.query_params.get("model") != box().chat.model:
        st.query_params["model"] = box().chat.model  # so the URL can be shared


def flash(kind: str, text: str) -> None:
    ss.setdefault("flashes", []).append((kind, text))


def switch_to(model_id: str) -> None:
    chat = box().chat
    box().chat = cs.switch_model(chat, model_id)
    if ss.system_text == default_system(chat.model):  # not edited: follow the Space's
        ss.system_text = default_system(model_id)  # default
    st.query_params["model"] = box().chat.model


def on_pick_space() -> None:
    switch_to(SPACES[ss.pick_space].id)


def on_pick_model() -> None:
    switch_to(ss.pick_model)


def on_system() -> None:
    ss.system_text = ss.w_system


def on_budget() -> None:
    ss.budget = ss.w_budget


def on_new_chat() -> None:
    box().chat = cs.new_chat(box().chat.model)
    ss.editing = False


def on_regenerate() -> None:
    box().chat = cs.regenerate(box().chat)
    ss.editing = False


def on_edit(start: bool) -> None:
    ss.editing = start
    if start:
        ss.edit_text = cs.last_user_text(box().chat) or ""


def on_edit_send() -> None:
    text = ss.get("edit_text") or ""
    if not text.strip():
        flash("warning", "The edited question is empty; nothing was sent.")
        return
    box().chat = cs.edit_last(box().chat, text)
    ss.editing = False


def on_upload() -> None:
    upload = ss.get(f"upload_{ss.upload_gen}")
    if upload is None:
        return
    try:
        imported = cs.from_json(upload.getvalue())
    except cs.ChatFileError as exc:
        flash("error", f"Could not load {upload.name}: {exc}")
        return
    box().chat = imported.chat
    if imported.system is not None:
        ss.system_text = imported.system
    ss.editing = False
    ss.upload_gen += 1  # a fresh, empty uploader
    st.query_params["model"] = box().chat.model
    for note in imported.notes:
        flash("warning", note)
    flash("success", f"Loaded {upload.name}: {len(imported.chat.messages)} messages.")


def current_system(model: qwen_core.Model) -> str | None:
    return ss.system_text if model.supports_system else None


# --- sidebar ------------------------------------------------------------------------------


def sidebar(settings: Settings) -> DeltaGenerator:
    """The model picker, settings and the conversation's files. Returns the slot where
    the Spaces' live states go once known (they are filled last, so a slow Hub never
    holds up the page)."""
    model = MODELS[box().chat.model]
    with st.sidebar:
        st.subheader("Model")
        ss.pick_space, ss.pick_model = model.space_id, model.id
        st.selectbox(
            "Space", list(SPACES), key="pick_space", on_change=on_pick_space,
            format_func=lambda space_id: SPACES[space_id].space_label,
            help="The Hugging Face Space (a free Gradio demo by the Qwen team) to talk to.",
        )
        choices = [m.id for m in MODELS.values() if m.space_id == model.space_id]
        st.selectbox(
            "Model", choices, key="pick_model", on_change=on_pick_model,
            format_func=lambda model_id: MODELS[model_id].label,
            disabled=len(choices) == 1,
        )
        st.caption(cs.capabilities(model))
        states_slot = st.empty()

        st.subheader("Settings")
        ss.w_system = ss.system_text
        st.text_area(
            "System prompt", key="w_system", on_change=on_system, height=90,
            disabled=not model.supports_system,
            help="Sent with every question. Prefilled with the Space's own default.",
        )
        if not model.supports_system:
            st.caption(f"{model.space_label} takes no system prompt; this text is not sent.")
        if BUDGET in model.adapter.options:
            ss.w_budget = ss.budget
            st.slider(
                "Thinking budget (thousand tokens)", 1, 38, key="w_budget",
                on_change=on_budget, help=model.adapter.options[BUDGET],
            )

        st.subheader("Conversation")
        chat = box().chat
        system = current_system(model)
        empty = not chat.messages
        st.button("New chat", icon=":material/add_comment:", on_click=on_new_chat,
                  disabled=empty, width="stretch")
        left, right = st.columns(2)
        left.download_button(
            "Markdown", data=lambda: cs.to_markdown(chat, system), file_name="qwen-chat.md",
            mime="text/markdown", on_click="ignore", disabled=empty,
            icon=":material/download:", width="stretch",
        )
        right.download_button(
            "JSON", data=lambda: cs.to_json(chat, system), file_name="qwen-chat.json",
            mime="application/json", on_click="ignore", disabled=empty,
            icon=":material/download:", width="stretch",
        )
        st.file_uploader(
            "Continue a saved conversation (JSON)", type=["json"],
            key=f"upload_{ss.upload_gen}", on_change=on_upload,
        )
        if settings.problem:
            st.error(settings.problem)
    return states_slot


def show_states(slot: DeltaGenerator, states: dict[str, str]) -> None:
    model = MODELS[box().chat.model]
    with slot.container():
        state = states.get(model.space_id, "unknown")
        st.caption(f"Space: {STATE_ICONS.get(state, '')} {state}")
        with st.expander("All Spaces"):
            for space_id, first in SPACES.items():
                state = states.get(space_id, "unknown")
                count = sum(1 for m in MODELS.values() if m.space_id == space_id)
                st.markdown(
                    f"{STATE_ICONS.get(state, '')} **{first.space_label}** — {state}  \n"
                    f"`{space_id}` · {count} model{'s' if count > 1 else ''}  \n"
                    f"{cs.capabilities(first)}"
                )


# --- history ------------------------------------------------------------------------------


def show_history(chat: cs.Chat) -> None:
    editable = cs.last_user_index(chat) if ss.editing else None
    for i, message in enumerate(chat.messages):
        if message.role is cs.Role.USER:
            with st.chat_message("user"):
                if i == editable:
                    show_editor()
                else:
                    st.markdown(cs.display_latex(message.content))
            continue
        with st.chat_message("assistant"):
            if message.reasoning:
                with st.expander("Thinking", icon=":material/psychology:"):
                    st.markdown(cs.display_latex(message.reasoning))
            with st.container(key=f"answer-{i}"):  # also a hook for CSS and tests
                if message.content:
                    st.markdown(cs.display_latex(message.content))
                elif not message.error:
                    st.markdown("_(no answer text)_")
            if message.error:
                st.error(message.error, icon=":material/error:")
            st.caption(cs.model_caption(message))
    if cs.can_regenerate(chat) and not ss.editing:
        failed = chat.messages[-1].error is not None
        unanswered = chat.messages[-1].role is cs.Role.USER
        row = st.container(horizontal=True)
        row.button(
            "Retry" if failed else "Answer" if unanswered else "Regenerate",
            icon=":material/refresh:", on_click=on_regenerate, key="regenerate",
            type="primary" if failed else "secondary",
        )
        row.button("Edit question", icon=":material/edit:", on_click=on_edit,
                   args=(True,), key="edit")


def show_editor() -> None:
    st.text_area("Edit your question", key="edit_text")
    row = st.container(horizontal=True)
    row.button("Send", icon=":material/send:", on_click=on_edit_send, type="primary",
               key="edit_send")
    row.button("Cancel", on_click=on_edit, args=(False,), key="edit_cancel")


# --- streaming one answer -----------------------------------------------------------------


@st.fragment(run_every=0.5)
def stop_watcher() -> None:
    """Drawn only on runs that stream. The chat input's Stop ends a run without a rerun,
    so the stopped answer's mark would wait for the next click; this fragment's timer
    outlives the stopped run and reruns the page once to show it."""
    if box().refresh:
        box().refresh = False
        st.rerun()


class TurnView:
    """The answer as it streams: a progress line (queue position, ETA, the Space's
    status), a collapsed "Thinking" expander (reasoning and status lines) and the answer,
    written with ``st.write_stream`` from coalesced deltas."""

    def __init__(self) -> None:
        self.progress = st.empty()
        self.thinking = st.empty()
        self.answer = st.empty()
        self._inner: DeltaGenerator | None = None
        self._shown_at = 0.0
        self._answering = False

    def run(self, events: Iterator[qwen_core.Event], draft: cs.Draft) -> None:
        self.progress.caption(":material/hourglass_top: " + cs.queue_line(None))
        first = ""
        while True:
            rewritten: list[bool] = []
            with self.answer.container(key="answer-live"):
                st.write_stream(cs.coalesce(self._chunks(events, draft, first, rewritten)))
            if not rewritten:
                break
            first = draft.text  # the Space rewrote earlier text: draw the answer anew
        self._show_thinking(draft, final=True)
        self.progress.empty()

    def _chunks(
        self, events: Iterator[qwen_core.Event], draft: cs.Draft, first: str,
        rewritten: list[bool],
    ) -> Iterator[str]:
        if first:
            yield first
        for event in events:
            change = draft.apply(event)
            if change & cs.Change.REWRITE:
                rewritten.append(True)
                return
            if change & (cs.Change.REASONING | cs.Change.STATUS):
                self._show_thinking(draft)
            if change & cs.Change.TEXT:
                if not self._answering:
                    self._answering = True
                    self.progress.empty()
                yield draft.delta
                continue
            if not self._answering and change & (cs.Change.QUEUE | cs.Change.STATUS):
                line = draft.status or cs.queue_line(draft.queue, draft.started)
                self.progress.caption(":material/hourglass_top: " + line)
            yield ""  # a tick: lets the coalescer flush text that is due

    def _show_thinking(self, draft: cs.Draft, final: bool = False) -> None:
        if not (draft.reasoning or draft.statuses):
            return
        if self._inner is None:
            with self.thinking.expander("Thinking", icon=":material/psychology:"):
                self._inner = st.empty()
        now = time.monotonic()  # re-drawn whole, so at most every 0.1 s (longer when long)
        if not final and now - self._shown_at < max(0.1, draft.reasoning_size / 2e6):
            return
        self._shown_at = now
        lines = [f"_{line}_" for line in draft.statuses]
        self._inner.markdown("\n\n".join([*lines, draft.reasoning]).strip())


def stream_turn(settings: Settings, from_chat_input: bool) -> None:
    """Stream the pending answer, store it, and rerun so the page shows the stored
    conversation."""
    store = box()  # fetched now: after Stop, st.session_state raises on every access
    with store.turn():
        stream_answer(store, settings, from_chat_input, ss.budget)
    st.rerun()


def stream_answer(
    store: cs.ChatBox, settings: Settings, from_chat_input: bool, budget: int
) -> None:
    """Whatever ends the turn, the text so far is kept: finished, failed (the Space's
    error, shown with Retry) or stopped. Streamlit's Stop and any rerun raise
    StopException/RerunException at the next Streamlit call; they pass through untouched
    while ``finally`` stores the partial answer (into the box: st.session_state itself
    raises then) and closing the stream cancels the Space's job."""
    chat, draft = cs.begin_answer(store.chat)
    store.chat = chat
    model = MODELS[chat.model]
    options = {BUDGET: budget} if BUDGET in model.adapter.options else {}
    ended = False
    try:
        stop_watcher()
        with st.chat_message("assistant"):
            if not from_chat_input:  # the chat input shows its own Stop button
                st.button("Stop", icon=":material/stop_circle:", key="stop")
            view = TurnView()
            events = qwen_core.stream_events(
                model, cs.to_qwen_messages(chat, current_system(model)),
                base_url=settings.space_urls.get(model.space_id),
                hf_token=settings.hf_token, **options,
            )
            with contextlib.closing(events):
                view.run(events, draft)
        store.swap(chat, cs.finish(chat, draft))
        ended = True
    except qwen_core.SpaceError as exc:
        store.swap(chat, cs.fail(chat, draft, exc))
        ended = True
    finally:
        if not ended:  # Stop, a rerun, or a bug: keep what came, marked stopped
            store.refresh = store.swap(chat, cs.stop(chat, draft))


# --- the page -----------------------------------------------------------------------------

settings = read_settings()
init_state()
states_slot = sidebar(settings)

model = MODELS[box().chat.model]
st.title(":material/forum: Qwen Spaces Chat")
st.caption(
    f"Talking to **{model.label}** on the free "
    f"[{model.space_id}](https://huggingface.co/spaces/{model.space_id}) Space."
)
for kind, text in ss.pop("flashes", []):
    getattr(st, kind)(text)

show_history(box().chat)

prompt = st.chat_input(f"Ask {model.label}…", key="prompt", submit_mode="stop")
from_chat_input = False
if prompt and prompt.strip() and not box().chat.pending:
    box().chat = cs.add_user(box().chat, prompt)
    ss.editing = False
    from_chat_input = True
    with st.chat_message("user"):
        st.markdown(cs.display_latex(prompt))

if box().chat.pending:
    show_states(states_slot, space_states(settings, ask_hub=False))
    stream_turn(settings, from_chat_input)
else:
    show_states(states_slot, space_states(settings, ask_hub=True))
