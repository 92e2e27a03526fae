"""Export to JSON and Markdown, and validated import from JSON (pure: no Streamlit).

Import treats the file as hostile: size, nesting depth, huge numbers and invalid
characters are refused with a :class:`ChatFileError` that says what is wrong, never an
exception the page would show as a traceback."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import qwen_core

from .conversation import DEFAULT_MODEL, Chat, Message, Role, Version, _canonical, versions_of
from .display import model_label

__all__ = ["ChatFileError", "Imported", "FORMAT", "MAX_IMPORT_BYTES", "to_json",
           "to_markdown", "from_json", "model_label"]

FORMAT = "qwen-spaces-chat"
FORMAT_VERSION = 1
MAX_IMPORT_BYTES = 20_000_000


class ChatFileError(ValueError):
    """An uploaded conversation file is not one this app can read; says what is wrong."""


def _when(message: Message) -> str | None:
    if message.created is None:
        return None
    return dt.datetime.fromtimestamp(message.created, dt.UTC).isoformat(timespec="seconds")


def _message_dict(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.role is Role.ASSISTANT:
        data.update(
            model=message.model, reasoning=message.reasoning,
            stopped=message.stopped, error=message.error,
        )
    if message.created is not None:
        data["created"] = _when(message)
    if message.others:  # the turn's other versions, and where the shown one sits
        data["versions"] = [
            {"question": v.question.content,
             "answer": None if v.answer is None else _message_dict(v.answer)}
            for v in message.others
        ]
        data["shown"] = message.at
    return data


def to_json(chat: Chat, system: str | None = None) -> str:
    """The conversation as JSON (``from_json`` reads it back)."""
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": chat.model,
        "system": system,
        "messages": [_message_dict(m) for m in chat.messages],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def to_markdown(chat: Chat, system: str | None = None) -> str:
    """The conversation as a readable Markdown document."""
    lines = [
        "# Qwen Spaces Chat — conversation",
        "",
        f"- Model: {model_label(chat.model)} (`{chat.model}`)",
    ]
    if system:
        lines.append(f"- System prompt: {' '.join(system.split())}")
    notes: dict[int, str] = {}  # message index -> a line on the turn's other versions
    for index, message in enumerate(chat.messages):
        if message.role is Role.USER and message.others:
            versions, at = versions_of(chat, index)
            others = len(versions) - 1
            answered = index + 1 < len(chat.messages) and \
                chat.messages[index + 1].role is Role.ASSISTANT
            notes[index + 1 if answered else index] = (
                f"_(version {at + 1} of {len(versions)}; the {others} other "
                f"version{'s are' if others > 1 else ' is'} in the JSON export)_")
    for index, message in enumerate(chat.messages):
        lines += ["", "---", ""]
        if message.role is Role.USER:
            lines += ["**You**", "", message.content]
            if index in notes:
                lines += ["", notes[index]]
            continue
        lines += [f"**{model_label(message.model)}** (`{message.model}`)", ""]
        if message.reasoning:
            lines += ["<details><summary>Thinking</summary>", "", message.reasoning, "",
                      "</details>", ""]
        lines.append(message.content or "_(no answer text)_")
        if message.stopped:
            lines += ["", "_(stopped)_"]
        if message.error:
            lines += ["", f"> **Error:** {message.error}"]
        if index in notes:
            lines += ["", notes[index]]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Imported:
    """A conversation read from a file: the chat, its system prompt (None: not given)
    and notes about anything that was adjusted."""

    chat: Chat
    system: str | None = None
    notes: tuple[str, ...] = field(default=())


def _expect(value: Any, kinds: type | tuple[type, ...], where: str, what: str) -> Any:
    if not isinstance(value, kinds):
        raise ChatFileError(f"{where}: {what}, got {type(value).__name__}")
    return value


def _check_text(*texts: str | None) -> None:
    """Refuse text Streamlit could not show: lone UTF-16 surrogates (``"\\ud800"``)."""
    for text in texts:
        if text and not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ChatFileError(
                    f"the file contains an invalid character (a lone surrogate, "
                    f"{text[exc.start]!a}); it was not written by this app"
                ) from None


def _created(raw: Mapping[str, Any], where: str) -> float | None:
    value = _expect(raw.get("created"), (str, type(None)), f"{where} created",
                    "expected an ISO time")
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value[:40])
    except ValueError:
        raise ChatFileError(f"{where} created: expected an ISO time, got {value[:40]!r}") \
            from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def _answer(raw: Any, content: Any, where: str) -> Message:
    _expect(raw, Mapping, where, "expected an object")
    return Message(
        Role.ASSISTANT, _expect(content, str, f"{where} content", "expected text"),
        model=_expect(raw.get("model"), (str, type(None)), f"{where} model", "expected text"),
        reasoning=_expect(raw.get("reasoning", ""), str, f"{where} reasoning",
                          "expected text"),
        stopped=_expect(raw.get("stopped", False), bool, f"{where} stopped",
                        "expected true or false"),
        error=_expect(raw.get("error"), (str, type(None)), f"{where} error", "expected text"),
        created=_created(raw, where),
    )


def _question(raw: Mapping[str, Any], content: str, where: str) -> Message:
    """A question with its turn's other versions (``versions``, ``shown``), if any."""
    raw_versions = _expect(raw.get("versions", []), list, f"{where} versions",
                           "expected a list")
    others: list[Version] = []
    for j, item in enumerate(raw_versions):
        at = f"{where} version {j + 1}"
        _expect(item, Mapping, at, "expected an object with 'question' and 'answer'")
        question = _expect(item.get("question"), str, f"{at} question", "expected text")
        answer = item.get("answer")
        others.append(Version(
            Message(Role.USER, question),
            None if answer is None else _answer(answer, answer.get("content")
                                                if isinstance(answer, Mapping) else None,
                                                f"{at} answer"),
        ))
    shown = _expect(raw.get("shown", len(others)), int, f"{where} shown", "expected a number")
    if isinstance(shown, bool) or not 0 <= shown <= len(others):
        raise ChatFileError(f"{where} shown: expected 0 to {len(others)}, got {shown!r:.20}")
    return Message(Role.USER, content, created=_created(raw, where), others=tuple(others),
                   at=shown)


def _all(messages: list[Message]) -> list[Message]:
    """The messages with every version's question and answer."""
    out = list(messages)
    for message in messages:
        for version in message.others:
            out.append(version.question)
            if version.answer is not None:
                out.append(version.answer)
    return out


def from_json(data: bytes | str) -> Imported:
    """Read a conversation saved by :func:`to_json` (or a plain list of OpenAI-style
    ``{"role", "content"}`` messages). Raises :class:`ChatFileError` saying what is wrong."""
    if isinstance(data, bytes):
        if len(data) > MAX_IMPORT_BYTES:
            raise ChatFileError(f"file too large ({len(data):,} bytes; limit {MAX_IMPORT_BYTES:,})")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ChatFileError(f"not a UTF-8 text file ({exc.reason} at byte {exc.start})") \
                from None
    elif len(data) > MAX_IMPORT_BYTES:
        raise ChatFileError(f"file too large ({len(data):,} characters; limit "
                            f"{MAX_IMPORT_BYTES:,})")
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ChatFileError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise ChatFileError("not a conversation: its JSON is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise ChatFileError(f"not a conversation: {exc}") from None
    notes: list[str] = []
    model: str | None = None
    system: str | None = None
    if isinstance(doc, list):
        raw_messages = doc
    elif isinstance(doc, Mapping):
        if doc.get("format", FORMAT) != FORMAT:
            raise ChatFileError(f"not a {FORMAT} file (format is {doc.get('format')!r:.80})")
        version = doc.get("version", FORMAT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
            raise ChatFileError(
                f"file version {version!r} is newer than this app reads ({FORMAT_VERSION})"
            )
        if "messages" not in doc:
            raise ChatFileError("no 'messages' list in the file")
        raw_messages = doc["messages"]
        model = _expect(doc.get("model"), (str, type(None)), "model", "expected a model id")
        system = _expect(doc.get("system"), (str, type(None)), "system", "expected text")
    else:
        raise ChatFileError(f"expected a JSON object or list, got {type(doc).__name__}")
    _expect(raw_messages, list, "messages", "expected a list")
    messages: list[Message] = []
    systems: list[str] = []
    for i, raw in enumerate(raw_messages):
        where = f"message {i + 1}"
        _expect(raw, Mapping, where, "expected an object with 'role' and 'content'")
        role = raw.get("role")
        content = _expect(raw.get("content"), str, f"{where} content", "expected text")
        if role == "system":
            systems.append(content)
            continue
        if role not in (Role.USER.value, Role.ASSISTANT.value):
            raise ChatFileError(f"{where}: role must be 'user' or 'assistant', got {role!r:.80}")
        if role == Role.USER.value:
            messages.append(_question(raw, content, where))
            continue
        messages.append(_answer(raw, content, where))
    if systems and system is None:
        system = "\n\n".join(systems)
    _check_text(model, system, *(t for m in _all(messages)
                                 for t in (m.content, m.reasoning, m.model, m.error)))
    chosen = DEFAULT_MODEL
    if model is not None:
        try:
            chosen = _canonical(model)
        except qwen_core.InvalidRequest as exc:
            notes.append(f"{exc.message}; using {DEFAULT_MODEL} instead")
    return Imported(Chat(messages=tuple(messages), model=chosen), system, tuple(notes))


