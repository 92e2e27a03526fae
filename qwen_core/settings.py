"""Where a Space is reached and with what credentials: ``base_url``, ``QWEN_SPACE_URLS``,
``HF_TOKEN``, timeouts. The token goes only to Hugging Face hosts or to a base URL the
user configured explicitly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from .errors import InvalidRequest
from .spaces.base import SpaceAdapter

__all__ = ["Endpoint", "resolve_endpoint", "parse_space_urls", "make_timeout", "HF_HOSTS"]

HF_HOSTS = ("huggingface.co",)
HF_SUFFIXES = (".hf.space", ".huggingface.co")
DEFAULT_CONNECT = 10.0
DEFAULT_READ = 60.0  # longest silence tolerated; Gradio sends a heartbeat every 15 s


@dataclass(frozen=True, slots=True)
class Endpoint:
    base_url: str
    token: str | None  # None unless it may be sent to this host
    explicit: bool

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def __repr__(self) -> str:  # never show the token
        return f"Endpoint(base_url={self.base_url!r}, token={'***' if self.token else None})"


def parse_space_urls(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"Qwen/Qwen2.5-Max-Demo=http://127.0.0.1:7861,Qwen/Qwen3-Demo=..."`` -> dict."""
    if not text:
        return {}
    if isinstance(text, Mapping):
        return {str(k).strip(): str(v).strip().rstrip("/") for k, v in text.items()}
    mapping: dict[str, str] = {}
    for item in text.replace("\n", ",").split(","):
        item = item.strip()
        if not item:
            continue
        space, sep, url = item.partition("=")
        if not sep or not space.strip() or not url.strip():
            raise InvalidRequest(
                f"QWEN_SPACE_URLS entry {item!r} is not 'Owner/Space=http://host:port'"
            )
        mapping[space.strip()] = url.strip().rstrip("/")
    return mapping


def is_hf_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in HF_HOSTS or host.endswith(HF_SUFFIXES)


def resolve_endpoint(
    adapter: type[SpaceAdapter],
    base_url: str | None = None,
    hf_token: str | None = None,
    space_urls: Mapping[str, str] | None = None,
) -> Endpoint:
    """Pick the base URL (argument, then ``QWEN_SPACE_URLS``, then the public Space) and
    decide whether the token may travel there."""
    explicit = True
    if base_url is None:
        urls = dict(space_urls) if space_urls is not None else parse_space_urls(
            os.environ.get("QWEN_SPACE_URLS")
        )
        base_url = urls.get(adapter.space_id)
        if base_url is None:
            base_url, explicit = adapter.url(), False
    base_url = base_url.rstrip("/")
    scheme = urlsplit(base_url).scheme
    if scheme not in ("http", "https"):
        raise InvalidRequest(f"base URL {base_url!r} must start with http:// or https://")
    token = hf_token if hf_token is not None else os.environ.get("HF_TOKEN") or None
    if token and not (explicit or is_hf_host(base_url)):
        token = None
    return Endpoint(base_url=base_url, token=token, explicit=explicit)


def make_timeout(timeout: float | tuple[float, float] | httpx.Timeout | None) -> httpx.Timeout:
    """``timeout``: seconds for everything, ``(connect, read)``, or an httpx.Timeout. The
    read timeout is the longest silence tolerated while streaming."""
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is None:
        return httpx.Timeout(DEFAULT_READ, connect=DEFAULT_CONNECT)
    if isinstance(timeout, tuple):
        connect, read = timeout
        return httpx.Timeout(read, connect=connect)
    return httpx.Timeout(float(timeout))
