"""Gradio's output diffs, applied in place (no I/O, no copies).

Since protocol ``sse_v2`` a streaming Space sends the full outputs once, then for every
update one list of edits per output: ``[op, path, value]`` with ``op`` one of ``replace``,
``append``, ``add``, ``delete`` and ``path`` a list of list indexes / dict keys relative to
that output. Edits are applied in order, exactly as Gradio's own clients do, but touching
only the edited container: the cost of an edit does not depend on the size of the rest.
"""

from __future__ import annotations

from typing import Any

from .errors import SpaceAPIChanged

__all__ = ["OPS", "apply_edit", "DiffError"]

OPS = frozenset({"replace", "append", "add", "delete"})


class DiffError(SpaceAPIChanged):
    """An edit the Space sent cannot be applied to the outputs we hold."""

    def __init__(self, detail: str, **kw: Any) -> None:
        # said to a person: what happened first, the technical detail in brackets
        super().__init__(f"the Space sent an update qwen_core cannot apply ({detail})", **kw)


def _step(container: Any, key: Any) -> Any:
    if isinstance(container, list):
        if type(key) is not int or not -len(container) <= key < len(container):
            raise DiffError(f"diff path index {key!r} is not in a list of {len(container)}")
        return container[key]
    if isinstance(container, dict):
        if not isinstance(key, str) or key not in container:
            raise DiffError(f"diff path key {key!r} is not in the object")
        return container[key]
    raise DiffError(f"diff path goes through a {type(container).__name__}, not a list or object")


def _appended(old: Any, value: Any) -> Any:
    if isinstance(old, str) and isinstance(value, str):
        return old + value
    if isinstance(old, list) and isinstance(value, list):
        old.extend(value)
        return old
    raise DiffError(
        f"cannot append a {type(value).__name__} to a {type(old).__name__}"
    )


def apply_edit(outputs: list[Any], index: int, op: str, path: list[Any], value: Any) -> None:
    """Apply one edit to ``outputs[index]`` in place; raises :class:`DiffError` if it does
    not fit (unknown op, path not present, wrong types)."""
    if not isinstance(op, str) or op not in OPS:  # a list op is unhashable
        raise DiffError(f"unknown diff operation {op!r:.100}")
    if type(index) is not int or not 0 <= index < len(outputs):
        raise DiffError(f"diff for output {index!r:.100}, but there are {len(outputs)} outputs")
    if not isinstance(path, list):
        raise DiffError(f"diff path must be a list, got {type(path).__name__}")
    if not path:
        if op == "replace":
            outputs[index] = value
        elif op == "append":
            outputs[index] = _appended(outputs[index], value)
        else:
            raise DiffError(f"diff operation {op!r} needs a path")
        return
    container = outputs[index]
    for key in path[:-1]:
        container = _step(container, key)
    last = path[-1]
    if op == "add":
        if isinstance(container, list):
            if type(last) is not int or not 0 <= last <= len(container):
                raise DiffError(f"cannot add at {last!r} in a list of {len(container)}")
            container.insert(last, value)
        elif isinstance(container, dict) and isinstance(last, str):
            container[last] = value
        else:
            raise DiffError(f"cannot add key {last!r} to a {type(container).__name__}")
        return
    _step(container, last)  # validates that the target exists
    if op == "replace":
        container[last] = value
    elif op == "append":
        container[last] = _appended(container[last], value)
    else:  # delete
        del container[last]
