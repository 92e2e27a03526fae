"""The app served by ``streamlit run`` against replica Spaces, and headless Chromium
driven by Playwright. Everything stays on 127.0.0.1, and every app server stores its
conversations in a fresh temporary SQLite database (never the person's own, in
~/.local/share) unless a test names another one."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser.serve import start_streamlit, stop_process
from tests.replicas import bed
from tests.replicas.bed import Replica

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    replicas: dict[str, Replica]
    log: Path


_DB_FOLDERS: list[Path] = []  # removed by remove_db, or when the test process exits
_INHERITED_OUT = {"HF_TOKEN", "QWEN_SPACE_URLS", "QWEN_CHAT_DB", "QWEN_CHAT_HISTORY"}


def fresh_db_url() -> str:
    """A new, empty SQLite database (``sqlite:////tmp/qwen-chat-db-…/chats.db``) in a
    folder of its own: removed by :func:`remove_db`, else when the test process exits."""
    folder = Path(tempfile.mkdtemp(prefix="qwen-chat-db-"))
    _DB_FOLDERS.append(folder)
    return f"sqlite:///{folder}/chats.db"


def remove_db(url: str) -> None:
    """Remove the folder of a database made by :func:`fresh_db_url` (with its -wal and
    -shm files); other URLs are left alone."""
    for folder in list(_DB_FOLDERS):
        if url == f"sqlite:///{folder}/chats.db":
            _DB_FOLDERS.remove(folder)
            shutil.rmtree(folder, ignore_errors=True)


@atexit.register
def _remove_all_dbs() -> None:
    for folder in _DB_FOLDERS:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def temp_db() -> Iterator[str]:
    """``with temp_db() as url:`` a fresh SQLite database, removed on exit."""
    url = fresh_db_url()
    try:
        yield url
    finally:
        remove_db(url)


def app_env(space_urls: str, db_url: str | None = None) -> dict[str, str]:
    """The environment of an app server: the replicas as its Spaces, offline, and its
    own database (``db_url``, else a fresh SQLite file from :func:`fresh_db_url`). The
    caller's HF_TOKEN, Space URLs and storage settings are not passed on."""
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_OUT}
    env.update(QWEN_SPACE_URLS=space_urls, QWEN_OFFLINE="1", NO_PROXY="127.0.0.1,localhost",
               no_proxy="127.0.0.1,localhost", PYTHONUNBUFFERED="1",
               QWEN_CHAT_DB=db_url or fresh_db_url())
    return env


@pytest.fixture(scope="module")
def server(replica_max_g5: Replica, replica_qwen3_g5: Replica) -> Iterator[Server]:
    replicas = {"max": replica_max_g5, "qwen3": replica_qwen3_g5}
    log = ARTIFACTS / "streamlit-browser.log"
    with temp_db() as db:
        process, url = start_streamlit(
            REPO, sys.executable, app_env(bed.space_urls(replicas.values()), db), log
        )
        try:
            yield Server(url, process, replicas, log)
        finally:
            stop_process(process)


def in_ci() -> bool:
    """``CI`` set to anything but an empty/false value (CI=true, CI=1, ...)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_chromium() -> None:
    """Skip when Debian's chromium is missing locally; in CI that is a failure, so a run
    cannot go green without the browser tests."""
    if os.access(CHROMIUM, os.X_OK):
        return
    why = f"{CHROMIUM} not installed (make chromium installs Debian's package)"
    if in_ci():
        pytest.fail(f"{why}; CI must run the browser tests", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, server: Server):  # -> playwright Page on a fresh app session
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    page.goto(server.url + "/")
    page.get_by_test_id("stChatInputTextArea").wait_for(timeout=60_000)
    try:
        yield page
    finally:
        context.close()
