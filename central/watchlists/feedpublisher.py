"""The field feed on the broker: each version's delta and the retained version, in version order, from
the one hub that holds the ``feed`` duty (central/record/duties.py).

Alone (SQLite), the hub publishes each delta right after the commit that made it, as it always did. With
several hubs on one database each commits its own changes, and two hubs publishing their own deltas
could put version 7 on the broker before 6, and leave the retained version at 6 after 7. So only the
duty's holder publishes: a change committed here goes out at once when it is the next version, and the
versions other hubs committed are read from the feed's log (``WatchlistStore.deltas_since``) every
``poll_s`` and published in order. A hub that takes the duty over announces the store's version first;
edges behind it take the missed deltas from the log (``GET /api/v1/feed/deltas``), as after any gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import msgspec

from central.record.stores import HubStores
from protocols import topics
from protocols.feed import FeedDelta, FeedVersion
from protocols.messages import SCHEMA_VERSION, encode

log = logging.getLogger(__name__)

#: Deltas read from the log at once; further behind, the version alone is announced (edges take the file).
MAX_CATCH_UP = 2000


class _Logged(msgspec.Struct):
    version: int


_logged = msgspec.json.Decoder(type=_Logged)


class FeedPublisher:
    """Publishes the feed while ``holding`` (always, unless built for a duty: then while ``run`` runs)."""

    def __init__(
        self,
        store: HubStores,
        publish: Callable[..., None],
        entries: Callable[[], int],
        *,
        max_delta_changes: Callable[[], int],
        holding: bool = True,
    ) -> None:
        self.store = store
        self._publish = publish
        self._entries = entries
        self._max_delta_changes = max_delta_changes
        self.holding = holding
        #: the last version announced (None: none yet, the next delta offered goes out as it is)
        self.published: int | None = None
        self._wake = asyncio.Event()

    def offer(self, delta: FeedDelta) -> None:
        """A version this hub committed (on the event loop, after the commit)."""
        if not self.holding:
            return  # the duty's holder reads it from the log
        if self.published is None or delta.version == self.published + 1:
            self._delta(delta)
        elif delta.version > self.published + 1:
            self._wake.set()  # versions of other hubs in between: from the log, in order

    def _delta(self, delta: FeedDelta) -> None:
        if len(delta.changes) <= self._max_delta_changes():
            self._publish(topics.feed_delta(), encode(delta), qos=1)
        else:
            log.info(
                "feed version %d has %d changes: edges will fetch a snapshot",
                delta.version,
                len(delta.changes),
            )
        self.announce(delta.version)

    def announce(self, version: int) -> None:
        """The retained feed version (every broker connect repeats it)."""
        message = FeedVersion(v=SCHEMA_VERSION, version=version, entries=self._entries(), sent_at=time.time())
        self._publish(topics.feed_version(), encode(message), qos=1, retain=True)
        self.published = version if self.published is None else max(self.published, version)

    def on_connected(self) -> None:
        """The broker (re)connected: repeat the retained version, when this hub publishes the feed (on the
        event loop, as everything that moves ``published``)."""
        if self.holding and self.published is not None:
            self.announce(self.published)

    async def run(self, poll_s: float | None) -> None:
        """The ``feed`` duty: announce the store's version, then publish every later version in order
        (those of other hubs found every ``poll_s``; None: no other hub writes the feed)."""
        self.holding = True
        try:
            self.published = None
            version = await asyncio.to_thread(self.store.read, self.store.watchlists.feed_version)
            self.announce(version)
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(poll_s):
                        await self._wake.wait()
                self._wake.clear()
                try:
                    await self.catch_up()
                except Exception:
                    log.exception("could not read the feed's log; trying again")
        finally:
            self.holding = False
            self.published = None

    async def catch_up(self) -> None:
        """Publish the versions after the last one published, from the feed's log."""
        since = self.published or 0
        found = await asyncio.to_thread(
            self.store.read, lambda tx: self.store.watchlists.deltas_since(tx, since, MAX_CATCH_UP)
        )
        if found is None:
            # A bulk change or too far behind: the version alone (edges take the file and the deltas after it).
            version = await asyncio.to_thread(self.store.read, self.store.watchlists.feed_version)
            if self.published is None or version > self.published:
                self.announce(version)
            return
        version, bodies = found
        for body in bodies:
            logged = _logged.decode(body).version
            if self.published is not None and logged <= self.published:
                continue  # published meanwhile by ``offer``
            self._publish(topics.feed_delta(), body, qos=1)
            self.published = logged
        if bodies or self.published is None or version > self.published:
            self.announce(version)
