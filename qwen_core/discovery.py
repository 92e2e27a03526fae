"""Reading a Space's ``GET /config`` (pure parsing; the transports do the fetching).

The config tells the Gradio version, the queue protocol, the API prefix and every event
with its input and output components. :func:`layout_from_config` checks that the adapter's
event is where it expects it, with the inputs and outputs it expects; if the Space moved
it, the event is found again by its ``api_name`` or by its shape, otherwise the Space's
API changed and :class:`~qwen_core.SpaceAPIChanged` says how.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import SpaceAPIChanged
from .protocol import SUPPORTED_PROTOCOLS
from .spaces.base import Layout, SpaceAdapter

__all__ = ["layout_from_config", "check_api_prefix"]

# a plain path: "/segment/segment", each segment of URL-unreserved characters (no "%": a
# percent-escape could decode to "/" or ".." on the server's side)
_PREFIX = re.compile(r"(?:/[A-Za-z0-9._~-]+)*/?")
MAX_PREFIX = 256
# what a Space's /config is expected to hold; anything else is a broken or hostile config
_READ_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError,
                OverflowError)


def _types_match(
    actual: Sequence[str], expected: Sequence[frozenset[str] | None] | None
) -> bool:
    if expected is None:
        return True
    if len(actual) != len(expected):
        return False
    return all(want is None or have in want for have, want in zip(actual, expected, strict=True))


def _describe(types: Sequence[str]) -> str:
    return "[" + ", ".join(types) + "]"


def _clip(value: Any, size: int = 100) -> str:
    """A short printable ``repr`` of a value from the Space (strings and numbers only)."""
    if isinstance(value, str):
        return repr(value[:size]) + ("..." if len(value) > size else "")
    if isinstance(value, (int, float, bool)) or value is None:
        return repr(value)[:size]
    return f"a JSON {type(value).__name__}"


def check_api_prefix(prefix: Any, space: str | None = None) -> str:
    """The ``api_prefix`` a Space's /config gives, if it is a plain URL path ("" or
    "/gradio_api"-like: no "..", "//", "@", ":", "?", "#", "%", backslash, whitespace or
    control characters), without its trailing slash. Anything else would let the Space
    steer our requests (and the user's token) to another host or port:
    :class:`~qwen_core.SpaceAPIChanged` naming it."""
    if (
        not isinstance(prefix, str)
        or len(prefix) > MAX_PREFIX
        or not _PREFIX.fullmatch(prefix)
        or ".." in prefix
        or any(seg == "." for seg in prefix.split("/"))
    ):
        raise SpaceAPIChanged(
            f"the Space's /config gives the API prefix {_clip(prefix)}, which is not a plain "
            "URL path like '/gradio_api'; qwen_core will not send requests there",
            space_id=space,
        )
    return prefix.rstrip("/")


def layout_from_config(adapter: type[SpaceAdapter], config: Any) -> Layout:
    """The adapter's event as the running Space serves it, or SpaceAPIChanged (also for a
    config of unexpected types or absurd nesting: never a TypeError or RecursionError)."""
    try:
        return _layout(adapter, config)
    except SpaceAPIChanged:
        raise
    except _READ_ERRORS as exc:
        raise SpaceAPIChanged(
            f"the Space's /config cannot be read ({type(exc).__name__}: {str(exc)[:200]})",
            space_id=adapter.space_id,
        ) from exc


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _key(value: Any) -> int | str | None:
    """A component id usable as a dict key (ids are ints; anything unhashable is none)."""
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return value
    return None


def _layout(adapter: type[SpaceAdapter], config: Any) -> Layout:
    space = adapter.space_id
    if not isinstance(config, Mapping):
        raise SpaceAPIChanged("the Space's /config is not a JSON object", space_id=space)
    raw_version = config.get("version")
    version = (
        str(raw_version)[:100] if isinstance(raw_version, (str, int, float)) else None
    )
    protocol = config.get("protocol")
    if protocol == "ws" or (protocol is None and version and version.startswith(("2.", "3."))):
        raise SpaceAPIChanged(
            f"the Space runs Gradio {version or '3'} with the websocket queue, "
            "which qwen_core does not support (it needs Gradio 4 or newer)",
            space_id=space,
        )
    if not isinstance(protocol, str) or protocol not in SUPPORTED_PROTOCOLS:
        raise SpaceAPIChanged(
            f"the Space speaks queue protocol {_clip(protocol)}; qwen_core supports "
            f"{', '.join(SUPPORTED_PROTOCOLS)}",
            space_id=space,
        )
    prefix = config.get("api_prefix")
    if prefix is None:
        prefix = "/gradio_api" if version and version.split(".")[0] not in ("4", "") else ""
    prefix = check_api_prefix(prefix, space)

    components: dict[int | str, Mapping[str, Any]] = {}
    for c in _list(config.get("components")):
        if isinstance(c, Mapping):
            key = _key(c.get("id"))
            if key is not None:
                components[key] = c
    deps = [d for d in _list(config.get("dependencies")) if isinstance(d, Mapping)]

    def component(cid: Any) -> Mapping[str, Any]:
        key = _key(cid)
        return components.get(key, {}) if key is not None else {}

    def type_of(cid: Any) -> str:
        kind = component(cid).get("type", "?")
        return kind.lower()[:100] if isinstance(kind, str) else "?"

    def types(ids: Any) -> tuple[str, ...]:
        return tuple(type_of(i) for i in _list(ids))

    def fits(dep: Mapping[str, Any]) -> bool:
        return _types_match(types(dep.get("inputs")), adapter.input_types) and _types_match(
            types(dep.get("outputs")), adapter.output_types
        )

    def index_of(position: int, dep: Mapping[str, Any]) -> int:
        dep_id = dep.get("id")
        return dep_id if isinstance(dep_id, int) and not isinstance(dep_id, bool) else position

    by_index = {index_of(i, d): d for i, d in enumerate(deps)}
    chosen: tuple[int, Mapping[str, Any]] | None = None
    expected = by_index.get(adapter.fn_index)
    if expected is not None and fits(expected):
        chosen = (adapter.fn_index, expected)
    else:
        named = [
            (i, d) for i, d in by_index.items()
            if adapter.api_name and d.get("api_name") == adapter.api_name and fits(d)
        ]
        shaped = [(i, d) for i, d in by_index.items() if fits(d) and d.get("queue") is not False]
        if named:
            chosen = named[0]
        elif len(shaped) >= 1:
            chosen = shaped[0]
    if chosen is None:
        if expected is None:
            called = f" (api_name {adapter.api_name!r})" if adapter.api_name else ""
            found = f"it has no event {adapter.fn_index}{called} ({len(deps)} events)"
        else:
            found = (
                f"event {adapter.fn_index} takes {_describe(types(expected.get('inputs')))} "
                f"and returns {_describe(types(expected.get('outputs')))}"
            )
        raise SpaceAPIChanged(
            f"the Space's chat event is not where qwen_core expects it: {found}, and no "
            "other event has the expected inputs and outputs",
            space_id=space,
        )
    fn_index, dep = chosen
    input_props = tuple(_props(component(i)) for i in _list(dep.get("inputs")))
    return Layout(
        protocol=protocol,
        api_prefix=prefix,
        fn_index=fn_index,
        version=version,
        inputs=types(dep.get("inputs")),
        outputs=types(dep.get("outputs")),
        input_props=input_props,
        discovered=True,
    )


def _props(comp: Mapping[str, Any]) -> Mapping[str, Any]:
    props = comp.get("props")
    return dict(props) if isinstance(props, Mapping) else {}
