"""The doctor against the fault-injecting fake Space: every verdict, its bounds, the token
and URL policy, and the CLI's rows and exit codes. Only loopback URLs are ever checked:
the public Space URLs are pointed at a dead loopback port for the whole module."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import qwen_core
from qwen_core import doctor, queue_api
from qwen_core.cli import main
from qwen_core.models import ADAPTERS
from qwen_core.spaces import Qwen_Qwen_2_5_Max
from qwen_core.spaces.qwen25_max import Qwen25Max

from .fake_space import FakeSpace, free_port

SPACE_ID = "Qwen/Qwen2.5-Max-Demo"
ALL_SPACES = [a.space_id for a in ADAPTERS]
MARGIN = 1.0


@pytest.fixture(autouse=True)
def _no_public_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any Space left at its public URL is sent to a dead loopback port instead."""
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr("qwen_core.spaces.base.hf_space_url", lambda space_id: dead)


@pytest.fixture
def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def spaces() -> Iterator[list[FakeSpace]]:
    """One fake per Space qwen_core knows (each serving the Max Space's layout)."""
    fakes = [FakeSpace().start() for _ in ALL_SPACES]
    try:
        yield fakes
    finally:
        for fake in fakes:
            fake.stop()


def check(space: FakeSpace, mode: str, **kw: object) -> doctor.SpaceCheck:
    space.config_mode = mode
    result = doctor.check_space(SPACE_ID, base_url=space.base_url, **kw)  # type: ignore[arg-type]
    assert result.space_id == SPACE_ID and result.label == "Qwen2.5-Max"
    assert result.fn_index_expected == 0
    assert result.base_url == space.base_url
    assert result.detail and "\n" not in result.detail and "Traceback" not in result.detail
    return result


# -- verdicts -------------------------------------------------------------------------


def test_fits(space: FakeSpace) -> None:
    result = check(space, "ok")
    assert result.state == "fits" and result.fits and result.checked
    assert (result.gradio_version, result.protocol, result.api_prefix) == (
        "5.50.0", "sse_v3", "/gradio_api")
    assert result.fn_index_found == 0
    assert result.detail == (
        "chat event 0: [textbox, chatbot, textbox] -> [textbox, chatbot, textbox]")


def test_moved_event_found_by_api_name_still_fits(space: FakeSpace) -> None:
    result = check(space, "moved")
    assert result.state == "moved" and result.fits
    assert result.fn_index_found == 5
    assert "from fn_index 0 to 5" in result.detail
    assert "api_name 'model_chat'" in result.detail


@pytest.mark.parametrize("mode", ["gradio3", "gradio3_noproto"])
def test_gradio3_is_unsupported(space: FakeSpace, mode: str) -> None:
    result = check(space, mode)
    assert result.state == "unsupported" and not result.fits and result.checked
    assert result.gradio_version is not None and result.gradio_version.startswith("3.")
    assert "Gradio 3" in result.detail and "websocket" in result.detail
    assert result.fn_index_found is None


def test_unknown_protocol_is_unsupported(space: FakeSpace) -> None:
    result = check(space, "protocol:sse_v9")
    assert result.state == "unsupported"
    assert result.protocol == "sse_v9" and result.gradio_version == "5.50.0"
    assert "'sse_v9'" in result.detail


@pytest.mark.parametrize("mode", ["html", "html503"])
def test_sleeping_space_is_asleep(space: FakeSpace, mode: str) -> None:
    result = check(space, mode)
    assert result.state == "asleep" and not result.checked and not result.fits
    assert "asleep" in result.detail
    assert result.gradio_version is None and result.fn_index_found is None


def test_nothing_listening_is_unreachable(dead_url: str) -> None:
    start = time.monotonic()
    result = doctor.check_space(SPACE_ID, base_url=dead_url, timeout=2)
    assert time.monotonic() - start < 2 + MARGIN
    assert result.state == "unreachable" and not result.checked
    assert "cannot connect" in result.detail


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("nofn", "it has no event 0"),
        ("reshaped", "event 0 takes [textbox, chatbot]"),
        ("missing", "missing or unreadable (HTTP 404)"),
        ("prefix:@127.0.0.1:1", "not a plain URL path"),
        ("huge:12", "max_config_bytes"),
    ],
)
def test_chat_event_gone_or_config_broken_is_changed(
    space: FakeSpace, mode: str, words: str
) -> None:
    result = check(space, mode)
    assert result.state == "changed" and not result.fits and result.checked
    assert words in result.detail
    assert result.fn_index_found is None


@pytest.mark.parametrize(
    ("mode", "words"),
    [("status:401", "check HF_TOKEN"), ("status:403", "check HF_TOKEN"),
     ("status:429", "rate limiting"), ("status:500", "HTTP 500")],
)
def test_refused_or_failing_space_is_not_checked(space: FakeSpace, mode: str, words: str) -> None:
    result = check(space, mode)
    assert result.state == "unreachable" and words in result.detail


@pytest.mark.parametrize("mode", ["hang", "drip:50"])
def test_a_silent_or_dripping_space_is_cut_off_at_the_timeout(
    space: FakeSpace, mode: str
) -> None:
    start = time.monotonic()
    result = check(space, mode, timeout=1.0)
    elapsed = time.monotonic() - start
    assert elapsed < 1.0 + MARGIN, elapsed
    assert result.state == "unreachable" and "within 1 s" in result.detail


# -- what the doctor sends ------------------------------------------------------------


def test_only_get_config_is_sent_and_no_job_started(space: FakeSpace) -> None:
    queue_api.config_cache.clear()
    for mode in ("ok", "moved", "nofn"):
        check(space, mode)
    assert {(r.method, r.path) for r in space.requests} == {("GET", "/config")}
    assert not space.joins and not space.cancels
    assert queue_api.config_cache == {}  # a check does not change what chats use


def test_token_goes_to_an_explicit_base_url_and_is_never_shown(space: FakeSpace) -> None:
    result = check(space, "ok", hf_token="hf_secret")
    assert space.requests[-1].headers.get("authorization") == "Bearer hf_secret"
    assert "hf_secret" not in repr(result)


def test_credentials_in_the_url_are_redacted(dead_url: str) -> None:
    url = dead_url.replace("http://", "http://user:pa55word@")
    result = doctor.check_space(SPACE_ID, base_url=url, timeout=1)
    assert "pa55word" not in repr(result)
    assert result.base_url == dead_url.replace("http://", "http://***@")


def test_space_given_as_id_model_alias_seed_class_or_adapter(space: FakeSpace) -> None:
    for ref in (SPACE_ID, "qwen-2.5-max", "Qwen_Qwen_2_5_Max", Qwen_Qwen_2_5_Max, Qwen25Max,
                qwen_core.resolve_model("qwen-max")):
        result = qwen_core.check_space(ref, base_url=space.base_url)
        assert result.space_id == SPACE_ID and result.state == "fits"


def test_bad_arguments_raise_invalid_request(space: FakeSpace) -> None:
    with pytest.raises(qwen_core.InvalidRequest):
        doctor.check_space("no-such-model", base_url=space.base_url)
    with pytest.raises(qwen_core.InvalidRequest):
        doctor.check_space(SPACE_ID, base_url="ftp://127.0.0.1:1")
    with pytest.raises(qwen_core.InvalidRequest):
        doctor.check_space(SPACE_ID, base_url=space.base_url, timeout=0)
    with pytest.raises(qwen_core.InvalidRequest):
        doctor.check_all([SPACE_ID], base_urls={SPACE_ID: "not a url"})


def test_space_check_is_frozen(space: FakeSpace) -> None:
    result = check(space, "ok")
    with pytest.raises(AttributeError):
        result.state = "changed"  # type: ignore[misc]


# -- check_all ------------------------------------------------------------------------


def test_check_all_runs_in_parallel_within_the_timeout(spaces: list[FakeSpace]) -> None:
    for fake in spaces:
        fake.config_mode = "hang"
    urls = {sid: fake.base_url for sid, fake in zip(ALL_SPACES, spaces, strict=True)}
    start = time.monotonic()
    results = doctor.check_all(base_urls=urls, timeout=1.5)
    elapsed = time.monotonic() - start
    # one after the other they would take 5 x 1.5 s; the slack is for loaded CI machines
    assert elapsed < 1.5 + 3 * MARGIN, f"{elapsed:.2f} s: not in parallel"
    assert [r.space_id for r in results] == ALL_SPACES
    assert {r.state for r in results} == {"unreachable"}
    assert doctor.exit_code(results) == 2


def test_check_all_reads_qwen_space_urls(
    space: FakeSpace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QWEN_SPACE_URLS", f"{SPACE_ID}={space.base_url}")
    results = doctor.check_all(["qwen-max", SPACE_ID])  # one Space, named twice
    assert [(r.space_id, r.state, r.base_url) for r in results] == [
        (SPACE_ID, "fits", space.base_url)]


def _made(state: doctor.State) -> doctor.SpaceCheck:
    return doctor.SpaceCheck(SPACE_ID, "Qwen2.5-Max", "http://127.0.0.1:1", state, "why")


@pytest.mark.parametrize(
    ("states", "code"),
    [
        ([], 0),
        (["fits", "moved"], 0),
        (["fits", "asleep"], 2),
        (["unreachable", "moved"], 2),
        (["fits", "changed"], 1),
        (["unsupported", "asleep"], 1),
        (["changed", "unreachable", "fits"], 1),
    ],
)
def test_exit_code(states: list[doctor.State], code: int) -> None:
    assert doctor.exit_code([_made(s) for s in states]) == code


# -- the CLI --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "verdict", "event", "code"),
    [
        ("ok", "fits", "0", 0),
        ("moved", "moved (fits)", "0->5", 0),
        ("gradio3", "unsupported", "0->?", 1),
        ("nofn", "changed", "0->?", 1),
        ("html503", "asleep", "0?", 2),
    ],
)
def test_cli_one_space(
    space: FakeSpace, capsys: pytest.CaptureFixture[str], mode: str, verdict: str, event: str,
    code: int,
) -> None:
    space.config_mode = mode
    assert main(["--doctor", "qwen-2.5-max", "--base-url", space.base_url]) == code
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["space", "verdict", "gradio", "protocol", "event", "url", "detail"]
    assert out[1].startswith(f"{SPACE_ID:<24} {verdict:<12} ")
    assert f" {event:<6} {space.base_url}  " in out[1]
    assert out[-1].endswith(f"(exit {code})") and len(out) == 3


def test_cli_nothing_listening_exits_2(dead_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--doctor", SPACE_ID, "--base-url", dead_url, "--timeout", "2"]) == 2
    out = capsys.readouterr().out
    assert " unreachable " in out and "0 fit, 0 no longer fit, 1 not checked (exit 2)" in out


def test_cli_checks_every_space(
    spaces: list[FakeSpace], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = dict(zip(ALL_SPACES, spaces, strict=True))
    monkeypatch.setenv("QWEN_SPACE_URLS",
                       ",".join(f"{sid}={fake.base_url}" for sid, fake in urls.items()))
    urls[SPACE_ID].config_mode = "ok"
    for sid, fake in urls.items():
        if sid != SPACE_ID:
            fake.config_mode = "html"
    assert main(["--doctor"]) == 2
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[1:-1]] == ALL_SPACES
    assert out[-1] == "1 fit, 0 no longer fit, 4 not checked (exit 2)"
    urls["Qwen/Qwen3-Demo"].config_mode = "gradio3"
    assert main(["--doctor", "--timeout", "3"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        "1 fit, 1 no longer fit, 3 not checked (exit 1)")
    assert main(["--doctor", "qwen-2.5-max"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    for fake in spaces:  # only /config was ever asked for
        assert {(r.method, r.path) for r in fake.requests} == {("GET", "/config")}


def test_cli_strips_control_characters(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = doctor.SpaceCheck(SPACE_ID, "Qwen2.5-Max", "http://127.0.0.1:1", "changed",
                             "event 0 takes [\x1b]52;c;cHduZWQ=\x07, \x9b2J]", "5\x1b[2J")
    monkeypatch.setattr(doctor, "check_space", lambda *a, **kw: evil)
    assert main(["--doctor", SPACE_ID, "--base-url", "http://127.0.0.1:1"]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "]52;c;cHduZWQ=" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--doctor", "--base-url", "http://127.0.0.1:1"],  # which Space?
        ["--doctor", "qwen-2.5-max", "qwen3-8b", "--base-url", "http://127.0.0.1:1"],
        ["a question", "--doctor"],
    ],
)
def test_cli_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "--doctor" in capsys.readouterr().err


def test_cli_unknown_space_or_bad_url_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--doctor", "no-such-space"]) == 2
    assert capsys.readouterr().err.startswith("error: InvalidRequest: unknown model")
    assert main(["--doctor", SPACE_ID, "--base-url", "ftp://127.0.0.1:1"]) == 2
    assert "http://" in capsys.readouterr().err


def test_cli_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--doctor [SPACE ...]" in help_text
    assert "0 every adapter fits" in help_text
    assert "1 some adapter no longer fits" in help_text
    assert "2 some Space could not be checked" in help_text
