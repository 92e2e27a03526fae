"""requirements.txt alone is enough to run the app (what Streamlit Community Cloud does):
a fresh venv without this one's packages, ``pip install -r requirements.txt``, then the
app runs under AppTest and ``streamlit run`` serves it. Slow (about a minute): one test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.browser.serve import start_streamlit, stop_process

REPO = Path(__file__).resolve().parents[2]

SMOKE = """
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("qwen_chat/page.py", default_timeout=60).run()
assert not at.exception, at.exception
assert at.title[0].value.endswith("Qwen Spaces Chat"), at.title
print("app ran")
"""


@pytest.mark.install
@pytest.mark.timeout(600)
def test_requirements_txt_alone_runs_the_app(tmp_path: Path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "-r", str(REPO / "requirements.txt")],
        check=True, timeout=540,
    )
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "VIRTUAL_ENV", "HF_TOKEN", "QWEN_SPACE_URLS"}}
    env["QWEN_OFFLINE"] = "1"
    ran = subprocess.run(
        [python, "-c", SMOKE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "app ran" in ran.stdout

    process, url = start_streamlit(REPO, python, env, tmp_path / "streamlit.log")
    try:
        assert httpx.get(f"{url}/_stcore/health", timeout=5).text.strip() == "ok"
        assert "<title>" in httpx.get(url + "/", timeout=5).text
    finally:
        stop_process(process)
