"""The page's text transforms under hostile input: linear time, exact results, no
exception. Inputs of the shape that made the old regexes quadratic (``"\\[" * 20000``
took 6 s, 80 KB 27 s, holding the GIL for every visitor) are timed at two sizes: a linear
transform grows about 4x for 4x the input, the old ones grew 16x."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen_chat import conversation, files
from qwen_chat.blocks import split_blocks
from qwen_chat.display import (
    clean_text,
    display_markdown,
    escape_markdown,
    redact,
    stable_prefix_length,
)

HOSTILE = {
    "display open": "\\[" * 20_000,
    "inline open": "\\(" * 20_000,
    "backticks": "`" * 40_000,
    "backtick runs": "`a``b```c" * 5_000,
    "images": "![" * 20_000,
    "escaped images": "\\![" * 15_000,
    "fences": "```\n" * 10_000,
    "mixed": "\\[x `y` \\(z ![a](b)" * 3_000,
    "code spans then an open run": "`a` " * 10_000 + "``",
    "blank lines and list items": "- a\n\n" * 10_000,
}


def best_time(fn, text: str) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - start)
    return min(times)


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("fn", [display_markdown, escape_markdown, conversation.title_of,
                                clean_text, redact, stable_prefix_length, split_blocks],
                         ids=lambda f: f.__name__)
def test_transform_time_grows_linearly_with_hostile_input(fn, name):
    small = HOSTILE[name]
    big = small * 4
    t_small, t_big = best_time(fn, small), best_time(fn, big)
    # linear: ~4x; the old quadratic regexes: 16x. 0.25 s absolute bound per 160 KB.
    assert t_big < 0.25 or t_big < 9 * max(t_small, 1e-4), (name, t_small, t_big)
    assert t_big < 2.0, (name, t_big)


def test_the_reproduced_case_is_fast_and_left_as_text():
    text = "\\[" * 20_000  # 40 KB: 6 s before
    start = time.perf_counter()
    out = display_markdown(text)
    assert time.perf_counter() - start < 1.0
    assert out == text  # no closing delimiter: nothing to convert


def test_latex_is_converted_outside_code_only():
    text = ("Area \\(\\pi r^2\\) and\n\\[E = mc^2\\]\n`\\(not\\)` then\n"
            "```\n\\[kept\\]\n```\nafter \\(x\\)")
    assert display_markdown(text) == (
        "Area $\\pi r^2$ and\n$$E = mc^2$$\n`\\(not\\)` then\n"
        "```\n\\[kept\\]\n```\nafter $x$"
    )


def test_remote_images_become_links_unless_allowed():
    text = "see ![leak](http://127.0.0.1:9/leak?c=SECRET) and `![code](x)`"
    assert display_markdown(text) == (
        "see \\![leak](http://127.0.0.1:9/leak?c=SECRET) and `![code](x)`"
    )
    assert display_markdown(text, images=True) == text
    # an already escaped "!" stays escaped; an escaped backslash does not protect it
    assert display_markdown("\\![a](b)") == "\\![a](b)"
    assert display_markdown("\\\\![a](b)") == "\\\\\\![a](b)"
    # inside a fence nothing changes
    assert display_markdown("```\n![a](b)\n```") == "```\n![a](b)\n```"


def test_escape_markdown_neutralises_links_images_and_directives():
    shared = ("x) [Session expired - sign in again](http://evil.example/login) "
              "![t](http://evil.example/pixel.png) (")
    out = escape_markdown(shared, limit=None)
    assert "](" not in out.replace("\\]\\(", "")  # no live link or image syntax left
    assert out.startswith("x\\) \\[Session expired \\- sign in again\\]\\(http\\:")
    assert escape_markdown(":red[alarm] :material/home:") == (
        "\\:red\\[alarm\\] \\:material/home\\:"
    )
    assert escape_markdown("a\nb", limit=None) == "a b"
    assert escape_markdown("x" * 500, limit=10) == "x" * 10 + "…"


def test_credentials_in_urls_are_redacted():
    text = "cannot connect to https://admin:hf_secret@host.example:8443/x (ConnectError)"
    assert redact(text) == "cannot connect to https://***@host.example:8443/x (ConnectError)"
    assert redact("no url here") == "no url here"


def test_lone_surrogates_are_replaced_and_clean_text_is_untouched():
    assert clean_text("ok \ud800 ok") == "ok \ufffd ok"
    assert clean_text("你好 👍") == "你好 👍"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("\\[]()`!$~ \nax*_:<>#|-")), max_size=400))
def test_display_markdown_never_raises_and_keeps_text_without_markup(text):
    out = display_markdown(text)
    assert isinstance(out, str)
    if "\\(" not in text and "\\[" not in text and "![" not in text:
        assert out == text
    out.encode("utf-8")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_escape_markdown_and_titles_never_raise_and_are_encodable(text):
    escape_markdown(text).encode("utf-8")
    title = conversation.title_of(text)
    assert len(title) <= 61 and title


# --- JSON import --------------------------------------------------------------------------

IMPORT_CASES = {
    "deep nesting": ("[" * 100_000, "nested too deeply"),
    "huge number": ('{"messages": [], "version": ' + "9" * 5000 + "}", "not a conversation"),
    "lone surrogate": ('[{"role": "user", "content": "\\ud800"}]', "lone surrogate"),
    "surrogate in reasoning": (
        '[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a",'
        ' "reasoning": "x\\udfff"}]', "lone surrogate"),
    "not utf-8": (b"\xff\xfe\x00", "not a UTF-8 text file"),
    "huge format name": ('{"format": "' + "f" * 100_000 + '", "messages": []}',
                         "not a qwen-spaces-chat file"),
}


@pytest.mark.parametrize("name", list(IMPORT_CASES))
def test_hostile_json_is_refused_with_a_clear_message(name):
    data, fragment = IMPORT_CASES[name]
    with pytest.raises(files.ChatFileError) as info:
        files.from_json(data)
    assert fragment in str(info.value)
    assert len(str(info.value)) < 300  # never echoes the hostile content whole


def test_oversized_import_is_refused_before_parsing():
    data = "[" + " " * files.MAX_IMPORT_BYTES + "]"
    with pytest.raises(files.ChatFileError, match="file too large"):
        files.from_json(data)


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["role", "content", "messages", "model", "format",
                                       "version", "system", "reasoning", "stopped"]),
                      children, max_size=5),
    max_leaves=30,
))
def test_any_json_imports_or_fails_with_chat_file_error(doc):
    import json

    try:
        imported = files.from_json(json.dumps(doc))
    except files.ChatFileError:
        return
    for message in imported.chat.messages:
        message.content.encode("utf-8")
