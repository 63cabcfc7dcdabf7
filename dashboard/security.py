"""The guard around every request: read-only methods, Host check, token, and security headers.

* Only ``GET`` and ``HEAD`` are served (the dashboard never changes anything): other methods get 405.
* DNS-rebinding protection: the ``Host`` header must name a loopback address, the bind host or one of
  ``allowed_hosts`` (see :meth:`DashboardSettings.host_patterns`); otherwise 421.
* With a token: ``Authorization: Bearer <token>`` or the ``cq_dashboard`` cookie (an HMAC of the token, never
  the token itself; HttpOnly, SameSite=Strict), which a browser gets by opening any page once with
  ``?token=<token>`` (it is then redirected to the same URL without it). Compared in constant time. Missing or
  wrong: 401.
* Every response carries a strict Content-Security-Policy (scripts, styles, images and fetches from this origin
  only; no inline script or style, no framing, forms post nowhere else), ``nosniff``, ``no-referrer`` and
  same-origin isolation headers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, quote, urlencode

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboard.settings import DashboardSettings
from serving import is_loopback_host

COOKIE = "cq_dashboard"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
READ_METHODS = frozenset({"GET", "HEAD"})
PATH_SAFE = "/:@!$&'()*+,;=-._~"


def cookie_value(token: str) -> str:
    """What the browser keeps: derived from the token (the token itself is never stored in a cookie)."""
    return hmac.new(token.encode(), b"comfy-quality dashboard cookie", hashlib.sha256).hexdigest()


def host_name(host_header: str) -> str:
    """``'example.com:8080'`` → ``'example.com'``, ``'[::1]:80'`` → ``'::1'`` (lower case)."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class GuardMiddleware:
    """Pure ASGI middleware applying the rules in the module docstring."""

    def __init__(self, app: ASGIApp, settings: DashboardSettings) -> None:
        self.app = app
        self.hosts = settings.host_patterns()
        token = settings.token_value()
        self.token = token.encode() if token else None
        self.cookie_value = cookie_value(token) if token else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["method"] not in READ_METHODS:
            await _plain(send, 405, "the dashboard is read-only: only GET and HEAD are served", allow=True)
            return
        if self.hosts is not None:
            name = host_name(headers.get("host", ""))
            if name not in self.hosts and not is_loopback_host(name):
                await _plain(
                    send,
                    421,
                    f"host {name!r} is not served here; add it to COMFY_QUALITY_DASHBOARD_ALLOWED_HOSTS",
                )
                return
        if self.token is not None:
            query = scope.get("query_string", b"").decode("latin-1")
            pairs = parse_qsl(query, keep_blank_values=True)
            offered = next((v for k, v in pairs if k == "token"), None)
            if offered is not None and self._matches(offered):
                rest = urlencode([(k, v) for k, v in pairs if k != "token"])
                await _set_cookie_redirect(scope, send, self.cookie_value, rest)
                return
            if not self._authorized(headers):
                await _plain(
                    send,
                    401,
                    "this dashboard needs its token: open it once as ?token=<token> or send "
                    "'Authorization: Bearer <token>' (COMFY_QUALITY_DASHBOARD_TOKEN)",
                    bearer=True,
                )
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    if key not in out:
                        out[key] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _matches(self, offered: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(offered.encode(), self.token)

    def _authorized(self, headers: Headers) -> bool:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and self._matches(auth[7:].strip()):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is simply no cookie
            return False
        morsel = cookie.get(COOKIE)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), self.cookie_value.encode())


async def _plain(send: Send, status: int, message: str, *, allow: bool = False, bearer: bool = False) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *[(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()],
    ]
    if allow:
        headers.append((b"allow", b"GET, HEAD"))
    if bearer:
        headers.append((b"www-authenticate", b'Bearer realm="comfy-quality dashboard"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _set_cookie_redirect(scope: Scope, send: Send, value: str, rest: str) -> None:
    root = quote(scope.get("root_path", "") or "/", safe=PATH_SAFE)
    location = quote(scope.get("path", "/"), safe=PATH_SAFE) + (f"?{rest}" if rest else "")
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    cookie = f"{COOKIE}={value}; Path={root}; HttpOnly; SameSite=Strict{secure}"
    headers = [
        (b"location", location.encode("ascii")),
        (b"set-cookie", cookie.encode("ascii")),
        (b"cache-control", b"no-store"),
        (b"content-length", b"0"),
        *[(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()],
    ]
    await send({"type": "http.response.start", "status": 303, "headers": tuple(headers)})
    await send({"type": "http.response.body", "body": b""})
