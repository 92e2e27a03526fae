"""Qwen Spaces Chat — the page (run by ``streamlit_app.py``'s ``st.App``).

Layout and wiring only: the conversation and its transitions live in
:mod:`qwen_chat.conversation`, files in :mod:`qwen_chat.files`, the streaming answer in
:mod:`qwen_chat.stream_view`, storage in :mod:`qwen_chat.store` (through
:mod:`qwen_chat.persist`), the Space clients in ``qwen_core``. The script reads in the
order it runs: settings and state → sidebar → history → chat input → stream the answer →
store it (then rerun, so the stored conversation is what the page shows).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from dataclasses import replace
from functools import partial
from typing import Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import qwen_core
from qwen_chat import conversation as conv
from qwen_chat import display, files, history
from qwen_chat.blocks import split_blocks
from qwen_chat.conversation import Chat, ChatBox, Message, Role
from qwen_chat.draft import Draft
from qwen_chat.duo import Duo
from qwen_chat.duo_view import DuoView, SideView
from qwen_chat.failover import FAILOVER_ERRORS, offers
from qwen_chat.owner import owner_from
from qwen_chat.persist import AnswerSaver, Keeper
from qwen_chat.settings import (
    MAX_UPLOAD_MB,
    Settings,
    current_settings,
    default_db_url,
    hub_states,
)
from qwen_chat.stream_view import MAX_SHOWN_CHARS, TurnView

log = logging.getLogger("qwen_chat.page")

st.set_page_config(page_title="Qwen Spaces Chat", page_icon=":material/forum:", layout="centered")

ss = st.session_state
MODELS = qwen_core.MODELS
SPACES: dict[str, qwen_core.Model] = {}  # Space id -> its first (default) model
for _model in MODELS.values():
    SPACES.setdefault(_model.space_id, _model)
STATE_ICONS = {  # Material icons ship with Streamlit; emoji fonts may be missing
    "running": ":green[:material/check_circle:]", "sleeping": ":orange[:material/bedtime:]",
    "building": ":blue[:material/construction:]", "error": ":red[:material/error:]",
    "local": ":violet[:material/computer:]", "custom URL": ":violet[:material/link:]",
    "unknown": ":gray[:material/help:]",
}
BUDGET = "thinking_budget"
SHOWN_MESSAGES = 100  # earlier messages are behind "Show earlier messages"
LISTED_CHATS = 50


# --- storage --------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def _open_store(url: str):  # -> ChatStore; a StoreError is not cached: retried later
    from qwen_chat.store import ChatStore

    store = ChatStore(url)
    with contextlib.suppress(Exception):
        store.purge_deleted()
    return store


@st.cache_resource(show_spinner=False)
def _store_failures() -> dict[str, tuple[float, str]]:
    """url -> (when, why) of the last failure to open it: retried after 10 s."""
    return {}


def make_keeper(settings: Settings) -> Keeper:
    if not settings.history:
        return Keeper(None, None, "Conversations are not stored on this server "
                                  "(chat history is turned off).")
    owner = owner_from(st.context.cookies, st.user if _auth_configured() else None)
    if owner is None:
        return Keeper(None, None, "Conversations are not stored: this browser sent no "
                                  "owner cookie (cookies blocked?).")
    url = settings.db_url or default_db_url()
    _store_failed = _store_failures()
    failed = _store_failed.get(url)
    if failed and time.monotonic() - failed[0] < 10.0:
        return Keeper(None, owner, failed[1])
    from qwen_chat.store import StoreError

    try:
        store = _open_store(url)
    except StoreError as exc:
        why = f"Conversations are not being stored right now: {exc}"
        _store_failed[url] = (time.monotonic(), why)
        return Keeper(None, owner, why)
    _store_failed.pop(url, None)
    return Keeper(store, owner)


def _auth_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no or unreadable secrets: no authentication
        return False


# --- state and callbacks ------------------------------------------------------------------


def default_system(model_id: str) -> str:
    return MODELS[model_id].adapter.default_system


def box() -> ChatBox:
    """This session's conversation (see ``conversation.ChatBox`` for why it is a box)."""
    return ss.box


def keeper() -> Keeper:
    return ss.keeper_now


def flash(kind: str, text: str) -> None:
    ss.setdefault("flashes", []).append((kind, text))


def init_state(keeper_now: Keeper) -> None:
    ss.keeper_now = keeper_now
    if "box" not in ss:
        chat = conv.new_chat()
        wanted = st.query_params.get("model")
        if wanted:
            try:
                chat = conv.switch_model(chat, wanted)
            except qwen_core.InvalidRequest:
                flash("warning", "The link names an unknown model, "
                                 f"“{display.escape_markdown(wanted, 80)}”: talking to "
                                 f"{MODELS[chat.model].label} instead.")
        ss.box = ChatBox(chat)
        ss.compare = None
        wanted_other = st.query_params.get("compare")
        if wanted_other:
            try:
                ss.compare = qwen_core.resolve_model(wanted_other).id
            except qwen_core.InvalidRequest:
                flash("warning", "The link names an unknown model to compare with, "
                                 f"“{display.escape_markdown(wanted_other, 80)}”.")
        ss.system_text = default_system(chat.model)
        ss.budget = 38
        ss.editing = False
        ss.upload_gen = 0
        ss.show_all = False
    box().settle(timeout=5.0)  # an abandoned run may still be storing its answer
    box().refresh = False  # a full run shows any stopped answer already
    follow_url()
    if box().chat.messages and not box().chat.pending:
        box().chat = keeper_now.sync(box().chat, current_system(MODELS[box().chat.model]))
        box().chat, box().stamp = keeper_now.refresh(box().chat, box().stamp)
        set_chat_param(box().chat.id)
    if st.query_params.get("model") != box().chat.model:
        st.query_params["model"] = box().chat.model  # so the URL can be shared
    if (ss.compare or None) != st.query_params.get("compare"):
        if ss.compare:
            st.query_params["compare"] = ss.compare
        else:
            del st.query_params["compare"]


def follow_url() -> None:
    """``?chat=<id>`` names the conversation: open it when it differs from the one shown
    (a reload, back/forward, a bookmark, a click in the list)."""
    wanted = st.query_params.get("chat")
    chat = box().chat
    if (wanted or None) == chat.id or chat.pending:
        return
    if not wanted:
        if chat.id is not None:  # the URL lost its chat (back to a new chat)
            open_chat(conv.new_chat(chat.model), None)
        return
    found = keeper().load(wanted) if keeper().enabled else None
    if isinstance(found, tuple):
        stored, system = found
        open_chat(stored, system)
        return
    del st.query_params["chat"]
    if found is False:
        flash("warning", "That conversation cannot be opened right now: "
                         f"{display.escape_markdown(keeper().problem or 'storage is away')}")
    else:
        flash("warning", "Conversation not found. It may have been deleted, or it belongs "
                         "to another browser.")
    if chat.id is not None:
        open_chat(conv.new_chat(chat.model), None)


def open_chat(chat: Chat, system: str | None) -> None:
    box().chat = chat
    box().stamp = None
    ss.system_text = system if system is not None else default_system(chat.model)
    ss.editing = False
    ss.show_all = False
    set_chat_param(chat.id)


def set_chat_param(chat_id: str | None) -> None:
    if chat_id is None:
        if "chat" in st.query_params:
            del st.query_params["chat"]
    elif st.query_params.get("chat") != chat_id:
        st.query_params["chat"] = chat_id


def switch_to(model_id: str) -> None:
    chat = box().chat
    box().chat = conv.switch_model(chat, model_id)
    if ss.system_text == default_system(chat.model):  # not edited: follow the Space's
        ss.system_text = default_system(model_id)  # default
    st.query_params["model"] = box().chat.model
    keeper().set_model(box().chat)


# A picker's value can be the label of an option the page no longer offers: the browser
# sends every widget's value with each click, and a click made before the page has drawn
# the pickers of a model switch still carries the old Space's model label. Streamlit
# hands such a value over as is; it is not a choice the user made now, so it is ignored.


def on_pick_space() -> None:
    if ss.pick_space in SPACES:
        switch_to(SPACES[ss.pick_space].id)


def on_pick_model() -> None:
    if ss.pick_model in MODELS:
        switch_to(ss.pick_model)


def on_system() -> None:
    ss.system_text = ss.w_system
    keeper().set_system(box().chat, ss.system_text)


def on_budget() -> None:
    ss.budget = ss.w_budget


def on_new_chat() -> None:
    open_chat(conv.new_chat(box().chat.model), None)


def on_open_chat(chat_id: str) -> None:
    found = keeper().load(chat_id)
    if isinstance(found, tuple):
        open_chat(*found)
    else:
        flash("warning", "That conversation could not be opened.")


def on_regenerate() -> None:
    box().chat = conv.regenerate(box().chat)  # the answer it had stays as a version
    ss.editing = False


def on_answer_with(model_id: str, shown: bool) -> None:
    """Retry one side of a comparison: ask the last question again of ``model_id``. The
    side the conversation continues with (``shown``) gets the new answer as its shown
    one; the other side's new answer becomes a version."""
    chat = box().chat
    if shown:
        box().chat = replace(conv.regenerate(chat), asking=model_id)
    else:
        box().chat = conv.answer_with(chat, model_id)
    ss.editing = False


def on_ask_other(model_id: str) -> None:
    """The Space is down: ask the last question of ``model_id`` instead (the chat goes on
    with it; the failed answer stays as a version)."""
    switch_to(model_id)
    box().chat = conv.regenerate(box().chat)
    ss.editing = False


def on_choose(index: int, position: int) -> None:
    """Show another version of the turn whose question is at ``index``."""
    try:
        box().chat = conv.choose(box().chat, index, position)
    except conv.ChatError:
        return  # a stale click (the chat changed meanwhile)
    keeper().choose(box().chat, index)
    ss.editing = False


def on_compare() -> None:
    if ss.w_compare_on:
        picked = ss.get("w_compare")
        ss.compare = picked if picked in MODELS else default_partner(box().chat.model)
    else:
        ss.compare = None


def on_compare_model() -> None:
    if ss.w_compare in MODELS:
        ss.compare = ss.w_compare


def default_partner(model_id: str) -> str:
    """The model a comparison starts with: the first one of another Space."""
    space = MODELS[model_id].space_id
    return next(m.id for m in MODELS.values() if m.space_id != space)


def on_edit(start: bool) -> None:
    ss.editing = start
    if start:
        ss.edit_text = conv.last_user_text(box().chat) or ""


def on_edit_send() -> None:
    text = ss.get("edit_text") or ""
    if not text.strip():
        flash("warning", "The edited question is empty; nothing was sent.")
        return
    box().chat = conv.edit_last(box().chat, text)  # the question as it was stays a version
    box().chat = keeper().sync(box().chat, ss.system_text)
    ss.editing = False


def on_upload() -> None:
    upload = ss.get(f"upload_{ss.upload_gen}")
    if upload is None:
        return
    name = display.escape_markdown(upload.name, 80)
    if upload.size > files.MAX_IMPORT_BYTES:  # checked before reading it
        flash("error", f"Could not load {name}: the file has {upload.size:,} bytes; the "
                       f"limit is {files.MAX_IMPORT_BYTES:,}.")
        return
    try:
        imported = files.from_json(upload.getvalue())
    except files.ChatFileError as exc:
        flash("error", f"Could not load {name}: {display.escape_markdown(str(exc), 300)}")
        return
    chat = replace(imported.chat, id=None)
    if imported.system is not None:
        ss.system_text = imported.system
    stored = keeper().sync(chat, ss.system_text)  # a new stored conversation
    open_chat(stored, imported.system)
    ss.upload_gen += 1  # a fresh, empty uploader
    st.query_params["model"] = box().chat.model
    for note in imported.notes:
        flash("warning", display.escape_markdown(note, 300))
    flash("success", f"Loaded {name}: {len(imported.chat.messages)} messages.")


def on_rename(chat_id: str) -> None:
    title = " ".join((ss.get("rename_text") or "").split())[:200]
    if not title or keeper().store is None:
        return
    keeper()._call(lambda s, o: s.rename(o, chat_id, title))
    if box().chat.id == chat_id:
        box().chat = replace(box().chat, title=title)


def on_delete(chat_id: str, title: str) -> None:
    if keeper().store is None:
        return
    keeper()._call(lambda s, o: s.delete_chat(o, chat_id))
    ss.deleted = (chat_id, title)
    if box().chat.id == chat_id:
        open_chat(conv.new_chat(box().chat.model), None)


def on_undo_delete() -> None:
    deleted = ss.pop("deleted", None)
    if deleted and keeper().store is not None:
        keeper()._call(lambda s, o: s.restore_chat(o, deleted[0]))


def on_show_all() -> None:
    ss.show_all = True


def current_system(model: qwen_core.Model) -> str | None:
    return ss.system_text if model.supports_system else None


def system_for(model: qwen_core.Model) -> str | None:
    """The system prompt ``model`` gets when it is not the chat's model (the other side of
    a comparison): the sidebar's, or its own Space's default while that is not edited."""
    if not model.supports_system:
        return None
    if ss.system_text == default_system(box().chat.model):
        return default_system(model.id)
    return ss.system_text


# --- sidebar ------------------------------------------------------------------------------


def sidebar(settings: Settings) -> DeltaGenerator:
    """The model picker, settings, the conversation list and files. Returns the slot
    where the Spaces' live states go once known (filled last, so a slow Hub never holds
    up the page)."""
    model = MODELS[box().chat.model]
    with st.sidebar:
        st.button("New chat", icon=":material/add_comment:", on_click=on_new_chat,
                  disabled=not box().chat.messages, width="stretch")
        conversations()
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
        st.caption(display.capabilities(model))
        states_slot = st.empty()
        ss.w_compare_on = bool(ss.compare)
        st.toggle("Compare with a second model", key="w_compare_on", on_change=on_compare,
                  help="Each question is answered by both models at once, side by side. "
                       "Share the page's URL to share the comparison.")
        if ss.compare:
            partners = [m.id for m in MODELS.values() if m.id != model.id]
            if ss.compare not in partners:
                ss.compare = default_partner(model.id)
            ss.w_compare = ss.compare
            st.selectbox("Second model", partners, key="w_compare",
                         on_change=on_compare_model,
                         format_func=lambda model_id: MODELS[model_id].label)

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

        st.subheader("This conversation")
        chat = box().chat
        system = current_system(model)
        empty = not chat.messages
        left, right = st.columns(2)
        left.download_button(
            "Markdown", data=lambda: files.to_markdown(chat, system),
            file_name="qwen-chat.md", mime="text/markdown", on_click="ignore",
            disabled=empty, icon=":material/download:", width="stretch",
        )
        right.download_button(
            "JSON", data=lambda: files.to_json(chat, system), file_name="qwen-chat.json",
            mime="application/json", on_click="ignore", disabled=empty,
            icon=":material/download:", width="stretch",
        )
        st.file_uploader(
            "Continue a saved conversation (JSON)", type=["json"],
            key=f"upload_{ss.upload_gen}", on_change=on_upload,
            help=f"A file exported by this app, up to {MAX_UPLOAD_MB} MB.",
        )
        for problem in settings.problems:
            st.error(display.escape_markdown(problem, 400), icon=":material/settings:")
    return states_slot


def conversations() -> None:
    """The person's stored conversations, newest first, grouped by age, with search,
    rename and delete (with Undo)."""
    k = keeper()
    if _auth_configured():  # signed in, the list follows the person to any browser
        if st.user.is_logged_in:
            who = str(st.user.get("name") or st.user.get("email") or "you")
            row = st.container(horizontal=True, vertical_alignment="center")
            row.caption(f"Signed in as {display.escape_markdown(who, 60)}")
            if row.button("Sign out", type="tertiary", key="logout"):
                st.logout()
        elif st.button("Sign in to keep your chats across browsers", key="login",
                       icon=":material/login:", width="stretch"):
            st.login()
    if not k.enabled:
        st.caption(f":material/cloud_off: {display.escape_markdown(k.reason or '', 300)}")
        return
    deleted = ss.get("deleted")
    if deleted:
        row = st.container(horizontal=True)
        row.caption(f"Deleted “{display.escape_markdown(deleted[1], 40)}”.")
        row.button("Undo", key="undo_delete", on_click=on_undo_delete, type="tertiary",
                   icon=":material/undo:")
    query = st.text_input("Search conversations", key="chat_query", placeholder="Search",
                          label_visibility="collapsed", icon=":material/search:",
                          help="Titles and message text (3 or more characters; shorter "
                               "searches match titles).")
    wanted = query.strip()
    if 0 < len(wanted) < 3:  # too short for the text index: titles of recent chats only
        recent = k._call(lambda s, o: s.list_chats(o, None, limit=500))
        summaries = [c for c in recent if wanted.casefold() in c.title.casefold()] \
            if isinstance(recent, list) else recent
    else:
        summaries = k._call(lambda s, o: s.list_chats(o, wanted or None,
                                                      limit=LISTED_CHATS + 1))
    if k.problem:
        st.warning(f"Conversations are not being stored right now: "
                   f"{display.escape_markdown(k.problem, 300)}", icon=":material/database:")
    if not isinstance(summaries, list):
        return
    if not summaries:
        st.caption("No conversation matches." if query.strip() else
                   "Your conversations will be listed here.")
        return
    now = dt.datetime.now(dt.UTC)
    current = box().chat.id
    group = None
    with st.container(height=260 if len(summaries) > 8 else "content", border=False):
        for summary in summaries[:LISTED_CHATS]:
            age = now - _aware(summary.updated_at)
            label = ("Today" if age < dt.timedelta(days=1) else
                     "Previous 7 days" if age < dt.timedelta(days=7) else "Older")
            if label != group:
                group = label
                st.caption(label)
            row = st.container(horizontal=True, gap="small", vertical_alignment="center")
            row.button(
                display.escape_markdown(summary.title or "Untitled", 60),
                key=f"open_{summary.id}", on_click=on_open_chat, args=(summary.id,),
                type="primary" if summary.id == current else "tertiary", width="stretch",
            )
            with row.popover("", icon=":material/more_vert:", key=f"menu_{summary.id}"):
                st.text_input("Rename", value=summary.title, key=f"rename_{summary.id}",
                              max_chars=200)
                ss.rename_text = ss.get(f"rename_{summary.id}") or summary.title
                st.button("Rename", key=f"do_rename_{summary.id}", on_click=on_rename,
                          args=(summary.id,), icon=":material/edit:")
                st.button("Delete", key=f"delete_{summary.id}", on_click=on_delete,
                          args=(summary.id, summary.title), icon=":material/delete:")
    if len(summaries) > LISTED_CHATS:
        st.caption(f"Showing the {LISTED_CHATS} most recent; search to find older ones.")


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


VERDICT_ICONS = {
    "fits": ":green[:material/check:]", "moved": ":green[:material/check:]",
    "changed": ":red[:material/link_off:]", "unsupported": ":red[:material/block:]",
    "asleep": ":orange[:material/bedtime:]", "unreachable": ":gray[:material/cloud_off:]",
}


def show_states(slot: DeltaGenerator, states: dict[str, str],
                verdicts: dict[str, tuple[str, str]]) -> None:
    model = MODELS[box().chat.model]
    with slot.container():
        state = states.get(model.space_id, "unknown")
        st.caption(f"Space: {STATE_ICONS.get(state, '')} {state}")
        with st.expander("All Spaces"):
            for space_id, first in SPACES.items():
                state = states.get(space_id, "unknown")
                count = sum(1 for m in MODELS.values() if m.space_id == space_id)
                verdict, detail = verdicts.get(space_id, ("not checked", ""))
                st.markdown(
                    f"{STATE_ICONS.get(state, '')} **{first.space_label}** — {state}  \n"
                    f"`{space_id}` · {count} model{'s' if count > 1 else ''}  \n"
                    f"{display.capabilities(first)}  \n"
                    f"Adapter: {VERDICT_ICONS.get(verdict, '')} {verdict}",
                    help=display.escape_markdown(detail, 400) if detail else None,
                )
            st.caption("Adapter: whether this app still fits the Space's chat event "
                       "(checked from its `/config`, as `python -m qwen_core --doctor` "
                       "does; every minute at most).")


@st.cache_data(ttl=60, show_spinner=False)
def cached_verdicts(urls: tuple[tuple[str, str], ...], spaces: tuple[str, ...],
                    hf_token: str | None) -> dict[str, tuple[str, str]]:
    """Each Space's doctor verdict, cached for a minute for every visitor."""
    checks = qwen_core.check_all(spaces, base_urls=dict(urls), hf_token=hf_token, timeout=5.0)
    return {c.space_id: (c.state, display.redact(c.detail)) for c in checks}


def space_verdicts(settings: Settings, *, ask: bool) -> dict[str, tuple[str, str]]:
    """Doctor verdicts of the Spaces that may be asked (offline: only those with a URL
    override); the last ones this session saw when ``ask`` is False."""
    verdicts = dict(ss.get("space_verdicts") or {})
    spaces = tuple(s for s in SPACES if not settings.offline or s in settings.space_urls)
    if ask and spaces:
        try:
            verdicts.update(cached_verdicts(tuple(sorted(settings.space_urls.items())),
                                            spaces, settings.hf_token))
        except qwen_core.SpaceError as exc:
            log.warning("doctor: %s", exc)
    ss.space_verdicts = verdicts
    return verdicts


@st.cache_data(ttl=60, show_spinner=False)
def cached_hub_states(space_ids: tuple[str, ...]) -> dict[str, str]:
    """Cached for a minute for every visitor."""
    return hub_states(space_ids)


def space_states(settings: Settings, *, ask_hub: bool) -> dict[str, str]:
    """States of all Spaces. Overridden Spaces are never looked up on the Hub (``local``
    / ``custom URL``); nor is anything when offline or when ``ask_hub`` is False (then
    the last states this session saw are reused)."""
    states = dict(ss.get("space_states") or {})
    ask = []
    for space_id in SPACES:
        if space_id in settings.space_urls:
            states[space_id] = display.override_state(settings.space_urls[space_id])
        elif settings.offline:
            states[space_id] = "unknown"
        else:
            ask.append(space_id)
    if ask and ask_hub:
        states.update(cached_hub_states(tuple(ask)))
    ss.space_states = states
    return states


# --- history ------------------------------------------------------------------------------


def show_text(text: str, settings: Settings, key: str) -> None:
    """A message's Markdown in the blocks a streamed answer is drawn in (so it looks the
    same after a reload), cut at the display cap (the whole text is downloadable)."""
    for block in split_blocks(text[:MAX_SHOWN_CHARS]):
        st.markdown(display.display_markdown(block, images=settings.remote_images))
    if len(text) > MAX_SHOWN_CHARS:
        st.caption(f"Showing the first {MAX_SHOWN_CHARS:,} of {len(text):,} characters.")
        st.download_button("Download the whole text", data=text, file_name="qwen-answer.md",
                           mime="text/markdown", on_click="ignore", key=f"full-{key}",
                           icon=":material/download:")


def show_history(chat: Chat, settings: Settings) -> None:
    """The conversation, in one container; a run that streams the answer to a question
    just asked leaves that container as the page shows it and draws only the question
    (see :mod:`qwen_chat.history`), so the answer's first text is not queued behind the
    whole history."""
    container = st.container(key="history")
    path = container_path(container)
    if path is not None and history.can_keep(chat, ss.get("drawn_history"), path):
        show_messages(chat, settings, len(chat.messages) - 1)  # only the new question
    else:
        with container:
            start = 0
            if len(chat.messages) > SHOWN_MESSAGES and not ss.get("show_all"):
                start = len(chat.messages) - SHOWN_MESSAGES
                st.button(f"Show {start:,} earlier messages", icon=":material/expand_less:",
                          on_click=on_show_all, key="show_all_btn", type="tertiary")
            pair = show_messages(chat, settings, start)
        ss.drawn_history = None if path is None else history.drawn(
            chat, path, plain=pair is None and not ss.editing)
    if conv.can_regenerate(chat) and not ss.editing:
        failed = chat.messages[-1].error is not None
        unanswered = chat.messages[-1].role is Role.USER
        row = st.container(horizontal=True)
        row.button(
            "Retry" if failed else "Answer" if unanswered else "Regenerate",
            icon=":material/refresh:", on_click=on_regenerate, key="regenerate",
            type="primary" if failed else "secondary",
        )
        row.button("Edit question", icon=":material/edit:", on_click=on_edit,
                   args=(True,), key="edit")


def container_path(container: DeltaGenerator) -> tuple[int, ...] | None:
    """Where ``container`` is on the page (Streamlit's delta path), if Streamlit says."""
    try:
        return tuple(container._block_delta_path) or None
    except Exception:  # noqa: BLE001 - a private attribute: without it, nothing is kept
        return None


def show_messages(chat: Chat, settings: Settings, start: int) -> tuple[int, int] | None:
    """``chat.messages[start:]``; returns the comparison shown with the last answer."""
    editable = conv.last_user_index(chat) if ss.editing else None
    pair = compare_pair(chat, ss.get("compare"))
    for i in range(start, len(chat.messages)):
        message = chat.messages[i]
        if message.role is Role.USER:
            with st.chat_message("user"):
                if i == editable:
                    show_editor()
                else:
                    show_text(message.content, settings, f"q{i}")
                if i == len(chat.messages) - 1 and message.others and not chat.pending:
                    show_pager(chat, i)  # a version of this turn that has no answer
            continue
        with st.chat_message("assistant"):
            if pair is not None and i == len(chat.messages) - 1:
                show_pair(chat, i, pair, settings)
                continue
            show_answer(chat, message, i, settings)
            if i > 0 and chat.messages[i - 1].role is Role.USER and chat.messages[i - 1].others:
                show_pager(chat, i - 1)
    return pair


def show_answer(chat: Chat, message: Message, i: int, settings: Settings,
                key: str = "") -> None:
    """The answer at ``chat.messages[i]`` (or, with ``key``, a version shown beside it):
    its Thinking, text, error (with a way out when the Space is down) and caption."""
    if message.reasoning:
        with st.expander("Thinking", icon=":material/psychology:"):
            show_text(message.reasoning, settings, f"r{i}{key}")
    with st.container(key=f"answer-{i}{key}"):  # also a hook for CSS and tests
        if message.content:
            show_text(message.content, settings, f"a{i}{key}")
        elif not message.error:
            st.markdown("_(no answer text)_")
    if message.error:
        st.error(display.escape_markdown(message.error, 2000), icon=":material/error:")
        if not key and i == len(chat.messages) - 1 and message.error_kind in FAILOVER_ERRORS:
            show_failover(chat, message)
    caption = display.model_caption(message)
    if message.created:
        caption += " · " + time.strftime("%H:%M", time.localtime(message.created))
    st.caption(caption + (" · :material/edit_note: being written in another tab"
                          if message.streaming else ""))


def show_pager(chat: Chat, index: int) -> None:
    """``‹ 2/3 ›`` under a turn with versions: switch which one the conversation keeps."""
    versions, at = conv.versions_of(chat, index)
    with st.container(horizontal=True, vertical_alignment="center", key=f"pager-{index}"):
        st.button("", icon=":material/chevron_left:", key=f"v-prev-{index}",
                  on_click=on_choose, args=(index, at - 1), disabled=at == 0,
                  type="tertiary", help="Earlier version")
        st.caption(f"{at + 1}/{len(versions)}", width="content")
        st.button("", icon=":material/chevron_right:", key=f"v-next-{index}",
                  on_click=on_choose, args=(index, at + 1),
                  disabled=at == len(versions) - 1, type="tertiary", help="Later version")


def show_failover(chat: Chat, message: Message) -> None:
    """The Space is asleep, full or limiting: offer models of running Spaces instead."""
    failed = MODELS.get(message.model or chat.model)
    if failed is None:
        return
    edited = bool(ss.system_text.strip()) and ss.system_text != default_system(chat.model)
    earlier = sum(1 for m in chat.messages if m.role is Role.USER) > 1
    choices = offers(failed, ss.get("space_states") or {}, uses_system=edited,
                     uses_history=earlier)
    if not choices:
        st.caption("No other running Space takes what this conversation uses; try again "
                   "in a minute.")
        return
    row = st.container(horizontal=True)
    for model in choices:
        row.button(f"Ask {model.label} instead", icon=":material/alt_route:",
                   key=f"failover-{model.id}", on_click=on_ask_other, args=(model.id,))


def compare_pair(chat: Chat, other: str | None) -> tuple[int, int] | None:
    """In compare mode, the last turn's newest answers by the chat's model and by
    ``other``, as positions among that turn's versions (None: not such a turn)."""
    if not other or chat.pending or len(chat.messages) < 2:
        return None
    index = len(chat.messages) - 2
    if chat.messages[index].role is not Role.USER or chat.messages[-1].role is Role.USER:
        return None
    versions, at = conv.versions_of(chat, index)
    question = chat.messages[index].content
    found: dict[str, int] = {}
    for position, version in enumerate(versions):
        if version.answer is not None and version.question.content == question:
            found[version.answer.model or ""] = position
    if chat.model not in found or other not in found or at not in found.values():
        return None
    return found[chat.model], found[other]


def show_pair(chat: Chat, i: int, pair: tuple[int, int], settings: Settings) -> None:
    """The last turn of a comparison: both answers side by side, each with its Retry;
    "Continue with this answer" picks the one later questions send as history."""
    versions, at = conv.versions_of(chat, i - 1)
    for column, position, side in zip(st.columns(2), pair, ("left", "right"), strict=True):
        answer = versions[position].answer
        assert answer is not None
        with column:
            st.markdown(f"**{display.escape_markdown(display.model_label(answer.model), 80)}**")
            show_answer(chat, answer, i, settings, key=f"-{side}")
            row = st.container(horizontal=True)
            if position == at:
                row.caption(":material/check: The conversation continues with this answer")
            else:
                row.button("Continue with this answer", icon=":material/check:",
                           key=f"continue-{side}", on_click=on_choose,
                           args=(i - 1, position))
            row.button("Retry", icon=":material/refresh:", key=f"retry-{side}",
                       on_click=on_answer_with, args=(answer.model, position == at),
                       type="primary" if answer.error else "secondary")
    if len(versions) > 2:
        show_pager(chat, i - 1)


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


def stream_turn(settings: Settings, from_chat_input: bool) -> None:
    """Stream the pending answer, store it, and rerun so the page shows the stored
    conversation."""
    holder = box()  # fetched now: after Stop, st.session_state raises on every access
    with holder.turn():
        stream_answer(holder, keeper(), settings, from_chat_input, ss.budget)
    wait_until_sent()
    st.rerun()


def wait_until_sent(limit: float = 0.5) -> None:
    """Streamlit drops a run's messages not yet sent when the next run starts. Before the
    rerun that follows a stream, wait (at most ``limit`` seconds) until the stream's last
    deltas have left for the browser, so the live answer ends whole rather than jumping
    to the stored one. Streamlit's flush loop sends every 5 ms; measured in the render
    test, without this wait 4 of 5 streams under load lost their last deltas."""
    queue = browser_queue()
    deadline = time.monotonic() + limit
    while queue is not None and not queue.is_empty() and time.monotonic() < deadline:
        time.sleep(0.005)


def browser_queue() -> Any:
    """This session's queue of messages to the browser (Streamlit internals: None if
    they have moved)."""
    try:
        from streamlit.runtime import Runtime
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        info = Runtime.instance()._session_mgr.get_session_info(ctx.session_id)
        return info.session._browser_queue
    except Exception:  # noqa: BLE001 - internals: without them, no wait
        return None


def stream_answer(
    holder: ChatBox, keeper_now: Keeper, settings: Settings, from_chat_input: bool,
    budget: int,
) -> None:
    """Whatever ends the turn, the text so far is kept: finished, failed (the Space's
    error, shown with Retry) or stopped. Streamlit's Stop and any rerun raise
    StopException/RerunException at the next Streamlit call; they pass through untouched
    while ``finally`` stores the partial answer (into the box: st.session_state itself
    raises then; and into the store) and closing the stream cancels the Space's job.
    One side of a comparison asked again (``Chat.asking`` on an answered turn) becomes a
    version of the turn; the answer shown stays."""
    aside = holder.chat.asking is not None and holder.chat.messages[-1].role is Role.ASSISTANT
    model = MODELS[holder.chat.asking or holder.chat.model]
    system = system_for(model) if holder.chat.asking else current_system(model)
    chat, draft = conv.begin_answer(holder.chat)
    holder.chat = chat
    saver: AnswerSaver = keeper_now.begin_answer(chat, draft, show=not aside)
    ended: Chat | None = None
    try:
        stop_watcher()
        with st.chat_message("assistant"):
            if not from_chat_input:  # the chat input shows its own Stop button
                st.button("Stop", icon=":material/stop_circle:", key="stop")
            view = TurnView(images=settings.remote_images, on_event=saver.progress)
            events = qwen_core.stream_events(
                model, conv.to_qwen_messages(chat, system),
                base_url=space_url(settings, model),
                hf_token=settings.hf_token, **model_options(model, budget),
                limits=limits_of(settings),
            )
            with contextlib.closing(events):
                view.run(events, draft)
        ended = conv.finish(chat, draft)
    except qwen_core.SpaceError as exc:
        ended = conv.fail(chat, draft, display.redact(str(exc)), partial=exc.partial,
                          kind=type(exc).__name__)
    finally:
        stopped = ended is None  # Stop, a rerun, or a bug: keep what came, marked stopped
        if stopped:
            ended = conv.stop(chat, draft)
        assert ended is not None
        last = saver.end(ended.messages[-1])
        ended = replace(ended, messages=(*ended.messages[:-1], last))
        if aside:
            ended = conv.keep_shown(ended)
        swapped = holder.swap(chat, ended)
        if stopped:
            holder.refresh = swapped


def space_url(settings: Settings, model: qwen_core.Model) -> str:
    """Where ``model``'s Space is asked: the settings' override, else its public URL
    (never qwen_core's own reading of QWEN_SPACE_URLS, which the settings may have
    refused)."""
    return settings.space_urls.get(model.space_id) or model.adapter.url()


def model_options(model: qwen_core.Model, budget: int) -> dict[str, int]:
    return {BUDGET: budget} if BUDGET in model.adapter.options else {}


def limits_of(settings: Settings) -> qwen_core.Limits:
    return qwen_core.Limits(max_answer_chars=settings.max_answer_chars,
                            max_turn_seconds=settings.max_turn_seconds)


# --- streaming two answers side by side -----------------------------------------------------


def stream_compare(settings: Settings, from_chat_input: bool) -> None:
    """Compare mode: the pending question is answered by both models at once."""
    holder = box()
    models = (MODELS[holder.chat.model], MODELS[ss.compare])
    systems = (current_system(models[0]), system_for(models[1]))
    with holder.turn():
        stream_pair(holder, keeper(), settings, from_chat_input, ss.budget, models, systems)
    wait_until_sent()
    st.rerun()


def stream_pair(
    holder: ChatBox, keeper_now: Keeper, settings: Settings, from_chat_input: bool,
    budget: int, models: tuple[qwen_core.Model, ...], systems: tuple[str | None, ...],
) -> None:
    """Both answers stream at once from one loop (:class:`~qwen_chat.duo.Duo`), each in
    its column; whatever ends the turn, each side keeps what came, finished, failed or
    stopped. The first model's answer is the one the conversation continues with, the
    other is a version of the turn."""
    chat, _ = conv.begin_answer(holder.chat)
    holder.chat = chat
    drafts = [Draft(model.id) for model in models]
    savers = [keeper_now.begin_answer(chat, draft, show=i == 0)
              for i, draft in enumerate(drafts)]
    sides: list[SideView] = []
    duo: Duo | None = None
    finished = False
    try:
        stop_watcher()
        with st.chat_message("assistant"):
            if not from_chat_input:
                st.button("Stop", icon=":material/stop_circle:", key="stop")
            for column, model, draft, saver in zip(st.columns(2), models, drafts, savers,
                                                   strict=True):
                with column:
                    st.markdown(f"**{display.escape_markdown(model.label, 80)}**")
                    sides.append(SideView(draft, images=settings.remote_images,
                                          on_event=saver.progress))
            starts = [
                partial(qwen_core.astream_events, model, conv.to_qwen_messages(chat, system),
                        base_url=space_url(settings, model),
                        hf_token=settings.hf_token, limits=limits_of(settings),
                        **model_options(model, budget))
                for model, system in zip(models, systems, strict=True)
            ]
            duo = Duo(starts)
            DuoView(sides).run(duo)
        finished = True
    finally:
        if duo is not None:
            duo.close()  # Stop or a rerun: cancel both Space jobs
        answers = []
        for i, draft in enumerate(drafts):
            ended = sides[i].ended if i < len(sides) else None
            answers.append(savers[i].end(side_answer(chat, draft, ended, finished)))
        done = conv.add_answers(chat, tuple(answers))
        swapped = holder.swap(chat, done)
        if not finished:
            holder.refresh = swapped


def side_answer(chat: Chat, draft: Draft, ended: object, finished: bool) -> Message:
    """One side's answer as it ended: finished, failed (the Space's error) or stopped."""
    error = getattr(ended, "error", None)
    if ended is None or not finished and error is None and not draft.done:
        return conv.stop(chat, draft).messages[-1]
    if isinstance(error, qwen_core.SpaceError):
        return conv.fail(chat, draft, display.redact(str(error)), partial=error.partial,
                         kind=type(error).__name__).messages[-1]
    if error is not None:
        log.error("compare: one side failed", exc_info=error)
        return conv.fail(chat, draft, "This answer failed because of a bug in the app; "
                         "try again.", kind=type(error).__name__).messages[-1]
    return conv.finish(chat, draft).messages[-1]


# --- the page -----------------------------------------------------------------------------


def first_turn(prompt: str, model: qwen_core.Model) -> bool:
    """The person sent ``prompt``: add it (a new chat is stored and gets its id now)."""
    if len(prompt) > model.adapter.max_input_chars:
        flash("error", f"Your message has {len(prompt):,} characters; {model.label} "
                       f"accepts at most {model.adapter.max_input_chars:,}.")
        return False
    box().chat = conv.add_user(box().chat, prompt)
    box().chat = keeper().sync(box().chat, current_system(model))
    set_chat_param(box().chat.id)
    ss.editing = False
    return True


# Sent first on every run (Streamlit drops a run's styles when the next one starts):
# - the renderers' warm-up sample (see warm_renderers) is never seen;
# - the history a streaming run keeps from the run before (qwen_chat.history) is
#   Streamlit's "stale" until that run ends, and would be faded for the whole answer.
PAGE_CSS = """<style>
.st-key-warm-up { display: none; }
.st-key-history [data-stale="true"], .st-key-history [data-testid="stChatMessage"] {
  opacity: 1 !important; }
</style>"""


def main() -> None:
    st.html(PAGE_CSS)
    warm_renderers()
    settings = current_settings()
    init_state(make_keeper(settings))
    states_slot = sidebar(settings)

    model = MODELS[box().chat.model]
    st.title(":material/forum: Qwen Spaces Chat")
    st.caption(
        f"Talking to **{model.label}** on the free "
        f"[{model.space_id}](https://huggingface.co/spaces/{model.space_id}) Space."
    )
    # the chat input is read first (it is pinned to the bottom wherever it is called), so
    # a question just sent is drawn as history and no earlier turn's buttons show while
    # its answer streams
    prompt = st.chat_input(f"Ask {model.label}…", key="prompt", submit_mode="stop",
                           max_chars=model.adapter.max_input_chars)
    from_chat_input = bool(prompt and prompt.strip() and not box().chat.pending
                           and first_turn(prompt, model))
    for kind, text in ss.pop("flashes", []):
        getattr(st, kind)(text)

    show_history(box().chat, settings)

    if box().chat.pending:
        show_states(states_slot, space_states(settings, ask_hub=False),
                    space_verdicts(settings, ask=False))
        if ss.compare and box().chat.asking is None and ss.compare != box().chat.model:
            stream_compare(settings, from_chat_input)
        else:
            stream_turn(settings, from_chat_input)
    else:
        show_states(states_slot, space_states(settings, ask_hub=True),
                    space_verdicts(settings, ask=True))


# Markdown with a code fence, math and an emoji shortcode, drawn hidden first on every
# run (always the same first element: while a run streams, Streamlit hands a stale
# block's children to whatever new block takes its place). The browser loads the code
# highlighter, KaTeX and the emoji plugin the first time a Markdown element needs them
# (measured: 250-400 ms each on a fresh page); without this, that happened while the
# first answer streamed, freezing it.
WARM_UP = "`x` :wave: $x^2$\n\n```python\nx = 1\n```"


def warm_renderers() -> None:
    with st.container(key="warm-up"):  # hidden by PAGE_CSS
        st.markdown(WARM_UP)


try:
    main()
except Exception:  # a bug: the visitor gets a readable message, the log the traceback
    log.exception("the page failed")
    st.error("Something went wrong while drawing this page. Your conversation is kept; "
             "reload the page to continue.", icon=":material/error:")
