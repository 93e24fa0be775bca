"""Web plumbing shared by the hub and edge apps: route policies, sessions, security headers.

Every route carries a name, and every name has an explicit rule in the app's policy table;
a route without one is refused (fail closed) and a test enumerates the routes to keep the table
complete. Sessions are HMAC-signed cookies (HttpOnly, SameSite=Strict, Secure over HTTPS).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, web

log = logging.getLogger(__name__)

SESSION_COOKIE = "cordon_session"
SESSION_MAX_AGE_S = 12 * 3600


class Access(StrEnum):
    PUBLIC = "public"
    """Anyone: login page, health, static assets."""
    SESSION = "session"
    """A signed-in person (cookie) or a machine with a bearer token."""
    CAMERA = "camera"
    """A camera; the handler checks that camera's own credentials."""
    EDGE = "edge"
    """An edge agent with its machine token (or a signed-in person)."""
    METRICS = "metrics"
    """A metrics scraper with the metrics token (or a signed-in person)."""


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str




class Sessions:
    """Signs and verifies session cookies with a per-process (or configured) secret."""

    def __init__(self, secret: bytes | None = None, max_age_s: int = SESSION_MAX_AGE_S) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.max_age_s = max_age_s

    def issue(self, principal: Principal) -> str:
        body = json.dumps({"n": principal.name, "r": principal.role, "t": int(time.time())},
                          separators=(",", ":")).encode()
        sig = hmac.new(self._secret, body, hashlib.sha256).digest()
        return _b64(body) + "." + _b64(sig)

    def verify(self, token: str) -> Principal | None:
        try:
            body_b64, sig_b64 = token.split(".", 1)
            body, sig = _unb64(body_b64), _unb64(sig_b64)
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(sig, hmac.new(self._secret, body, hashlib.sha256).digest()):
            return None
        try:
            data = json.loads(body)
            if time.time() - int(data["t"]) > self.max_age_s:
                return None
            return Principal(str(data["n"]), str(data["r"]))
        except (ValueError, KeyError, TypeError):
            return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def set_session(response: web.StreamResponse, sessions: Sessions, principal: Principal, *, secure: bool) -> None:
    response.set_cookie(SESSION_COOKIE, sessions.issue(principal), max_age=sessions.max_age_s, httponly=True,
                        samesite="Strict", secure=secure, path="/")


PRINCIPAL = web.RequestKey("principal", Principal)


def principal_of(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an empty expected token never matches."""
    return bool(expected) and given is not None and hmac.compare_digest(given.encode(), expected.encode())


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return None


CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; media-src 'self' data: blob:; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")


def certificate_name(request: web.Request) -> str | None:
    """The CN of the client certificate the TLS layer verified for this request (None over plain
    HTTP, or when the client presented none: the server asks with CERT_OPTIONAL)."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def make_middlewares(policy: Mapping[str, Access], sessions: Sessions,
                     machine_tokens: Callable[[str], Principal | None],
                     edge_certificates: bool = False) -> list[Any]:
    """Security headers, then authorization by the route's name in ``policy``. With
    ``edge_certificates``, a verified client certificate opens the ``EDGE`` routes as that node."""

    @web.middleware
    async def security_headers(request: web.Request,
                               handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                               ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if isinstance(response, web.HTTPException):
            raise response
        return response

    @web.middleware
    async def authorize(request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        route = request.match_info.route
        name = route.name if route is not None else None
        if name is None and isinstance(request.match_info, web.UrlMappingMatchInfo):
            name = getattr(request.match_info.route.resource, "name", None)
        if request.match_info.http_exception is not None:
            raise request.match_info.http_exception
        rule = policy.get(name or "")
        if rule is None:
            log.error("route %s (%s) has no access rule; refusing", name, request.path)
            raise web.HTTPForbidden(text="route has no access rule")
        if rule in (Access.SESSION, Access.EDGE, Access.METRICS):
            principal = None
            cookie = request.cookies.get(SESSION_COOKIE)
            if cookie:
                principal = sessions.verify(cookie)
            if principal is None and (token := bearer(request)):
                principal = machine_tokens(token)
                if principal is not None and principal.role in ("edge", "metrics") and principal.role != rule.value:
                    principal = None  # a machine token opens its own routes only
            if principal is None and rule is Access.EDGE and edge_certificates \
                    and (name := certificate_name(request)) is not None:
                principal = Principal(name, "edge")
            if principal is None:
                if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                    raise web.HTTPFound("/login")
                raise web.HTTPUnauthorized(text=json.dumps({"error": "sign in first"}),
                                           content_type="application/json")
            request[PRINCIPAL] = principal
        return await handler(request)

    return [security_headers, authorize]


def json_error(status: type[web.HTTPException], message: str, **extra: Any) -> web.HTTPException:
    return status(text=json.dumps({"error": message, **extra}, ensure_ascii=False), content_type="application/json")


STATIC_DIR = Path(__file__).with_name("static")


def add_login_routes(app: web.Application, sessions: Sessions, check_code: Callable[[str], Principal | None],
                     *, secure: bool) -> None:
    """``GET /login`` (the shared login page), ``POST /login`` and ``POST /logout``."""

    async def login_page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "login.html")

    async def login(request: web.Request) -> web.StreamResponse:
        if request.content_type == "application/json":
            try:
                data = await request.json()
            except ValueError:
                raise json_error(web.HTTPBadRequest, "body is not JSON") from None
            code = str(data.get("code", "")) if isinstance(data, dict) else ""
        else:
            code = str((await request.post()).get("code", ""))
        principal = check_code(code)
        if principal is None:
            log.warning("failed login from %s", request.remote)
            if request.content_type == "application/json":
                raise json_error(web.HTTPUnauthorized, "wrong access code")
            raise web.HTTPFound("/login?failed=1")
        response: web.StreamResponse
        if request.content_type == "application/json":
            response = web.json_response({"name": principal.name, "role": principal.role})
        else:
            response = web.HTTPFound("/")
        set_session(response, sessions, principal, secure=secure)
        if isinstance(response, web.HTTPException):
            raise response
        return response

    async def logout(request: web.Request) -> web.StreamResponse:
        response = web.HTTPFound("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    app.router.add_get("/login", login_page, name="login_page")
    app.router.add_post("/login", login, name="login")
    app.router.add_post("/logout", logout, name="logout")
    app.router.add_static("/common/", STATIC_DIR, name="common_static")


#: Access rules of the routes added by add_login_routes.
LOGIN_POLICY: dict[str, Access] = {
    "login_page": Access.PUBLIC,
    "login": Access.PUBLIC,
    "logout": Access.SESSION,
    "common_static": Access.PUBLIC,
}


async def websocket_feed(request: web.Request, fanout: Any, first: list[Any], encode: Callable[[Any], str],
                         sockets: set[web.WebSocketResponse]) -> web.WebSocketResponse:
    """Serve one live WebSocket client from a Fanout until it leaves or falls behind."""
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)

    async def send(frame: Any) -> None:
        await ws.send_str(encode(frame))

    async def drain() -> None:
        async for _ in ws:
            pass  # clients only listen; reading keeps the close handshake working

    sockets.add(ws)
    feeding = asyncio.create_task(fanout.serve(str(request.remote), send, first))
    reading = asyncio.create_task(drain())
    try:
        await asyncio.wait({feeding, reading}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (feeding, reading):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        sockets.discard(ws)
        if not ws.closed:
            await ws.close()
    return ws


async def close_sockets(sockets: set[web.WebSocketResponse]) -> None:
    """On shutdown: tell every live client we are going away."""
    for ws in list(sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
