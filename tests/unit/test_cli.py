"""The command line: --list, streaming to stdout, errors on stderr with exit 1."""

import httpx
import respx

from qwen_core import MODELS
from qwen_core.cli import main

from .conftest import BASE, answer_stream, max_config, sse

PREFIX = "/gradio_api"


def test_list_prints_every_model(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for model_id in MODELS:
        assert f"\n{model_id} " in out


@respx.mock
def test_question_streams_to_stdout_with_system_prompt(capsys):
    respx.get(f"{BASE}/config").mock(return_value=httpx.Response(200, json=max_config()))
    join = respx.post(f"{BASE}{PREFIX}/queue/join").mock(
        return_value=httpx.Response(200, json={"event_id": "e1"}))
    respx.get(f"{BASE}{PREFIX}/queue/data").mock(
        return_value=sse(*answer_stream("e1", ["ha", "ha"])))
    code = main(["q", "--model", "qwen-2.5-max", "--system", "Be brief.", "--base-url", BASE])
    assert code == 0
    assert capsys.readouterr().out == "haha\n"
    assert b'"Be brief."' in join.calls.last.request.content


def test_errors_go_to_stderr_with_exit_1(capsys):
    assert main(["q", "--model", "nope"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: InvalidRequest: unknown model 'nope'")
