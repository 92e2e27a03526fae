"""Where to turn when a Space is down (pure: no Streamlit).

A turn that failed because its Space is asleep, full or rate-limited can be asked of
another model at once. :func:`offers` picks up to two, one per other Space, whose Space
is running (the Hub state the sidebar shows, or a local override) and which support
what the conversation uses. Offline (no state known for any Space) every other Space is
offered, since none can be told apart."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import qwen_core

__all__ = ["FAILOVER_ERRORS", "RUNNING", "offers"]

FAILOVER_ERRORS = frozenset({"SpaceUnavailable", "QueueFull", "RateLimited"})
RUNNING = frozenset({"running", "local", "custom URL"})
UNKNOWN = "unknown"


def offers(
    failed: qwen_core.Model,
    states: Mapping[str, str],
    *,
    uses_system: bool,
    uses_history: bool,
    models: Iterable[qwen_core.Model] | None = None,
    limit: int = 2,
) -> list[qwen_core.Model]:
    """Models to offer instead of ``failed``: each other Space's first model that fits
    (``uses_system``: it takes a system prompt; ``uses_history``: it takes earlier turns
    natively), running ones only unless no Space's state is known."""
    pool = list(qwen_core.MODELS.values() if models is None else models)
    known = any(state != UNKNOWN for space, state in states.items()
                if space != failed.space_id)
    out: list[qwen_core.Model] = []
    seen = {failed.space_id}
    for model in pool:
        if model.space_id in seen:
            continue
        if uses_system and not model.supports_system:
            continue
        if uses_history and not model.supports_history:
            continue
        state = states.get(model.space_id, UNKNOWN)
        if known and state not in RUNNING:
            continue
        seen.add(model.space_id)
        out.append(model)
        if len(out) == limit:
            break
    return out
