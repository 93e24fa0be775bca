"""Upstream list sources: files or HTTP endpoints the hub polls to keep a watchlist in sync.

An ``UpstreamSource`` fetches one list's whole file and parses it with ``central.watchlists.files``; the
hub diffs the result against the list (``importer.diff_entries``) and applies it as one change.
A source asks cheaply first (HTTP ``If-None-Match``/``If-Modified-Since``; a file's mtime and
size) and compares a sha256 of the body, so an unchanged list costs no parse and no change.
A bad file is never applied in part: it is an error, recorded in ``state.last_error``, and the
state otherwise stays as it was, so the next poll fetches and judges the file again.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import msgspec

from central.settings import UpstreamSettings
from central.watchlists.files import ImportRejected, ImportResult, parse_entries
from protocols.errors import CordonError

__all__ = [
    "CONNECT_TIMEOUT_S",
    "MAX_BODY_BYTES",
    "REQUEST_TIMEOUT_S",
    "SourceState",
    "UpstreamError",
    "UpstreamSettings",
    "UpstreamSource",
]

MAX_BODY_BYTES = 512 * 1024 * 1024
CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 300.0  # whole request, body included: a big list over a slow link
READ_CHUNK = 1 << 20
MAX_ERROR_CHARS = 2000  # last_error is shown on the console; ImportRejected can be long


class SourceState(msgspec.Struct, kw_only=True):
    """What a source remembers between polls (the hub may persist it across restarts)."""

    name: str
    etag: str | None = None
    last_modified: str | None = None
    fingerprint: str | None = None  # sha256 hex of the last body parsed
    last_poll_at: float | None = None  # last poll that succeeded (changed or not)
    last_change_at: float | None = None
    last_error: str | None = None  # None after a successful poll
    last_entries: int = 0
    # File sources: the stat of the file last read, to skip reading it when neither changed.
    mtime_ns: int | None = None
    size: int | None = None


class UpstreamError(CordonError, ValueError):
    """An upstream that could not be fetched (network, HTTP status, size, missing file)."""


def _redact(url: str) -> str:
    """The URL without credentials or query, for messages that reach logs and the console."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class UpstreamSource:
    """Polls one upstream list; ``poll()`` returns the parsed entries when the list changed."""

    def __init__(self, settings: UpstreamSettings, state: SourceState | None = None) -> None:
        where = f"upstream source {settings.name!r}"
        if not settings.name:
            raise ValueError("upstream source: name must not be empty")
        if not settings.list_id:
            raise ValueError(f"{where}: list_id must not be empty")
        if (settings.url is None) == (settings.path is None):
            raise ValueError(f"{where}: set exactly one of url and path")
        if settings.url is not None and urlsplit(settings.url).scheme not in ("http", "https"):
            raise ValueError(f"{where}: url must start with http:// or https://")
        if settings.token is not None and settings.url is None:
            raise ValueError(f"{where}: token is only for url sources")
        if not settings.interval_s > 0:
            raise ValueError(f"{where}: interval_s must be positive")
        if settings.format not in ("csv", "json"):
            raise ValueError(f"{where}: format must be csv or json")
        self.settings = settings
        self.state = state or SourceState(name=settings.name)
        self._lock = asyncio.Lock()

    @property
    def created_by(self) -> str:
        return f"upstream:{self.settings.name}"

    def forget(self) -> None:
        """Drop what makes the next poll skip an unchanged body: call it when applying a result failed."""
        self._set(etag=None, last_modified=None, fingerprint=None, mtime_ns=None, size=None)

    async def poll(self, session: aiohttp.ClientSession | None = None) -> ImportResult | None:
        """The list's entries when it changed since the last successful poll, else None.

        Raises ``UpstreamError`` when the list cannot be fetched and ``ImportRejected`` when it
        is not a valid list file; both leave the state as it was except ``last_error``.
        """
        async with self._lock:
            try:
                if self.settings.url is not None:
                    return await self._poll_url(self.settings.url, session)
                return await self._poll_file(Path(self.settings.path or ""))
            except (UpstreamError, ImportRejected) as exc:
                text = str(exc)
                self._set(last_error=text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "…")
                raise

    # -----------------------------------------------------------------------------------------

    def _fail(self, what: str) -> UpstreamError:
        return UpstreamError(f"upstream source {self.settings.name!r}: {what}")

    def _set(self, **fields: object) -> None:
        # In place: whoever holds this state object (the hub, to persist it) sees every update.
        for name, value in fields.items():
            setattr(self.state, name, value)

    def _unchanged(self, **fields: object) -> None:
        self._set(last_poll_at=time.time(), last_error=None, **fields)

    async def _parse(self, body: bytes, **fields: object) -> ImportResult | None:
        fingerprint = hashlib.sha256(body).hexdigest()
        if fingerprint == self.state.fingerprint:
            self._unchanged(**fields)
            return None
        # A million rows take seconds: keep the event loop (MQTT, web) running meanwhile.
        result = await asyncio.to_thread(
            parse_entries, body, self.settings.format, self.settings.list_id, created_by=self.created_by
        )
        now = time.time()
        self._set(
            fingerprint=fingerprint,
            last_poll_at=now,
            last_change_at=now,
            last_error=None,
            last_entries=len(result.entries),
            **fields,
        )
        return result

    async def _poll_url(self, url: str, session: aiohttp.ClientSession | None) -> ImportResult | None:
        if session is None:
            async with aiohttp.ClientSession() as own:
                return await self._poll_url(url, own)
        headers = {"Accept": "application/json" if self.settings.format == "json" else "text/csv"}
        if self.state.etag:
            headers["If-None-Match"] = self.state.etag
        if self.state.last_modified:
            headers["If-Modified-Since"] = self.state.last_modified
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        shown = _redact(url)
        try:
            async with session.get(url, headers=headers, timeout=timeout) as resp:
                if resp.status == 304:
                    self._unchanged()
                    return None
                if resp.status != 200:
                    raise self._fail(f"GET {shown} answered HTTP {resp.status} {resp.reason or ''}".rstrip())
                if resp.content_length is not None and resp.content_length > MAX_BODY_BYTES:
                    raise self._fail(f"GET {shown}: body of {resp.content_length} bytes is over the limit")
                body = bytearray()
                async for chunk in resp.content.iter_chunked(READ_CHUNK):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise self._fail(f"GET {shown}: body is over the limit of {MAX_BODY_BYTES} bytes")
                etag = resp.headers.get("ETag")
                last_modified = resp.headers.get("Last-Modified")
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise self._fail(f"GET {shown} failed: {reason}") from exc
        return await self._parse(bytes(body), etag=etag, last_modified=last_modified)

    async def _poll_file(self, path: Path) -> ImportResult | None:
        try:
            before = await asyncio.to_thread(os.stat, path)
        except OSError as exc:
            raise self._fail(f"cannot read {path}: {exc.strerror or exc}") from exc
        stat = {"mtime_ns": before.st_mtime_ns, "size": before.st_size}
        if (
            self.state.fingerprint is not None
            and self.state.mtime_ns == before.st_mtime_ns
            and self.state.size == before.st_size
        ):
            self._unchanged()
            return None
        if before.st_size > MAX_BODY_BYTES:
            raise self._fail(f"{path} is {before.st_size} bytes, over the limit of {MAX_BODY_BYTES}")
        try:
            body = await asyncio.to_thread(path.read_bytes)
            after = await asyncio.to_thread(os.stat, path)
        except OSError as exc:
            raise self._fail(f"cannot read {path}: {exc.strerror or exc}") from exc
        if (after.st_mtime_ns, after.st_size) != (before.st_mtime_ns, before.st_size):
            # Being written right now: judge it next time, whole. (Writers should write a
            # temporary file and rename it over this one.)
            return None
        return await self._parse(body, **stat)
