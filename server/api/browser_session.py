"""The browser's refresh token: an HttpOnly cookie, never readable by page scripts.

A browser client says so with ``X-Telemed-Client: web`` when it logs in; it then gets the
refresh token only as a cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure`` except on the
loopback demo) limited to the refresh and logout paths, and the JSON body carries no refresh
token. A refresh from the cookie must also carry ``X-Telemed-Refresh: 1``: a cross-site form
cannot set a custom header, so it cannot rotate someone's session (checklist A-series, CSRF).
Non-browser clients keep sending the refresh token in the body.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Final

from aiohttp import web

CLIENT_HEADER: Final = "X-Telemed-Client"
REFRESH_HEADER: Final = "X-Telemed-Refresh"
COOKIE_NAME: Final = "telemed_refresh"
# One cookie per path: a cookie's Path is a prefix, and only these two routes may receive it.
COOKIE_PATHS: Final = ("/api/auth/refresh", "/api/auth/logout")


def is_browser(request: web.Request) -> bool:
    """The web app identifies itself; only then is the refresh token moved into a cookie."""
    return request.headers.get(CLIENT_HEADER, "").lower() == "web"


def _loopback(request: web.Request) -> bool:
    host = (request.url.host or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cookie_secure(request: web.Request, environment: str) -> bool:
    """Secure everywhere but plain-HTTP loopback outside production (the one-command demo)."""
    if environment == "production" or request.secure:
        return True
    return not _loopback(request)


def _cookie(value: str, path: str, max_age: int, secure: bool) -> str:
    # Built by hand: aiohttp keeps one cookie per name per response, and we need one per path.
    parts = [f"{COOKIE_NAME}={value}", f"Path={path}", f"Max-Age={max_age}", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def set_refresh_cookie(
    response: web.StreamResponse, request: web.Request, token: str, expires_at: datetime, environment: str
) -> None:
    """Attach the refresh token as HttpOnly SameSite=Strict cookies on the refresh and logout paths."""
    max_age = max(0, int((expires_at - datetime.now(expires_at.tzinfo)).total_seconds()))
    secure = cookie_secure(request, environment)
    for path in COOKIE_PATHS:
        response.headers.add("Set-Cookie", _cookie(token, path, max_age, secure))


def clear_refresh_cookie(response: web.StreamResponse, request: web.Request, environment: str) -> None:
    """Expire both cookies (logout)."""
    secure = cookie_secure(request, environment)
    for path in COOKIE_PATHS:
        response.headers.add("Set-Cookie", _cookie('""', path, 0, secure))


def cookie_refresh_token(request: web.Request) -> str | None:
    """The cookie's refresh token, but only when the custom header proves a same-origin script sent it."""
    if request.headers.get(REFRESH_HEADER) != "1":
        return None
    token = request.cookies.get(COOKIE_NAME, "")
    return token if 10 <= len(token) <= 200 else None
