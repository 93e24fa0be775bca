"""HTTP digest authentication, server side (RFC 7616, with RFC 2617's MD5 that GA/T 1400 devices use).

The server answers a request without credentials with a challenge (``WWW-Authenticate: Digest realm,
qop="auth", nonce, opaque, algorithm=MD5``); the client repeats the request with ``Authorization:
Digest ...`` whose ``response`` proves it knows the password without sending it. Only ``qop=auth``
is accepted (RFC 2069's form without qop gives no protection against replays with a chosen nonce).

Nonces are issued here and remembered, bounded, with the highest nonce count seen: a nonce older
than ``nonce_ttl_s`` is answered ``stale=true`` (the client retries at once with a fresh one, without
asking its user), an unknown nonce or a nonce count that does not grow is refused (a replay). Every
comparison of secrets is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from protocols.errors import CordonError

__all__ = ["DigestError", "DigestGuard", "Credentials", "parse_authorization"]

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^\s,]*)\s*(?:,|$)')
MAX_HEADER_CHARS = 4096


class DigestError(CordonError, ValueError):
    """Credentials that do not prove anything; ``stale`` when only the nonce was too old."""

    def __init__(self, reason: str, *, stale: bool = False) -> None:
        super().__init__(reason)
        self.stale = stale


@dataclass(frozen=True, slots=True)
class Credentials:
    """What an ``Authorization: Digest`` header says."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    qop: str | None
    nc: str | None
    cnonce: str | None
    opaque: str | None
    algorithm: str


def parse_authorization(header: str) -> Credentials:
    """Parse ``Digest k=v, k="v"``; DigestError when it is not one."""
    if len(header) > MAX_HEADER_CHARS:
        raise DigestError("Authorization header is too long")
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"Authorization is {scheme[:20]!r}, not Digest")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            raise DigestError("Authorization: Digest parameters are malformed")
        value = m[3] if m[3] is not None else m[2]
        params[m[1].lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    missing = [k for k in ("username", "realm", "nonce", "uri", "response") if not params.get(k)]
    if missing:
        raise DigestError(f"Authorization: Digest lacks {', '.join(missing)}")
    return Credentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"].lower(),
        qop=params.get("qop"),
        nc=params.get("nc"),
        cnonce=params.get("cnonce"),
        opaque=params.get("opaque"),
        algorithm=params.get("algorithm", "MD5"),
    )


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class DigestGuard:
    """Issues challenges and checks answers for one realm."""

    def __init__(
        self,
        realm: str,
        *,
        nonce_ttl_s: float = 300.0,
        max_nonces: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.realm = realm
        self.nonce_ttl_s = nonce_ttl_s
        self.max_nonces = max_nonces
        self._clock = clock
        self._opaque = secrets.token_hex(16)
        self._nonces: OrderedDict[str, list[float | int]] = OrderedDict()  # nonce -> [issued_at, last nc]

    def challenge(self, *, stale: bool = False) -> str:
        """A ``WWW-Authenticate`` value with a fresh nonce."""
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = [self._clock(), 0]
        while len(self._nonces) > self.max_nonces:  # a flood of unanswered challenges stays bounded
            self._nonces.popitem(last=False)
        value = f'Digest realm="{self.realm}", qop="auth", nonce="{nonce}", opaque="{self._opaque}", algorithm=MD5'
        return value + (", stale=true" if stale else "")

    def verify(self, method: str, uri: str, header: str, password_for: Callable[[str], str | None]) -> str:
        """The user name the header proves, for a request of ``method`` on ``uri`` (path and query as
        sent); DigestError otherwise. ``password_for`` gives a user's password, None for no such user."""
        creds = parse_authorization(header)
        if creds.algorithm.upper() != "MD5":
            raise DigestError(f"algorithm {creds.algorithm[:20]!r} is not supported (MD5 only)")
        if creds.qop != "auth":
            raise DigestError("qop must be auth")
        if not creds.nc or not creds.cnonce or not re.fullmatch(r"[0-9a-fA-F]{8}", creds.nc):
            raise DigestError("qop=auth needs nc (8 hex digits) and cnonce")
        if not hmac.compare_digest(creds.realm.encode(), self.realm.encode()):
            raise DigestError("wrong realm")
        if creds.opaque is not None and not hmac.compare_digest(creds.opaque.encode(), self._opaque.encode()):
            raise DigestError("wrong opaque")
        if creds.uri != uri:
            raise DigestError("the digest was made for another uri")
        state = self._nonces.get(creds.nonce)
        if state is None:
            raise DigestError("unknown nonce", stale=True)
        password = password_for(creds.username)
        # Computed even for an unknown user, so the answer takes as long either way.
        ha1 = _md5(f"{creds.username}:{self.realm}:{password or secrets.token_hex(16)}")
        ha2 = _md5(f"{method}:{creds.uri}")
        expected = _md5(f"{ha1}:{creds.nonce}:{creds.nc}:{creds.cnonce}:{creds.qop}:{ha2}")
        good = hmac.compare_digest(expected.encode(), creds.response.encode())
        if not good or password is None:
            raise DigestError("wrong user name or password")
        if self._clock() - float(state[0]) > self.nonce_ttl_s:
            del self._nonces[creds.nonce]
            raise DigestError("nonce expired", stale=True)
        nc = int(creds.nc, 16)
        if nc <= int(state[1]):
            raise DigestError("nonce count replayed")
        state[1] = nc
        return creds.username
