"""Keeps the edge's mirror current: deltas as they come, the hub's feed file over HTTP when behind.

Behind (a gap, or a fresh edge), the edge downloads the hub's newest feed file
(``GET /api/v1/feed/file``) into ``feed-download.part`` beside the mirror. A dropped line keeps
what arrived: the next try asks for the rest (``Range``) of the same file (``If-Range`` with its
ETag), so a thin line never starts from nothing. The finished file is checked (its SHA-256 must be
the ETag, and the hub's signature must verify when the edge has the hub's key) before it replaces
the mirror. Deltas that arrive meanwhile are kept and applied after it, then the deltas the hub
logged since the file's version (``GET /api/v1/feed/deltas``). A hub without feed files (404)
gets the JSON snapshot request of earlier releases.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
import time
from pathlib import Path

import aiohttp
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocols import feedfile, signing
from protocols.errors import CordonError
from protocols.feed import FeedDelta, FeedSnapshot, FeedVersion

from .mirror import Applied, Mirror

log = logging.getLogger(__name__)

#: How long a newer announced version may wait for its delta before the edge fetches a snapshot.
DELTA_GRACE_S = 1.0
RETRY_MAX_S = 30.0
#: A download that receives nothing for this long is dropped (and resumed later).
READ_TIMEOUT_S = 30.0
#: Deltas kept while a download runs; more than this and the oldest are dropped (the hub serves them).
MAX_PENDING_DELTAS = 10_000
PART_NAME = "feed-download.part"
_snapshot_decoder = msgspec.json.Decoder(type=FeedSnapshot)


class _DeltaLog(msgspec.Struct):
    version: int
    deltas: list[FeedDelta]


_delta_log_decoder = msgspec.json.Decoder(type=_DeltaLog)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class NoFeedFile(CordonError):
    """The hub predates feed files (404): the JSON snapshot is used instead."""


class FeedSync:
    def __init__(
        self,
        mirror: Mirror,
        hub_url: str,
        token: str,
        ssl_context: ssl.SSLContext | None = None,
        *,
        download_dir: Path | None = None,
        hub_key: Ed25519PublicKey | None = None,
        signature_required: bool = False,
    ) -> None:
        self.mirror = mirror
        self.hub_url = hub_url.rstrip("/")
        self.token = token
        #: verifies the hub's certificate ([hub] ca_file) and presents the checkpoint's ([hub] cert_file)
        self.ssl_context = ssl_context
        self.hub_version: int | None = None
        self.snapshots = 0
        self.deltas = 0
        self.last_error: str | None = None
        #: where a feed file is downloaded to (None: kept in memory, not resumable across restarts)
        self.download_dir = download_dir
        self.hub_key = hub_key
        self.signature_required = signature_required
        #: feed-file bytes received over HTTP, all tries together (what the line carried)
        self.bytes_fetched = 0
        self.resumed = 0
        self.refused_files = 0
        self._wake = asyncio.Event()
        self._last_delta_at = 0.0
        self._applying = 0
        self._fetching = False
        self._pending: dict[int, FeedDelta] = {}

    async def on_version(self, message: FeedVersion) -> None:
        self.hub_version = message.version
        self._wake.set()

    async def on_delta(self, delta: FeedDelta) -> None:
        self._last_delta_at = time.monotonic()
        self.hub_version = max(self.hub_version or 0, delta.version)
        self._applying += 1
        try:
            result = await self.mirror.apply_delta(delta)
        finally:
            self._applying -= 1
            self._last_delta_at = time.monotonic()
        if result is Applied.APPLIED:
            self.deltas += 1
        elif result is Applied.GAP and self._fetching:
            # A download is under way: keep the delta for after it (never a reason to start again).
            self._pending[delta.version] = delta
            while len(self._pending) > MAX_PENDING_DELTAS:
                del self._pending[min(self._pending)]
        elif result is Applied.GAP:
            log.info(
                "feed gap: mirror at %d, delta %d; fetching a snapshot", self.mirror.version, delta.version
            )
            self._last_delta_at = 0.0
            self._wake.set()

    def behind(self) -> bool:
        return self.hub_version is not None and self.hub_version > self.mirror.version

    async def run(self) -> None:
        """Fetch a snapshot whenever the mirror is behind and no delta is about to close the gap."""
        delay = 1.0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._wake.wait()
            self._wake.clear()
            if not self.behind() or not self.hub_url:
                continue
            # Deltas still arriving (or being applied) will close the gap themselves: wait until
            # none has come for the grace period before paying for a whole snapshot.
            while self.behind() and (  # noqa: ASYNC110 - a quiet period, not an event
                self._applying or time.monotonic() < self._last_delta_at + DELTA_GRACE_S
            ):
                await asyncio.sleep(max(0.05, self._last_delta_at + DELTA_GRACE_S - time.monotonic()))
            if not self.behind():
                continue
            try:
                # A mirror that holds a feed closes a gap from the hub's delta log when it can (a few
                # kilobytes); only a fresh edge, or one too far behind for deltas, takes the file.
                if not (self.mirror.version > 0 and await self.catch_up_from_log() and not self.behind()):
                    await self.fetch_snapshot()
                delay = 1.0
            except (
                aiohttp.ClientError,
                TimeoutError,
                OSError,
                msgspec.DecodeError,
                msgspec.ValidationError,
                feedfile.FeedFileError,
                signing.SignatureError,
            ) as exc:
                self.last_error = f"snapshot: {exc}"
                log.warning("feed snapshot failed (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                self._wake.set()

    def _session(self) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=READ_TIMEOUT_S)
        connector = aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context is not None else True)
        return aiohttp.ClientSession(timeout=timeout, connector=connector)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def fetch_snapshot(self) -> int:
        """Bring the mirror to the hub's newest feed file and the deltas since; returns its version."""
        self._fetching = True
        try:
            try:
                path = await self._fetch_file()
            except NoFeedFile:
                snapshot = await self._fetch_json()
                installed = await self.mirror.replace(snapshot)
                version, count = snapshot.version, len(snapshot.entries)
                del snapshot
            else:
                try:
                    installed, version, count = await self.mirror.replace_file(path)
                finally:
                    path.unlink(missing_ok=True)
            if not installed:
                log.info(
                    "feed snapshot %d is not newer than the mirror (%d); ignored",
                    version,
                    self.mirror.version,
                )
            else:
                self.snapshots += 1
                self.last_error = None
                log.info("feed snapshot applied: version %d, %d entries", version, count)
            await self._catch_up()
            return self.mirror.version
        finally:
            self._fetching = False
            self._pending.clear()

    async def _apply_in_order(self, deltas: dict[int, FeedDelta]) -> None:
        for version in sorted(deltas):
            if version <= self.mirror.version:
                continue
            if await self.mirror.apply_delta(deltas[version]) is not Applied.APPLIED:
                return  # a gap: what follows cannot be applied either
            self.deltas += 1

    async def _catch_up(self) -> None:
        """After a file: the deltas kept during the download, then the ones the hub logged since."""
        await self._apply_in_order(dict(self._pending))
        self._pending.clear()
        # Asked even when no newer version was announced: a delta may have gone unheard meanwhile.
        await self.catch_up_from_log()

    async def catch_up_from_log(self) -> bool:
        """Apply the deltas the hub logged after the mirror's version; False when the hub cannot
        serve them as deltas (too far behind, a bulk change, or a hub without the endpoint)."""
        async with (
            self._session() as session,
            session.get(
                f"{self.hub_url}/api/v1/feed/deltas",
                params={"since": str(self.mirror.version)},
                headers=self._headers(),
            ) as resp,
        ):
            if resp.status in (404, 410):
                return False  # an older hub, or too far behind for deltas
            if resp.status != 200:
                raise aiohttp.ClientResponseError(
                    resp.request_info, resp.history, status=resp.status, message=(await resp.text())[:200]
                )
            body = await resp.read()
        body = signing.open_signed(body, self.hub_key, required=self.signature_required)
        logged = _delta_log_decoder.decode(body)
        self.hub_version = max(self.hub_version or 0, logged.version)
        await self._apply_in_order({d.version: d for d in logged.deltas})
        return True

    def _part(self) -> tuple[Path, Path] | None:
        if self.download_dir is None:
            return None
        part = self.download_dir / PART_NAME
        return part, part.with_name(PART_NAME + ".etag")

    async def _fetch_file(self) -> Path:
        """Download the newest feed file (resuming a partial one) and check it; returns its path."""
        paths = self._part()
        if paths is None:
            raise NoFeedFile  # nowhere to keep a partial file: the JSON snapshot of earlier releases
        part, tag = paths
        have = part.stat().st_size if part.exists() and tag.exists() else 0
        etag = tag.read_text().strip() if have else ""
        headers = self._headers()
        if have and etag:
            headers |= {"Range": f"bytes={have}-", "If-Range": etag}
        async with (
            self._session() as session,
            session.get(f"{self.hub_url}/api/v1/feed/file", headers=headers) as resp,
        ):
            if resp.status == 404:
                raise NoFeedFile
            if resp.status == 416:
                part.unlink(missing_ok=True)
                raise aiohttp.ClientResponseError(resp.request_info, resp.history, status=416)
            if resp.status not in (200, 206):
                raise aiohttp.ClientResponseError(
                    resp.request_info, resp.history, status=resp.status, message=(await resp.text())[:200]
                )
            new_tag = resp.headers.get("ETag", "")
            signature = resp.headers.get("X-Cordon-Feed-Signature")
            start = 0
            if resp.status == 206:
                start = int(resp.headers.get("Content-Range", "bytes 0-").split()[1].split("-")[0])
                if new_tag != etag or start != have:
                    raise aiohttp.ClientResponseError(
                        resp.request_info, resp.history, status=206, message="a range of another file"
                    )
                self.resumed += 1
            part.parent.mkdir(parents=True, exist_ok=True)
            if start == 0:
                tag.write_text(new_tag)
            with part.open("r+b" if start else "wb") as f:
                f.seek(start)
                f.truncate()
                async for chunk in resp.content.iter_chunked(256 * 1024):
                    f.write(chunk)
                    self.bytes_fetched += len(chunk)
        digest = await asyncio.to_thread(_file_digest, part)
        try:
            if digest != new_tag.strip('"'):
                raise feedfile.FeedFileError("the feed file does not match its digest (ETag)")
            if self.hub_key is not None and signature is not None:
                feedfile.verify_digest(digest, signature, self.hub_key)
            elif self.signature_required:
                raise feedfile.FeedFileError("the feed file is unsigned or the hub's key is unknown")
        except feedfile.FeedFileError:
            # A damaged or forged file is never resumed either: the next try starts it afresh.
            self.refused_files += 1
            part.unlink(missing_ok=True)
            tag.unlink(missing_ok=True)
            raise
        checked = part.with_name(PART_NAME + ".checked")
        part.replace(checked)
        tag.unlink(missing_ok=True)
        return checked

    async def _fetch_json(self) -> FeedSnapshot:
        async with (
            self._session() as session,
            session.get(f"{self.hub_url}/api/v1/feed/snapshot", headers=self._headers()) as resp,
        ):
            if resp.status != 200:
                raise aiohttp.ClientResponseError(
                    resp.request_info, resp.history, status=resp.status, message=(await resp.text())[:200]
                )
            body = await resp.read()
        return await asyncio.to_thread(_snapshot_decoder.decode, body)
