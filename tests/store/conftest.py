"""Fixtures of the store tests: a PostgreSQL cluster for the session (tests/pg.py), and a
fresh database per test on each backend (an SQLite file, a new PostgreSQL database)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from qwen_chat.store import ChatStore
from tests.pg import PgCluster, require_pg

BACKENDS = ("sqlite", "postgresql")
_names = itertools.count()


class FakeClock:
    """A UTC clock the test moves by hand (starts at the real time)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One PostgreSQL 15 cluster for the session (fails under CI if it cannot run)."""
    require_pg()
    with PgCluster("qwen_chat") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def pg_url(pg_cluster: PgCluster) -> str:
    """``postgresql+psycopg://postgres@127.0.0.1:PORT/qwen_chat`` (trust auth)."""
    return pg_cluster.url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A URL to an empty database of ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'chats.db'}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"t{next(_names)}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[ChatStore]:
    opened = ChatStore(db_url, clock=clock)
    try:
        yield opened
    finally:
        opened.close()
