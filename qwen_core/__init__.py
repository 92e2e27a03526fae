"""qwen_core — a fast, correct, synchronous streaming client for the Qwen Spaces.

>>> import qwen_core
>>> for text in qwen_core.stream_chat("qwen-2.5-max", [{"role": "user", "content": "Hi"}]):
...     print(text, end="", flush=True)
"""

from __future__ import annotations

from . import doctor, events
from .client import EventStream, astream_chat, astream_events, stream_chat, stream_events
from .doctor import SpaceCheck, check_all, check_space
from .errors import (
    GenerationError,
    InvalidRequest,
    LimitExceeded,
    QueueFull,
    RateLimited,
    SpaceAPIChanged,
    SpaceError,
    SpaceUnavailable,
)
from .events import Event
from .limits import Limits
from .models import MODELS, Model, resolve_model
from .settings import parse_space_urls, redact_url

__version__ = "0.1.0"

__all__ = [
    "MODELS",
    "Model",
    "resolve_model",
    "stream_chat",
    "stream_events",
    "astream_chat",
    "astream_events",
    "EventStream",
    "Event",
    "events",
    "parse_space_urls",
    "redact_url",
    "Limits",
    "SpaceError",
    "SpaceUnavailable",
    "QueueFull",
    "RateLimited",
    "SpaceAPIChanged",
    "GenerationError",
    "InvalidRequest",
    "LimitExceeded",
    "doctor",
    "SpaceCheck",
    "check_space",
    "check_all",
]
