"""Hostile-input suite: every case offline (respx or loopback servers), no token, no
overrides unless a test sets them."""

from __future__ import annotations

import pytest

from qwen_core import queue_api


@pytest.fixture(autouse=True)
def quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWEN_OFFLINE", "1")
    monkeypatch.setenv("QWEN_CHAT_HISTORY", "off")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("QWEN_SPACE_URLS", raising=False)
    queue_api.config_cache.clear()
    yield
    queue_api.config_cache.clear()


from tests.browser.conftest import browser, page, server  # noqa: E402, F401 - fixtures
