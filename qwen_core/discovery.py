"""Reading a Space's ``GET /config`` (pure parsing; the transports do the fetching).

The config tells the Gradio version, the queue protocol, the API prefix and every event
with its input and output components. :func:`layout_from_config` checks that the adapter's
event is where it expects it, with the inputs and outputs it expects; if the Space moved
it, the event is found again by its ``api_name`` or by its shape, otherwise the Space's
API changed and :class:`~qwen_core.SpaceAPIChanged` says how.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import SpaceAPIChanged
from .protocol import SUPPORTED_PROTOCOLS
from .spaces.base import Layout, SpaceAdapter

__all__ = ["layout_from_config"]


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


def layout_from_config(adapter: type[SpaceAdapter], config: Any) -> Layout:
    """The adapter's event as the running Space serves it, or SpaceAPIChanged."""
    space = adapter.space_id
    if not isinstance(config, Mapping):
        raise SpaceAPIChanged("the Space's /config is not a JSON object", space_id=space)
    version = config.get("version")
    version = str(version) if version is not None else None
    protocol = config.get("protocol")
    if protocol == "ws" or (protocol is None and version and version.startswith(("2.", "3."))):
        raise SpaceAPIChanged(
            f"the Space runs Gradio {version or '3'} with the websocket queue, "
            "which qwen_core does not support (it needs Gradio 4 or newer)",
            space_id=space,
        )
    if protocol not in SUPPORTED_PROTOCOLS:
        raise SpaceAPIChanged(
            f"the Space speaks queue protocol {protocol!r}; qwen_core supports "
            f"{', '.join(SUPPORTED_PROTOCOLS)}",
            space_id=space,
        )
    prefix = config.get("api_prefix")
    if not isinstance(prefix, str):
        prefix = "/gradio_api" if version and version.split(".")[0] not in ("4", "") else ""
    prefix = prefix.rstrip("/")

    components = {
        c.get("id"): c for c in config.get("components") or [] if isinstance(c, Mapping)
    }
    deps = [d for d in config.get("dependencies") or [] if isinstance(d, Mapping)]

    def types(ids: Any) -> tuple[str, ...]:
        return tuple(
            str(components.get(i, {}).get("type", "?")).lower() for i in (ids or [])
        )

    def fits(dep: Mapping[str, Any]) -> bool:
        return _types_match(types(dep.get("inputs")), adapter.input_types) and _types_match(
            types(dep.get("outputs")), adapter.output_types
        )

    def index_of(position: int, dep: Mapping[str, Any]) -> int:
        dep_id = dep.get("id")
        return dep_id if isinstance(dep_id, int) else position

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
    input_props = tuple(
        dict(components.get(i, {}).get("props") or {}) for i in dep.get("inputs") or []
    )
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
