"""Fixtures of the API tests: real ``streamlit run streamlit_app.py`` servers (the page and
the ``/v1`` API on one port) against replica Spaces and the fault-injecting fake Space,
all on 127.0.0.1, and clients for them (the official ``openai`` SDK and plain httpx).

- ``api``: no API key (loopback callers only), up to 64 streams at once; Qwen2.5-Max →
  the Gradio 6 replica (concurrency 50), Qwen3 → its replica, Qwen2.5 → its Gradio 4
  replica, Qwen2.5-1M → its replica, Qwen2-72B → the fake Space (faults by question).
- ``keyed``: API keys ``key-one,key-two``, 2 streams per key, CORS for
  ``https://app.example``, answers capped at 2,000 characters; Qwen2.5-Max → the fake.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest

from tests.browser.serve import start_streamlit, stop_process
from tests.faults.fake_space import FakeSpace
from tests.replicas import bed
from tests.replicas.bed import Replica

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
KEYS = ("key-one", "key-two")
ORIGIN = "https://app.example"
FAKE_SPACE = "Qwen/Qwen2-72B-Instruct"  # served by the fake Space on the `api` server
FAKE_MODEL = "qwen-2-72b"


def app_env(space_urls: str, **extra: str) -> dict[str, str]:
    """The app's environment: only our Space URLs, offline, nothing kept on disk, no key
    or proxy settings inherited from the shell."""
    drop = {"HF_TOKEN", "QWEN_SPACE_URLS", "QWEN_API_KEYS", "QWEN_CORS_ORIGINS",
            "QWEN_API_STREAMS_PER_KEY", "QWEN_MAX_ANSWER_CHARS", "QWEN_MAX_TURN_SECONDS",
            "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
            "all_proxy"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(QWEN_SPACE_URLS=space_urls, QWEN_OFFLINE="1", QWEN_CHAT_HISTORY="off",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
               PYTHONUNBUFFERED="1", **extra)
    return env


@dataclass
class Server:
    """A running ``streamlit run streamlit_app.py``."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    replicas: dict[str, Replica] = field(default_factory=dict)
    fake: FakeSpace | None = None

    @property
    def base(self) -> str:
        return self.url + "/v1"

    def openai(self, key: str = "unused", **kwargs: object) -> openai.OpenAI:
        """The official SDK pointed at this server (no retries: each error shows as is)."""
        return openai.OpenAI(base_url=self.base, api_key=key, max_retries=0,
                             timeout=60.0, **kwargs)  # type: ignore[arg-type]

    def async_openai(self, key: str = "unused") -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base, api_key=key, max_retries=0,
                                  timeout=60.0)

    def http(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60.0, trust_env=False,
                            **kwargs)  # type: ignore[arg-type]


def start_server(name: str, space_urls: str, **env: str) -> Server:
    log = ARTIFACTS / f"streamlit-api-{name}.log"
    process, url = start_streamlit(REPO, sys.executable, app_env(space_urls, **env), log)
    return Server(url, process, log)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSpace]:
    space = FakeSpace().start()
    try:
        yield space
    finally:
        space.stop()


@pytest.fixture(scope="module")
def max_g6_50(replica_pool: bed.ReplicaPool) -> Replica:
    return replica_pool.get("max_g6", concurrency=50)


@pytest.fixture(scope="module")
def api(
    max_g6_50: Replica, replica_qwen3_g5: Replica, replica_qwen25_g4: Replica,
    replica_1m_g4: Replica, fake: FakeSpace,
) -> Iterator[Server]:
    replicas = {"max": max_g6_50, "qwen3": replica_qwen3_g5, "qwen25": replica_qwen25_g4,
                "1m": replica_1m_g4}
    urls = bed.space_urls({**{r.space_id: r for r in replicas.values()},
                           FAKE_SPACE: fake.base_url})
    server = start_server("open", urls, QWEN_API_STREAMS_PER_KEY="64")
    server.replicas, server.fake = replicas, fake
    try:
        yield server
    finally:
        stop_process(server.process)


@pytest.fixture(scope="module")
def keyed(fake: FakeSpace) -> Iterator[Server]:
    urls = bed.space_urls({"Qwen/Qwen2.5-Max-Demo": fake.base_url})
    server = start_server("keyed", urls, QWEN_API_KEYS=",".join(KEYS),
                          QWEN_API_STREAMS_PER_KEY="2", QWEN_CORS_ORIGINS=ORIGIN,
                          QWEN_MAX_ANSWER_CHARS="2000")
    server.fake = fake
    try:
        yield server
    finally:
        stop_process(server.process)
