"""Web plumbing shared by the hub and edge apps: route policies, sessions, security headers.

Every route carries a name, and every name has an explicit rule in the app's policy table: public,
a camera's own credentials, a machine token, any signed-in person, or a set of roles. A route
without one is refused (fail closed) and a test enumerates the routes to keep the table complete.
Sessions are HMAC-signed cookies (HttpOnly, SameSite=Strict, Secure over HTTPS) that name the
person, their role, their checkpoint (officers) and their account's session generation, so
disabling an account or changing its password ends its sessions at once. State-changing requests
from a browser must come from the app's own origin (``Origin`` checked; CSRF). Failed logins are
rate-limited per account and per address. A request that is not well-formed HTTP is the client's
fault, logged as one warning line rather than as a server error.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from aiohttp import WSCloseCode, web
from aiohttp.http_exceptions import BadHttpMessage

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
    VIID = "viid"
    """A GA/T 1400 peer known by its code in ``User-Identify``; the handler checks how it proved it
    (at the edge a registration with HTTP digest, runtime/digest.py; at the hub the platform's token)."""
    EDGE = "edge"
    """An edge agent with its machine token (or a signed-in person)."""
    METRICS = "metrics"
    """A metrics scraper with the metrics token (or a signed-in person)."""


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str
    checkpoint: str | None = None
    """The checkpoint an officer is bound to."""
    generation: int = 0
    """The account's session generation when the session was issued (bumped to end sessions)."""


@dataclass(frozen=True, slots=True)
class Roles:
    """A route open to signed-in people (or machine tokens) of these roles only."""

    names: frozenset[str]

    def __contains__(self, role: str) -> bool:
        return role in self.names


def roles(*names: str) -> Roles:
    return Roles(frozenset(names))


Rule = Access | Roles


class Sessions:
    """Signs and verifies session cookies with a per-process (or configured) secret."""

    def __init__(self, secret: bytes | None = None, max_age_s: int = SESSION_MAX_AGE_S) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.max_age_s = max_age_s

    def issue(self, principal: Principal) -> str:
        body = json.dumps(
            {
                "n": principal.name,
                "r": principal.role,
                "c": principal.checkpoint,
                "g": principal.generation,
                "t": int(time.time()),
            },
            separators=(",", ":"),
        ).encode()
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
            checkpoint = data.get("c")
            return Principal(
                str(data["n"]), str(data["r"]), str(checkpoint) if checkpoint else None, int(data.get("g", 0))
            )
        except (ValueError, KeyError, TypeError):
            return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def set_session(
    response: web.StreamResponse, sessions: Sessions, principal: Principal, *, secure: bool
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        sessions.issue(principal),
        max_age=sessions.max_age_s,
        httponly=True,
        samesite="Strict",
        secure=secure,
        path="/",
    )


PRINCIPAL = web.RequestKey("principal", Principal)


def principal_of(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_allowed(remote: str | None, nets: Sequence[Network]) -> bool:
    """Whether a peer's address is in one of ``nets`` (an IPv4-mapped IPv6 address counts as IPv4);
    no nets: any address."""
    if not nets:
        return True
    try:
        address = ipaddress.ip_address((remote or "").split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in nets)


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an empty expected token never matches."""
    return bool(expected) and given is not None and hmac.compare_digest(given.encode(), expected.encode())


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return None


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; media-src 'self' data: blob:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)


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


#: How much of the parser's complaint (its reason, then an excerpt of the client's bytes) a warning keeps.
MAX_BAD_REQUEST_LOG_CHARS = 300


class _MalformedRequests(logging.Filter):
    """aiohttp answers a request it cannot parse (a NUL in a header, raw bytes in the URL) with 400, then
    logs it at ERROR with a traceback as if the server had failed. The client is at fault: one warning line.
    A handler's own failure stays an error, and what aiohttp logs at debug (TLS on the HTTP port) stays so."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.levelno < logging.ERROR or not isinstance(exc, BadHttpMessage):
            return True
        # The parser's message is a reason, then the offending line (repr, so escaped) and a caret under it.
        parts = [line.strip() for line in exc.message.splitlines() if line.strip().strip("^")]
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        log.warning("bad HTTP request from %s: %s", remote, " ".join(parts)[:MAX_BAD_REQUEST_LOG_CHARS])
        return False


_MALFORMED_REQUESTS = _MalformedRequests()


def log_malformed_requests_as_warnings() -> None:
    """Install :class:`_MalformedRequests` on aiohttp's server log (once per process)."""
    server_log = logging.getLogger("aiohttp.server")
    if _MALFORMED_REQUESTS not in server_log.filters:
        server_log.addFilter(_MALFORMED_REQUESTS)


def make_middlewares(
    policy: Mapping[str, Rule],
    sessions: Sessions,
    machine_tokens: Callable[[str], Principal | None],
    still_valid: Callable[[Principal], bool] | None = None,
    edge_certificates: bool = False,
) -> list[Any]:
    """Security headers, then authorization by the route's name in ``policy``, then the type of scripts.

    ``still_valid`` is asked about every session (is the account enabled, is the session of its
    current generation?); machine tokens are checked by ``machine_tokens``. With
    ``edge_certificates``, a verified client certificate opens the ``EDGE`` routes as that node.
    Both apps build theirs here, so this is also where malformed requests are set to log as warnings."""
    log_malformed_requests_as_warnings()

    @web.middleware
    async def security_headers(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if isinstance(response, web.HTTPException):
            raise response
        return response

    @web.middleware
    async def authorize(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
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
        if rule in (Access.PUBLIC, Access.CAMERA, Access.VIID):
            return await handler(request)
        principal = None
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            principal = sessions.verify(cookie)
            if principal is not None and still_valid is not None and not still_valid(principal):
                principal = None  # disabled, or its password changed since: the session is over
            if principal is not None:
                _check_origin(request)
        if principal is None and (token := bearer(request)):
            principal = machine_tokens(token)
            if (
                principal is not None
                and principal.role in ("edge", "metrics")
                and (isinstance(rule, Roles) or principal.role != rule.value)
            ):
                principal = None  # a machine token opens its own routes only
        if (
            principal is None
            and rule is Access.EDGE
            and edge_certificates
            and (name := certificate_name(request)) is not None
        ):
            principal = Principal(name, "edge")
        if principal is None:
            if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                raise web.HTTPFound("/login")
            raise web.HTTPUnauthorized(
                text=json.dumps({"error": "sign in first"}), content_type="application/json"
            )
        if isinstance(rule, Roles) and principal.role not in rule:
            log.warning("%s (%s) refused %s %s", principal.name, principal.role, request.method, request.path)
            if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                # a person whose role has no page here (an auditor at the console) is told so in words on the
                # sign-in page, with the way to sign in as someone else, not shown a JSON refusal
                raise web.HTTPFound("/login?refused=1")
            raise json_error(
                web.HTTPForbidden, f"the role {principal.role!r} may not do this", allowed=sorted(rule.names)
            )
        request[PRINCIPAL] = principal
        return await handler(request)

    @web.middleware
    async def javascript_type(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # A static file's type comes from aiohttp's copy of Python's built-in table: .js is
        # application/javascript before Python 3.12 (obsolete since RFC 9239, still run by browsers) and
        # text/javascript after. Browsers refuse a module script whose type is not JavaScript, so the
        # type of scripts is set here, the same on every Python, instead of being left to the table.
        response = await handler(request)
        if isinstance(response, web.FileResponse) and request.path.endswith(".js"):
            response.content_type = "text/javascript"
            response.charset = "utf-8"
        return response

    return [security_headers, authorize, javascript_type]


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _check_origin(request: web.Request) -> None:
    """CSRF: a state-changing request carrying a session cookie must come from this origin.

    Browsers send ``Origin`` with every cross-site POST (and ``Sec-Fetch-Site``); a foreign one is
    refused. Non-browser clients send neither and are not at risk (they hold the cookie themselves)."""
    if request.method in _SAFE_METHODS:
        return
    origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise json_error(web.HTTPForbidden, "cross-site request refused")
    if origin is not None and origin != "null":
        expected = f"{request.scheme}://{request.host}"
        if origin != expected:
            raise json_error(web.HTTPForbidden, "cross-site request refused")
    elif origin == "null":
        raise json_error(web.HTTPForbidden, "cross-site request refused")


class LoginLimits(Protocol):
    """What a login route asks of its limiter (the hub's ``central.record.stores.LoginLimitStore``)."""

    def retry_after(self, account: str, address: str) -> float | None:
        """Seconds until another attempt is allowed, or None when one is allowed now."""
        ...

    def failed(self, account: str, address: str) -> None: ...

    def succeeded(self, account: str) -> None: ...


class LoginLimiter:
    """Failed logins per account and per address in a sliding window; past the limit, refuse for a while."""

    def __init__(
        self,
        per_account: int = 5,
        per_address: int = 20,
        window_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str) -> list[float]:
        now = self._clock()
        times = [t for t in self._failures.get(key, []) if now - t < self.window_s]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def retry_after(self, account: str, address: str) -> float | None:
        """Seconds until another attempt is allowed, or None when one is allowed now."""
        for key, limit in ((f"u:{account}", self.per_account), (f"a:{address}", self.per_address)):
            times = self._recent(key)
            if len(times) >= limit:
                return max(1.0, self.window_s - (self._clock() - times[-limit]))
        return None

    def failed(self, account: str, address: str) -> None:
        now = self._clock()
        for key in (f"u:{account}", f"a:{address}"):
            self._failures.setdefault(key, []).append(now)
        if len(self._failures) > 10_000:  # a flood of made-up names must not grow this without end
            for key in list(self._failures)[:5_000]:
                self._recent(key)

    def succeeded(self, account: str) -> None:
        self._failures.pop(f"u:{account}", None)


def json_error(
    status: type[web.HTTPException], message: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> web.HTTPException:
    return status(
        text=json.dumps({"error": message, **extra}, ensure_ascii=False),
        content_type="application/json",
        headers=headers,
    )


STATIC_DIR = Path(__file__).with_name("static")


LoginHook = Callable[[web.Request, str, Principal | None], Awaitable[None]]
#: Checks credentials (``{"username", "password"}`` or ``{"code"}``); may be slow (password hashing).
CheckLogin = Callable[[Mapping[str, str]], Principal | None]


def add_login_routes(
    app: web.Application,
    sessions: Sessions,
    check_login: CheckLogin,
    *,
    on_login: LoginHook | None = None,
    limiter: LoginLimits | None = None,
) -> None:
    """``GET /login`` (the shared login page), ``POST /login`` and ``POST /logout``.

    ``on_login`` hears every attempt (the account name tried, and the principal or None), e.g. for
    the audit trail. The cookie is Secure when the request came over HTTPS."""
    limiter = limiter or LoginLimiter()

    async def login_page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "login.html")

    async def login(request: web.Request) -> web.StreamResponse:
        as_json = request.content_type == "application/json"
        if as_json:
            try:
                data = await request.json()
            except ValueError:
                raise json_error(web.HTTPBadRequest, "body is not JSON") from None
            if not isinstance(data, dict):
                raise json_error(web.HTTPBadRequest, "body must be a JSON object")
        else:
            data = dict(await request.post())
        credentials = {k: str(data.get(k, ""))[:256] for k in ("username", "password", "code")}
        account = credentials["username"] or "(access code)"
        address = str(request.remote)
        wait = limiter.retry_after(account, address)
        if wait is not None:
            log.warning("login for %r from %s refused: too many failures", account[:64], address)
            raise json_error(
                web.HTTPTooManyRequests,
                "too many failed logins; wait and try again",
                retry_after_s=int(wait),
                headers={"Retry-After": str(int(wait))},
            )
        principal = await asyncio.to_thread(check_login, credentials)
        if on_login is not None:
            await on_login(request, account, principal)
        if principal is None:
            limiter.failed(account, address)
            log.warning("failed login for %r from %s", account[:64], address)
            if as_json:
                raise json_error(web.HTTPUnauthorized, "wrong user name, password or access code")
            raise web.HTTPFound("/login?failed=1")
        limiter.succeeded(account)
        response: web.StreamResponse
        if as_json:
            response = web.json_response(
                {"name": principal.name, "role": principal.role, "checkpoint": principal.checkpoint}
            )
        else:
            response = web.HTTPFound("/")
        set_session(response, sessions, principal, secure=request.secure)
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
LOGIN_POLICY: dict[str, Rule] = {
    "login_page": Access.PUBLIC,
    "login": Access.PUBLIC,
    "logout": Access.SESSION,
    "common_static": Access.PUBLIC,
}


async def websocket_feed(
    request: web.Request,
    fanout: Any,
    first: list[Any] | Callable[[], Awaitable[list[Any]]],
    encode: Callable[[Any], str | None],
    sockets: set[web.WebSocketResponse],
) -> web.WebSocketResponse:
    """Serve one live WebSocket client from a Fanout until it leaves or falls behind."""
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)

    async def send(frame: Any) -> None:
        text = encode(frame)
        if text is not None:  # None: this client may not see this frame (e.g. a covert alert)
            await ws.send_str(text)

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
