"""Where a Space is reached and with what credentials: ``base_url``, ``QWEN_SPACE_URLS``,
``HF_TOKEN``, timeouts. The token goes only to Hugging Face hosts or to a base URL the
user configured explicitly."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from .errors import InvalidRequest
from .spaces.base import SpaceAdapter

__all__ = [
    "Endpoint",
    "resolve_endpoint",
    "parse_space_urls",
    "make_timeout",
    "HF_HOSTS",
    "redact_url",
    "redact_text",
    "check_space_url",
]

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
        return (
            f"Endpoint(base_url={redact_url(self.base_url)!r}, "
            f"token={'***' if self.token else None})"
        )


_AUTHORITY_END = re.compile(r"[/?#\\]")
_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]*\]|[^:\[\]]*)(?::[0-9]*)?")


def redact_url(url: str) -> str:
    """``url`` with any credentials (``user:password@``) replaced by ``***@``, for messages
    and logs. Never raises, whatever it is given (a malformed URL, not even a string)."""
    try:
        text = url if isinstance(url, str) else str(url)
        scheme_end = text.find("://")
        start = scheme_end + 3 if scheme_end >= 0 else (2 if text.startswith("//") else 0)
        end_match = _AUTHORITY_END.search(text, start)
        end = end_match.start() if end_match else len(text)
        at = text.rfind("@", start, end)
        if at < 0:
            # a password holding a raw '/', '?', '#' or '\\' ends the authority early
            # ("http://user:pa/ss@host"): if an '@' follows and the authority is no plain
            # host[:port], treat everything up to the last '@' as credentials
            later = text.rfind("@", end)
            if later < 0 or _HOST_PORT.fullmatch(text[start:end]):
                return text
            at = later
        return f"{text[:start]}***@{text[at + 1:]}"
    except Exception:  # noqa: BLE001 - "never raises" is the contract
        return "***"


_CREDENTIALS_IN_TEXT = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@]*@")


def redact_text(text: str) -> str:
    """Every ``scheme://user:password@`` in a free text (e.g. an httpx error) as ``***@``."""
    return _CREDENTIALS_IN_TEXT.sub(r"\1***@", text)


def check_space_url(url: str, where: str) -> str:
    """``url`` (stripped of a trailing slash) if it is an http(s) URL with a host and a
    valid port, else :class:`InvalidRequest` saying so, with credentials redacted."""
    if not isinstance(url, str):
        raise InvalidRequest(f"{where} must be a string URL, got {type(url).__name__}")
    url = url.strip().rstrip("/")
    shown = repr(redact_url(url)[:300])
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidRequest(f"{where} {shown} is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequest(f"{where} {shown} must start with http:// or https://")
    try:
        host = parts.hostname
        port = parts.port
    except ValueError:  # its text may hold part of a password: not shown
        raise InvalidRequest(f"{where} {shown} has no valid host and port") from None
    if not host:
        raise InvalidRequest(f"{where} {shown} has no host")
    if port == 0:
        raise InvalidRequest(f"{where} {shown} has port 0")
    try:
        httpx.URL(url)
    except Exception:  # noqa: BLE001 - httpx.InvalidURL and whatever its parser raises
        raise InvalidRequest(f"{where} {shown} is not a URL httpx can request") from None
    return url


_SPACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def parse_space_urls(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"Qwen/Qwen2.5-Max-Demo=http://127.0.0.1:7861,Qwen/Qwen3-Demo=..."`` -> dict."""
    if not text:
        return {}
    if isinstance(text, Mapping):
        return {
            str(k).strip(): check_space_url(str(v), f"the URL of {str(k).strip()!r:.200}")
            for k, v in text.items()
        }
    mapping: dict[str, str] = {}
    for item in text.replace("\n", ",").split(","):
        item = item.strip()
        if not item:
            continue
        space, sep, url = item.partition("=")
        space = space.strip()
        if not sep or not _SPACE_ID.fullmatch(space) or not url.strip():
            raise InvalidRequest(
                f"QWEN_SPACE_URLS entry {redact_url(item)[:300]!r} is not "
                "'Owner/Space=http://host:port'"
            )
        mapping[space] = check_space_url(url, f"QWEN_SPACE_URLS entry for {space!r}:")
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
    base_url = check_space_url(base_url, "base URL")
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
