"""Gradio diff operations applied in place, one test per operation and per misuse."""

import pytest

from qwen_core.diff import DiffError, apply_edit
from qwen_core.errors import SpaceAPIChanged


def test_append_to_string_leaf_in_nested_list():
    outputs = ["", [["hi", "Hel"]], "sys"]
    apply_edit(outputs, 1, "append", [0, 1], "lo")
    assert outputs == ["", [["hi", "Hello"]], "sys"]


def test_append_extends_list_in_place():
    chat = [["a", "b"]]
    outputs = [chat]
    apply_edit(outputs, 0, "append", [], [["c", "d"]])
    assert outputs[0] is chat and chat == [["a", "b"], ["c", "d"]]


def test_replace_root_and_leaf():
    outputs = ["old", {"k": "v"}]
    apply_edit(outputs, 0, "replace", [], "new")
    apply_edit(outputs, 1, "replace", ["k"], 42)
    assert outputs == ["new", {"k": 42}]


def test_add_inserts_into_list_and_sets_dict_key():
    outputs = [[1, 3], {}]
    apply_edit(outputs, 0, "add", [1], 2)
    apply_edit(outputs, 0, "add", [3], 4)
    apply_edit(outputs, 1, "add", ["x"], "y")
    assert outputs == [[1, 2, 3, 4], {"x": "y"}]


def test_delete_removes_list_item_and_dict_key():
    outputs = [[1, 2, 3], {"a": 1, "b": 2}]
    apply_edit(outputs, 0, "delete", [1], None)
    apply_edit(outputs, 1, "delete", ["a"], None)
    assert outputs == [[1, 3], {"b": 2}]


def test_repeated_deletes_at_same_index_like_gradio_sends_them():
    outputs = [["a", "b", "c", "d"]]
    for _ in range(2):  # gradio shifts the indexes of trailing deletes to the same index
        apply_edit(outputs, 0, "delete", [2], None)
    assert outputs == [["a", "b"]]


@pytest.mark.parametrize(
    ("op", "path", "value", "words"),
    [
        ("explode", [0], "x", "unknown diff operation"),
        ("append", [5], "x", "not in a list"),
        ("append", ["k"], "x", "not in the object"),
        ("append", [0], 3, "cannot append"),
        ("add", [], 1, "needs a path"),
        ("replace", "0", 1, "must be a list"),
        ("add", [9], 1, "cannot add"),
        ("replace", [0, 0, 0], 1, "goes through a str"),
    ],
)
def test_edits_that_do_not_fit_raise_diff_error(op, path, value, words):
    outputs = [["text"], {"j": 1}]
    with pytest.raises(DiffError, match=words) as info:
        apply_edit(outputs, 0 if not path or path != ["k"] else 1, op, path, value)
    assert isinstance(info.value, SpaceAPIChanged)
