"""The app served by ``streamlit run`` against replica Spaces, and headless Chromium
driven by Playwright. Everything stays on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
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


def app_env(space_urls: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"HF_TOKEN", "QWEN_SPACE_URLS"}}
    env.update(QWEN_SPACE_URLS=space_urls, QWEN_OFFLINE="1", NO_PROXY="127.0.0.1,localhost",
               no_proxy="127.0.0.1,localhost", PYTHONUNBUFFERED="1")
    return env


@pytest.fixture(scope="module")
def server(replica_max_g5: Replica, replica_qwen3_g5: Replica) -> Iterator[Server]:
    replicas = {"max": replica_max_g5, "qwen3": replica_qwen3_g5}
    log = ARTIFACTS / "streamlit-browser.log"
    process, url = start_streamlit(
        REPO, sys.executable, app_env(bed.space_urls(replicas.values())), log
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
