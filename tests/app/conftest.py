"""Fixtures for the app's tests: no traffic off loopback, replica Spaces, AppTest helpers."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.replicas import bed
from tests.replicas.bed import Replica

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "qwen_chat" / "page.py")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "", None}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "install: installs requirements.txt into a fresh venv (about a minute)"
    )


@pytest.fixture(autouse=True)
def quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs offline: no Hub lookups, no token, no overrides unless a test sets
    them."""
    monkeypatch.setenv("QWEN_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("QWEN_SPACE_URLS", raising=False)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse (and report) any name lookup off loopback made in this process."""
    attempts: list[str] = []
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = host.decode() if isinstance(host, bytes) else host
        if name not in LOOPBACK:
            attempts.append(str(name))
            raise OSError(f"test guard: no traffic off loopback ({name})")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield attempts
    assert not attempts, f"the app tried to reach {attempts}"


@pytest.fixture
def spaces(
    monkeypatch: pytest.MonkeyPatch,
    replica_max_g5: Replica,
    replica_qwen3_g5: Replica,
    replica_1m_g4: Replica,
) -> dict[str, Replica]:
    """``QWEN_SPACE_URLS`` pointing Qwen2.5-Max, Qwen3 and Qwen2.5-1M at their replicas."""
    replicas = {"max": replica_max_g5, "qwen3": replica_qwen3_g5, "1m": replica_1m_g4}
    monkeypatch.setenv("QWEN_SPACE_URLS", bed.space_urls(replicas.values()))
    return replicas


def new_app(**query: str) -> AppTest:
    """A fresh session of the app, run once (``query`` becomes the URL's query string)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.run()
    assert not at.exception, at.exception
    return at


def send(at: AppTest, text: str) -> AppTest:
    at.chat_input[0].set_value(text).run()
    assert not at.exception, at.exception
    return at


def chat(at: AppTest):  # -> chat_state.Chat
    return at.session_state["box"].chat


def answer_block(at: AppTest, index: int = -1):
    """The ``index``-th assistant chat message block."""
    return [m for m in at.chat_message if m.name == "assistant"][index]


def shown_answer(at: AppTest, index: int = -1) -> str:
    """The answer text drawn in an assistant message (not the Thinking expander's). A
    long answer is drawn in blocks cut at blank lines (st.markdown strips each)."""
    block = answer_block(at, index)
    inside = {id(e) for x in block.expander for e in x.markdown}
    texts = [m.value for m in block.markdown if id(m) not in inside]
    return "\n\n".join(texts)


def captions(at: AppTest, index: int = -1, with_time: bool = False) -> list[str]:
    """The answer's captions; the " · HH:MM" each answer ends with is left off unless
    ``with_time`` (tests that check the time ask for it)."""
    values = [c.value for c in answer_block(at, index).caption]
    return values if with_time else [re.sub(r" · \d\d:\d\d$", "", v) for v in values]


def plain(markdown: str) -> str:
    """What a person reads of Markdown source: backslash escapes removed (the page
    escapes text from Spaces, URLs and files so Markdown never acts on it)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)
