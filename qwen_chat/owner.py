"""Whose conversations: an unguessable owner id per browser, or the signed-in identity.

The :class:`OwnerCookieMiddleware` (installed by ``streamlit_app.py`` on ``st.App``) gives
a browser without one an owner id in an HttpOnly, SameSite=Lax cookie (Secure over
HTTPS). The page reads it from ``st.context.cookies`` (the websocket's request carries
it) through :func:`owner_from`. When Streamlit authentication is configured and the
person is signed in, the owner is their identity's subject instead, so they see their
conversations from any browser."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["COOKIE", "OwnerCookieMiddleware", "owner_from", "new_owner_id"]

COOKIE = "qwen_chat_owner"
MAX_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie
_VALID = re.compile(r"[A-Za-z0-9_-]{32,64}")
_SKIP = ("/_stcore/", "/static/", "/media/", "/component/", "/v1/")


def new_owner_id() -> str:
    return secrets.token_urlsafe(24)  # 192 bits, 32 characters


def valid_owner_id(value: object) -> bool:
    return isinstance(value, str) and _VALID.fullmatch(value) is not None


def owner_from(cookies: Mapping[str, str], user: Any = None) -> str | None:
    """The owner of this session's conversations, or None (no cookie: the browser blocks
    cookies, or the page was reached without the middleware). ``user``: ``st.user``."""
    subject = None
    try:
        if user is not None and user.get("is_logged_in"):
            subject = user.get("sub") or user.get("email")
    except Exception:  # noqa: BLE001 - st.user raises when auth is not configured
        subject = None
    if subject:
        return f"user:{subject}"
    try:
        cookie = cookies.get(COOKIE)
    except Exception:  # noqa: BLE001 - no request context (tests, bare mode)
        return None
    return f"browser:{cookie}" if valid_owner_id(cookie) else None


class OwnerCookieMiddleware:
    """Pure ASGI middleware (no buffering, so streamed API answers are untouched): adds
    ``Set-Cookie`` to page responses of browsers that have no valid owner cookie."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(_SKIP):
            await self.app(scope, receive, send)
            return
        if valid_owner_id(_cookie(scope, COOKIE)):
            await self.app(scope, receive, send)
            return
        secure = _is_https(scope)
        value = new_owner_id()
        cookie = (f"{COOKIE}={value}; Path=/; Max-Age={MAX_AGE}; HttpOnly; SameSite=Lax"
                  + ("; Secure" if secure else ""))

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"set-cookie", cookie.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie") or ""
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _is_https(scope: Scope) -> bool:
    if scope.get("scheme") == "https":
        return True
    proto = (_header(scope, b"x-forwarded-proto") or "").split(",")[0].strip().lower()
    return proto == "https"
