"""The console's guards, as one small ASGI middleware: authentication (a token or basic
auth), the security headers on every answer, and ``--read-only``'s refusal of every POST.
CSRF is checked by the action handlers themselves (:func:`csrf_ok`), as it needs the form.

- Token: ``Authorization: Bearer TOKEN``, or the ``jackstalk_token`` cookie, which a visit
  to any page with ``?token=TOKEN`` sets (then redirects to the same page without it).
- Basic auth: ``Authorization: Basic ...`` with the ``USER:PASSWORD`` given.
- Either one lets a request in when both are configured; nothing configured, everything
  is let in (the console then listens on loopback only: the command line sees to that).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CSRF_COOKIE",
    "SECURITY_HEADERS",
    "TOKEN_COOKIE",
    "Guard",
    "csrf_ok",
    "new_csrf_token",
]

TOKEN_COOKIE = "jackstalk_token"
CSRF_COOKIE = "jackstalk_csrf"

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
]
"""Sent with every answer: scripts and styles only from the console itself (it has no
inline script), never framed, no referrer to other sites, no content sniffing."""


def new_csrf_token() -> str:
    """A fresh random value for the CSRF cookie and the forms' hidden field."""
    return secrets.token_urlsafe(24)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in headers.get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            found.setdefault(name, value)
    return found


def csrf_ok(headers: dict[str, str], form_value: str) -> bool:
    """Whether a POST may act: its ``csrf`` field equals its CSRF cookie (double submit),
    and its ``Origin`` (else ``Referer``), when sent, names the host it was sent to."""
    cookie = _cookies(headers).get(CSRF_COOKIE, "")
    if not cookie or not form_value or not _same(form_value, cookie):
        return False
    source = headers.get("origin") or headers.get("referer")
    if source:
        return urlsplit(source).netloc == headers.get("host", "")
    return True


class Guard:
    """The middleware: see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None = None,
        basic_auth: str | None = None,
        read_only: bool = False,
    ) -> None:
        self.app = app
        self.token = token
        self.basic = None
        if basic_auth is not None:
            self.basic = "Basic " + base64.b64encode(basic_auth.encode()).decode("ascii")
        self.read_only = read_only

    def _authorised(self, headers: dict[str, str]) -> bool:
        if self.token is None and self.basic is None:
            return True
        given = headers.get("authorization", "")
        if self.token is not None:
            scheme, _, credentials = given.partition(" ")
            if scheme.lower() == "bearer" and _same(credentials.strip(), self.token):
                return True
            if _same(unquote(_cookies(headers).get(TOKEN_COOKIE, "")), self.token):
                return True
        if self.basic is not None and given[:6].lower() == "basic ":
            try:  # compared decoded, so any spelling of the same credentials passes
                decoded = base64.b64decode(given[6:].strip(), validate=True)
                expected = base64.b64decode(self.basic[6:])
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(decoded, expected)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [pair for pair in SECURITY_HEADERS if pair[0] not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        headers = _headers(scope)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if self.token is not None and "token" in query and scope["method"] in ("GET", "HEAD"):
            if not _same(query["token"], self.token):
                await _plain(secured, 401, "wrong token", self._challenge())
                return
            # Keep the token in a cookie, and take it out of the address bar and history.
            pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
            rest = urlencode([(key, value) for key, value in pairs if key != "token"])
            # One leading slash: "//host/..." would send the browser to another site.
            path = "/" + quote(scope.get("root_path", "") + scope["path"]).lstrip("/")
            location = path + (f"?{rest}" if rest else "")
            cookie = f"{TOKEN_COOKIE}={quote(self.token, safe='')}; Path=/; HttpOnly; SameSite=Lax"
            moved = [(b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode())]
            await _plain(secured, 303, "", moved)
            return
        if not self._authorised(headers):
            await _plain(secured, 401, "authentication required", self._challenge())
            return
        if self.read_only and scope["method"] == "POST":
            await _plain(secured, 403, "read-only console: no actions", [])
            return
        await self.app(scope, receive, secured)

    def _challenge(self) -> list[tuple[bytes, bytes]]:
        if self.basic is not None:
            return [(b"www-authenticate", b'Basic realm="jackstalk", charset="UTF-8"')]
        return [(b"www-authenticate", b'Bearer realm="jackstalk"')]


async def _plain(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
