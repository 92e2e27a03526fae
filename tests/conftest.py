"""Shared fixtures: the replica Spaces (real Gradio servers on 127.0.0.1).

Each ``replica_*`` fixture starts its server lazily, once per session, and every server is
stopped when the session ends. For another concurrency use
``replica_pool.get(name, concurrency=N)`` (also started once per session and name/N).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # so `tests.replicas` imports under plain `pytest` too
    sys.path.insert(0, str(REPO_ROOT))

from tests.replicas.bed import Replica, ReplicaPool  # noqa: E402


@pytest.fixture(scope="session")
def replica_pool() -> Iterator[ReplicaPool]:
    pool = ReplicaPool()
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(scope="session")
def replica_max_g5(replica_pool: ReplicaPool) -> Replica:
    """Qwen/Qwen2.5-Max-Demo on Gradio 5 (tuples Chatbot), chat at fn_index 0."""
    return replica_pool.get("max_g5")


@pytest.fixture(scope="session")
def replica_max_g6(replica_pool: ReplicaPool) -> Replica:
    """Qwen/Qwen2.5-Max-Demo as if on Gradio 6 (messages Chatbot), chat at fn_index 0."""
    return replica_pool.get("max_g6")


@pytest.fixture(scope="session")
def replica_qwen25_g4(replica_pool: ReplicaPool) -> Replica:
    """Qwen/Qwen2.5 on Gradio 4 + modelscope_studio 0.5.2, chat at fn_index 3."""
    return replica_pool.get("qwen25_g4")


@pytest.fixture(scope="session")
def replica_qwen2_72b_g4(replica_pool: ReplicaPool) -> Replica:
    """Qwen/Qwen2-72B-Instruct on Gradio 4 (tuples Chatbot), chat at fn_index 0."""
    return replica_pool.get("qwen2_72b_g4")


@pytest.fixture(scope="session")
def replica_1m_g4(replica_pool: ReplicaPool) -> Replica:
    """Qwen/Qwen2.5-1M-Demo on Gradio 4 + modelscope_studio, add at 1, generate at 2."""
    return replica_pool.get("1m_g4")


@pytest.fixture(scope="session")
def replica_qwen3_g5(replica_pool: ReplicaPool) -> Replica:
    """Qwen/Qwen3-Demo on Gradio 5 + modelscope_studio 1.x pro Chatbot, chat at 13."""
    return replica_pool.get("qwen3_g5")
