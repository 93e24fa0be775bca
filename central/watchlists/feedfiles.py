"""The hub's feed files: the newest field feed as one compact file, and the deltas since it.

A background job (never a request) writes ``feed-<version>-<sha256>.cfeed`` into the hub's
``feed/`` folder when the feed has moved far enough from the newest file: no file yet, a bulk
change since (bulk versions are logged by size only, so no delta can stand in for them),
``feed.file_rebuild_versions`` versions behind, or a change older than ``feed.file_rebuild_s``
not yet in a file. An edge fetches the newest file (``GET /api/v1/feed/file``, resumable with
``Range`` / ``If-Range``) and then the deltas since its version (``GET /api/v1/feed/deltas``).
The file's bytes depend only on the feed's content (``protocols.feedfile``), so every hub of a
cluster builds the same file for the same version, and a resumed download never splices two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from central.record.stores import HubStores
from protocols import feedfile

log = logging.getLogger(__name__)

#: How many deltas ``deltas_since`` serves at most; further behind, the edge takes the file.
MAX_DELTAS_SERVED = 2000
#: How many older files stay on disk besides the newest (a download in flight keeps its ETag).
KEEP_OLDER = 1


@dataclass(frozen=True, slots=True)
class FeedFile:
    version: int
    path: Path
    digest: str
    size: int
    signature: str | None

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'


class FeedFiles:
    """Keeps the newest feed file current in the background (see the module doc)."""

    def __init__(
        self,
        store: HubStores,
        directory: Path,
        *,
        sign: Callable[[str], str] | None,
        sign_body: Callable[[bytes], bytes] | None = None,
        rebuild_versions: int,
        rebuild_s: float,
        current_version: Callable[[], int],
    ) -> None:
        self.store = store
        self.directory = directory
        self._sign = sign
        #: signs a JSON body the way MQTT messages are signed (``protocols.signing``)
        self.sign_body = sign_body
        self.rebuild_versions = rebuild_versions
        self.rebuild_s = rebuild_s
        self._current_version = current_version
        self.current: FeedFile | None = None
        #: the newest file and the few kept before it, by digest (a resumed download names its ETag)
        self.files: dict[str, FeedFile] = {}
        self.builds = 0
        self._wake = asyncio.Event()

    def poke(self) -> None:
        """The feed moved: look again whether a new file is due."""
        self._wake.set()

    def _adopt_existing(self) -> None:
        """At start-up: the newest file a previous run left, if it is still a true feed version."""
        best: FeedFile | None = None
        for path in self.directory.glob("feed-*.cfeed"):
            try:
                _, version, digest = path.stem.split("-", 2)
                found = FeedFile(int(version), path, digest, path.stat().st_size, None)
            except (ValueError, OSError):
                continue
            if best is None or found.version > best.version:
                best = found
        if best is not None and best.version <= self._current_version():
            data = best.path.read_bytes()
            if feedfile.digest_of(data) == best.digest:
                self.current = self._signed(best)
                self.files[best.digest] = self.current

    def _signed(self, f: FeedFile) -> FeedFile:
        signature = self._sign(f.digest) if self._sign is not None else None
        return FeedFile(f.version, f.path, f.digest, f.size, signature)

    def _due(self) -> bool:
        version = self._current_version()
        if self.current is None:
            return True
        if version <= self.current.version:
            return False
        since = self.current.version
        count, bulk, first = self.store.read(lambda tx: self.store.watchlists.unfiled(tx, since))
        return (
            bulk
            or count >= self.rebuild_versions
            or (first is not None and time.time() - first >= self.rebuild_s)
        )

    def build_now(self) -> FeedFile:
        """Build and install the newest file (blocking: call from a thread)."""
        t = time.monotonic()
        version, lists, entries, rules = self.store.read(self.store.watchlists.field_feed)
        data = feedfile.build(version, lists, entries, rules)
        del lists, entries
        digest = feedfile.digest_of(data)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"feed-{version}-{digest}.cfeed"
        # Written anew even when the name exists (the same bytes; a damaged copy is replaced).
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        made = self._signed(FeedFile(version, path, digest, len(data), None))
        self.current = made
        self.files[digest] = made
        self.builds += 1
        self._prune()
        log.info("feed file for version %d: %d bytes in %.1f s", version, len(data), time.monotonic() - t)
        return made

    def _prune(self) -> None:
        files = sorted(self.directory.glob("feed-*.cfeed"), key=lambda p: p.stat().st_mtime, reverse=True)
        keep = {self.current.path} if self.current else set()
        keep.update(files[: KEEP_OLDER + 1])
        for p in files:
            if p not in keep:
                with contextlib.suppress(OSError):
                    p.unlink()
        self.files = {d: f for d, f in self.files.items() if f.path in keep}

    def by_etag(self, etag: str) -> FeedFile | None:
        """A kept file by its ETag (quoted digest), for a download resumed with If-Range."""
        return self.files.get(etag.strip().removeprefix("W/").strip('"'))

    async def run(self, check_every_s: float = 5.0) -> None:
        """Rebuild whenever a file is due (woken by ``poke``, and every few seconds for the age rule)."""
        await asyncio.to_thread(self._adopt_existing)
        while True:
            try:
                if await asyncio.to_thread(self._due):
                    await asyncio.to_thread(self.build_now)
            except Exception:
                log.exception("could not build the feed file; trying again later")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(check_every_s):
                    await self._wake.wait()
            self._wake.clear()
