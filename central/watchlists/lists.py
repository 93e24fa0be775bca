"""Watchlists at the hub: storage, the field feed's versions, and the hub's live index.

Every change goes through the store's writer thread as one job: the rows change, the hub's index
follows, and when the change touches the field feed (lists that are neither covert nor
restricted) it becomes the next feed version, kept in ``feed_changes``. After the commit the
delta is published to the edges and the retained feed version is updated (by the hub that holds the
``feed`` duty: ``central/watchlists/feedpublisher.py``). Matching runs in the same writer thread, so it
never sees a half-applied change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from central.record.stores import HubStores
from central.record.tx import Tx
from central.record.watchlists import MAX_DELTA_CHANGES, Applied, ListError, NotFound
from central.watchlists.feedpublisher import FeedPublisher
from central.watchlists.index import HubWatchlists
from protocols.feed import FeedChange

log = logging.getLogger(__name__)

#: Changes larger than this rebuild the hub's index from the database instead of patching it.
REBUILD_ABOVE = 20_000

__all__ = ["MAX_DELTA_CHANGES", "REBUILD_ABOVE", "Applied", "ListError", "ListService", "NotFound"]


class ListService:
    """Applies changes through the store's writer and tells the edges."""

    def __init__(
        self,
        store: HubStores,
        watchlists: HubWatchlists,
        publish: Callable[..., None],
        *,
        feed_duty: bool = False,
    ) -> None:
        """``feed_duty``: the feed is published by whichever hub holds the ``feed`` duty (while
        ``feed.run`` runs here); otherwise this service publishes every version it commits."""
        self.store = store
        self.watchlists = watchlists
        self.feed = FeedPublisher(
            store,
            publish,
            lambda: len(self.watchlists),
            max_delta_changes=lambda: MAX_DELTA_CHANGES,
            holding=not feed_duty,
        )
        self._snapshot: tuple[int, bytes] | None = None
        self._snapshot_lock = asyncio.Lock()
        #: called (on the event loop) after every new feed version this hub commits
        self.on_version: list[Callable[[int], None]] = []

    def load(self) -> int:
        """At start-up, from the writer thread's point of view: fill the index from the database."""

        return self.store.submit(lambda tx: self.watchlists.load(self.store.watchlists, tx)).result()

    async def apply(self, changes: list[FeedChange], actor: str) -> Applied:
        """Apply changes atomically; publish the feed delta after the commit."""

        def job(tx: Tx) -> Applied:
            applied = self.store.watchlists.apply_changes(tx, changes, self.watchlists, actor)
            if len(changes) > REBUILD_ABOVE:
                # Patching a large index entry by entry would grow its overlay past sense: build anew.
                self.watchlists.load(self.store.watchlists, tx)
            else:
                for op in applied.index_ops:
                    op()
                if applied.position == self.watchlists.position + 1:
                    # Next in the log: the index holds every change up to it. Past another hub's change
                    # not applied here yet, the follower applies both in order (central/watchlists/follow.py).
                    self.watchlists.position = applied.position
            return applied

        try:
            applied = await self.store.run(job)
        except ListError:
            raise
        except Exception:
            # The index may have moved while the commit failed: make it match the database again.
            log.exception("watchlist change not committed; reloading the index")
            await self.store.run(lambda tx: self.watchlists.load(self.store.watchlists, tx))
            raise
        if applied.delta is not None:
            self.feed.offer(applied.delta)
            for hook in self.on_version:
                hook(applied.delta.version)
        return applied

    async def snapshot(self) -> bytes:
        """The field feed as JSON, built once per feed version however many edges ask at once."""
        async with self._snapshot_lock:
            # Keyed by the version the snapshot itself holds: a cached one is served only while it is current.
            if self._snapshot is None or self._snapshot[0] != self.watchlists.index.feed_version:
                self._snapshot = await asyncio.to_thread(
                    self.store.read, self.store.watchlists.versioned_snapshot
                )
            return self._snapshot[1]
