"""Keeps the edge's mirror current: deltas as they come, a snapshot over HTTP when behind."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time

import aiohttp
import msgspec

from protocols.feed import FeedDelta, FeedSnapshot, FeedVersion

from .mirror import Applied, Mirror

log = logging.getLogger(__name__)

#: How long a newer announced version may wait for its delta before the edge fetches a snapshot.
DELTA_GRACE_S = 1.0
RETRY_MAX_S = 30.0
_snapshot_decoder = msgspec.json.Decoder(type=FeedSnapshot)


class FeedSync:
    def __init__(
        self, mirror: Mirror, hub_url: str, token: str, ssl_context: ssl.SSLContext | None = None
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
        self._wake = asyncio.Event()
        self._last_delta_at = 0.0
        self._applying = 0

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
                await self.fetch_snapshot()
                delay = 1.0
            except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.last_error = f"snapshot: {exc}"
                log.warning("feed snapshot failed (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                self._wake.set()

    async def fetch_snapshot(self) -> int:
        headers = {"Authorization": f"Bearer {self.token}"}
        timeout = aiohttp.ClientTimeout(total=300)
        connector = aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context is not None else True)
        async with (
            aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
            session.get(f"{self.hub_url}/api/v1/feed/snapshot", headers=headers) as resp,
        ):
            if resp.status != 200:
                raise aiohttp.ClientResponseError(
                    resp.request_info, resp.history, status=resp.status, message=(await resp.text())[:200]
                )
            body = await resp.read()
        snapshot = await asyncio.to_thread(_snapshot_decoder.decode, body)
        if not await self.mirror.replace(snapshot):
            log.info(
                "feed snapshot %d is not newer than the mirror (%d); ignored",
                snapshot.version,
                self.mirror.version,
            )
            return self.mirror.version
        self.snapshots += 1
        self.last_error = None
        log.info("feed snapshot applied: version %d, %d entries", snapshot.version, len(snapshot.entries))
        return snapshot.version
