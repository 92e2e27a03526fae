"""The doctor against the replica Spaces (real Gradio 4, 5 and 6 servers on 127.0.0.1):
every adapter fits the layout its Space serves. Only loopback URLs are checked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import qwen_core
from qwen_core import doctor
from qwen_core.models import ADAPTERS
from qwen_core.protocol import SUPPORTED_PROTOCOLS
from tests.replicas.bed import REPO_ROOT, Replica, ReplicaPool

pytestmark = pytest.mark.replica

REPLICAS = ["max_g5", "max_g6", "qwen25_g4", "qwen2_72b_g4", "1m_g4", "qwen3_g5"]
ONE_PER_SPACE = ["max_g6", "qwen25_g4", "qwen2_72b_g4", "1m_g4", "qwen3_g5"]
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
              "all_proxy")


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy, no token, no configured URLs; a Space left at its public URL is sent to a
    dead loopback port instead."""
    for name in (*PROXY_VARS, "QWEN_SPACE_URLS", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr("qwen_core.spaces.base.hf_space_url",
                        lambda space_id: "http://127.0.0.1:9")


@pytest.fixture(params=REPLICAS, scope="module")
def replica(request: pytest.FixtureRequest, replica_pool: ReplicaPool) -> Replica:
    return replica_pool.get(request.param)


def test_every_replica_fits_its_adapter(replica: Replica) -> None:
    result = qwen_core.check_space(replica.space_id, base_url=replica.base_url)
    assert result.state == "fits", result
    assert result.fits and result.checked
    assert result.fn_index_expected == result.fn_index_found == replica.spec.chat_fn_index
    assert result.gradio_version is not None
    assert result.gradio_version.split(".")[0] == str(replica.spec.gradio_major)
    assert result.protocol in SUPPORTED_PROTOCOLS
    assert result.api_prefix == replica.spec.api_prefix
    assert result.base_url == replica.base_url
    assert result.detail.startswith(f"chat event {replica.spec.chat_fn_index}: [")


@pytest.fixture(scope="module")
def all_spaces(replica_pool: ReplicaPool) -> dict[str, str]:
    """Space id -> base URL of one replica per Space."""
    urls = {}
    for name in ONE_PER_SPACE:
        running = replica_pool.get(name)
        urls[running.space_id] = running.base_url
    assert set(urls) == {a.space_id for a in ADAPTERS}
    return urls


def test_check_all_every_space_fits(all_spaces: dict[str, str]) -> None:
    results = doctor.check_all(base_urls=all_spaces)
    assert [r.space_id for r in results] == [a.space_id for a in ADAPTERS]
    assert [r.state for r in results] == ["fits"] * len(ADAPTERS), results
    assert [r.base_url for r in results] == [all_spaces[r.space_id] for r in results]
    assert doctor.exit_code(results) == 0


def test_cli_doctor_exits_0_with_one_row_per_space(all_spaces: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in (*PROXY_VARS, "HF_TOKEN")}
    env.update(
        QWEN_SPACE_URLS=",".join(f"{sid}={url}" for sid, url in all_spaces.items()),
        NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "qwen_core", "--doctor", "--timeout", "20"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = proc.stdout.splitlines()
    assert len(rows) == len(ADAPTERS) + 2
    for adapter, row in zip(ADAPTERS, rows[1:-1], strict=True):
        space, verdict, version, protocol, event, url = row.split()[:6]
        assert (space, verdict, event, url) == (
            adapter.space_id, "fits", str(adapter.fn_index), all_spaces[adapter.space_id])
        assert version[0] in "456" and protocol in SUPPORTED_PROTOCOLS
    assert rows[-1] == f"{len(ADAPTERS)} fit, 0 no longer fit, 0 not checked (exit 0)"
