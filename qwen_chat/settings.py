"""The app's settings, read from Streamlit's secrets and the environment, and the Spaces'
live states from the Hub. Imports nothing of the page: the page, the API routes and the
owner middleware all read their settings here.

Secrets win over the environment for every key. What a visitor may see of a setting is
decided here too: problems are described without echoing values (a malformed URL may
hold a password), and the token, database URL and API keys never appear in a repr."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import qwen_core

from .display import space_state

__all__ = ["Settings", "read_settings", "load_secrets", "current_settings", "hub_states",
           "default_db_url", "HUB_API"]

HUB_API = "https://huggingface.co/api/spaces/"
ON = {"1", "true", "yes", "on"}
OFF = {"0", "false", "no", "off", "none", ""}
MAX_UPLOAD_MB = 20  # matches server.maxUploadSize in .streamlit/config.toml


@dataclass(frozen=True)
class Settings:
    hf_token: str | None = field(repr=False)  # never shown or logged
    space_urls: dict[str, str] = field(default_factory=dict)  # Space id -> base URL
    problems: tuple[str, ...] = ()  # for the deployer, safe to show (no values echoed)
    offline: bool = False  # QWEN_OFFLINE: never ask the Hub for Space states
    remote_images: bool = False  # QWEN_REMOTE_IMAGES: let answers load remote images
    history: bool = True  # QWEN_CHAT_HISTORY=off stores nothing
    db_url: str | None = field(default=None, repr=False)  # may carry a password
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    api_streams_per_key: int = 4
    cors_origins: tuple[str, ...] = ()
    max_answer_chars: int = 10_000_000
    max_turn_seconds: float = 1800.0


def load_secrets() -> tuple[Mapping[str, Any], str | None]:
    """Streamlit's secrets as a plain mapping, and what is wrong with them (None if
    nothing: a missing secrets.toml is normal)."""
    import streamlit as st

    try:
        return st.secrets.to_dict(), None
    except FileNotFoundError as exc:  # StreamlitSecretNotFoundError
        text = str(exc)
        if text.startswith("No secrets found"):
            return {}, None
        where = re.search(r"\(at line \d+, column \d+\)", text)
        return {}, ("secrets.toml could not be read" + (f" {where.group(0)}" if where else "")
                    + ": the app runs without its secrets (token, Space URLs, database, keys)")
    except Exception as exc:  # noqa: BLE001 - any other failure: run without, and say so
        return {}, f"the secrets could not be read ({type(exc).__name__}); running without them"


def _flag(value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    text = str(value).strip().lower()
    return True if text in ON else False if text in OFF else default


def _pick(secrets: Mapping[str, Any], env: Mapping[str, str], key: str, env_key: str) -> Any:
    value = secrets.get(key)
    return value if value not in (None, "") else env.get(env_key)


def _space_urls(raw: Any, source: str) -> tuple[dict[str, str], list[str]]:
    """Entries one by one: a bad one is named (by its Space, never its URL) and skipped;
    the good ones still apply, so "ignored" is true."""
    urls: dict[str, str] = {}
    problems: list[str] = []
    if isinstance(raw, Mapping):
        items = [f"{k}={v}" for k, v in raw.items()]
    elif isinstance(raw, str):
        items = [i for i in raw.replace("\n", ",").split(",") if i.strip()]
    elif raw is None:
        return urls, problems
    else:
        return urls, [f"{source}: expected 'Owner/Space=http://host:port' entries"]
    for item in items:
        try:
            parsed = qwen_core.parse_space_urls(item)
        except qwen_core.SpaceError:
            space = item.partition("=")[0].strip()[:80] or "an entry"
            problems.append(f"{source}: the URL for {space!r} is not a valid http(s) URL; "
                            "that override is ignored")
            continue
        urls.update(parsed)
    return urls, problems


def default_db_url() -> str:
    """SQLite in the user's data directory (XDG_DATA_HOME, else ~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return "sqlite:///" + str(Path(base) / "qwen-spaces-chat" / "chats.db")


def read_settings(
    secrets: Mapping[str, Any], env: Mapping[str, str], problem: str | None = None
) -> Settings:
    """Settings from secrets (first) and the environment. ``problem``: what was wrong
    with the secrets themselves."""
    problems: list[str] = [problem] if problem else []
    token = secrets.get("HF_TOKEN")
    token = token if isinstance(token, str) and token else env.get("HF_TOKEN") or None
    urls, bad = _space_urls(secrets.get("space_urls"), "space_urls in secrets")
    problems += bad
    env_urls, bad = _space_urls(env.get("QWEN_SPACE_URLS"), "QWEN_SPACE_URLS")
    problems += bad
    urls.update(env_urls)

    connections = secrets.get("connections")
    chats = connections.get("chats") if isinstance(connections, Mapping) else None
    db_url = chats.get("url") if isinstance(chats, Mapping) else None
    db_url = db_url or env.get("QWEN_CHAT_DB") or None

    keys_raw = _pick(secrets, env, "api_keys", "QWEN_API_KEYS")
    if isinstance(keys_raw, str):
        keys = tuple(k.strip() for k in keys_raw.split(",") if k.strip())
    elif isinstance(keys_raw, (list, tuple)):
        keys = tuple(str(k).strip() for k in keys_raw if str(k).strip())
    else:
        keys = ()
    origins_raw = _pick(secrets, env, "cors_origins", "QWEN_CORS_ORIGINS") or ""
    if isinstance(origins_raw, str):
        origins = tuple(o.strip() for o in origins_raw.split(",") if o.strip())
    else:
        origins = tuple(str(o) for o in origins_raw)

    def number(key: str, env_key: str, default: float, kind: type) -> Any:
        raw = _pick(secrets, env, key, env_key)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            problems.append(f"{env_key} must be a number; using {default}")
            return default
        if value <= 0:
            problems.append(f"{env_key} must be positive; using {default}")
            return default
        return value

    return Settings(
        hf_token=token,
        space_urls=urls,
        problems=tuple(problems),
        offline=_flag(env.get("QWEN_OFFLINE"), False),
        remote_images=_flag(_pick(secrets, env, "remote_images", "QWEN_REMOTE_IMAGES"), False),
        history=_flag(_pick(secrets, env, "chat_history", "QWEN_CHAT_HISTORY"), True),
        db_url=db_url,
        api_keys=keys,
        api_streams_per_key=number("api_streams_per_key", "QWEN_API_STREAMS_PER_KEY", 4, int),
        cors_origins=origins,
        max_answer_chars=number("max_answer_chars", "QWEN_MAX_ANSWER_CHARS", 10_000_000, int),
        max_turn_seconds=number("max_turn_seconds", "QWEN_MAX_TURN_SECONDS", 1800.0, float),
    )


def current_settings() -> Settings:
    """Settings as of now (secrets file and environment are read on every call: cheap)."""
    secrets, problem = load_secrets()
    return read_settings(secrets, os.environ, problem)


def hub_states(space_ids: tuple[str, ...]) -> dict[str, str]:
    """Each Space's live state from the Hub API, asked in parallel with a 2 s timeout;
    ``unknown`` when the Hub cannot be reached. (The page caches this for a minute.)"""

    def one(space_id: str) -> str:
        try:
            response = httpx.get(HUB_API + space_id, timeout=2.0, follow_redirects=True)
            response.raise_for_status()
            runtime = response.json().get("runtime") or {}
            return space_state(runtime.get("stage"))
        except (httpx.HTTPError, ValueError, AttributeError, RecursionError):
            return "unknown"

    with ThreadPoolExecutor(max_workers=max(1, len(space_ids))) as pool:
        return dict(zip(space_ids, pool.map(one, space_ids), strict=True))
