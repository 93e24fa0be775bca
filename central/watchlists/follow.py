"""The changes other hubs make to the lists, into this hub's matching index.

Each hub holds the whole matching index in memory (``central/watchlists/index.py``) and moves it by the
changes it applies itself. Hubs sharing one PostgreSQL store also need the changes made through the
others' APIs, upstream polls and list files: every change is logged at the next position, in commit
order, covert and restricted lists included (``central/record/watchlists.py``, "The log of list
changes"). Every ``POLL_S`` the follower reads the log after the position its index holds (on a read
connection: nothing is asked of the writer while nothing changed) and applies what it finds in a job of
the store's writer, where matching runs, so no read is matched against a half-applied change. The
operations are the ones the applying hub ran (``index_ops``). A change of this hub's own that was
applied before another hub's earlier one is applied again after it, so the index ends as the store
does; a change logged without its contents (a bulk one) or a log that no longer goes back to the
index's position makes the hub load its index anew. So does a feed version in the store ahead of the
index's with nothing new in the log: a hub of a release before the log (PostgreSQL migration 12) changed
the lists, which happens while a cluster is upgraded one hub at a time (docs/deploy.md, "Upgrades").

Alone on SQLite the log holds only this hub's changes and the follower finds nothing to do: one small
read every ``POLL_S``. Why the store is polled rather than woken by ``LISTEN``/``NOTIFY``: see
docs/architecture.md, "Several hubs on one store".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from central.record.stores import HubStores
from central.record.tx import Tx
from central.record.watchlists import LoggedChange, index_ops
from central.watchlists.index import HubWatchlists
from runtime.background import poll

log = logging.getLogger(__name__)

#: How often the log of list changes is read: a change made through another hub matches here this much
#: later at most (plus the read and the writer's queue).
POLL_S = 0.25
#: Changes read at once.
PAGE = 200


class ListFollower:
    """Applies the list changes other hubs committed to this hub's index (``run`` until cancelled)."""

    def __init__(
        self,
        store: HubStores,
        watchlists: HubWatchlists,
        on_version: Callable[[int], None] | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        """``on_version`` is told (on the event loop) of a feed version another hub made."""
        self.store = store
        self.watchlists = watchlists
        self.on_version = on_version
        self.poll_s = poll_s
        #: changes applied from the log, and times the index was loaded anew for it
        self.applied = 0
        self.reloads = 0

    async def run(self) -> None:
        await poll(self.catch_up, self.poll_s, log, "following the lists' changes")

    async def catch_up(self) -> bool:
        """Apply the logged changes after the index's position; whether there may be more."""
        since = self.watchlists.position
        wl = self.store.watchlists
        found, stored_version = await asyncio.to_thread(
            self.store.read, lambda tx: (wl.changes_after(tx, since, PAGE), wl.feed_version(tx))
        )
        version = self.watchlists.index.feed_version
        if found == []:
            if stored_version <= version:
                return False
            # The feed moved on with nothing logged: a hub of a release before the log (migration 12)
            # changed the lists, during a rolling upgrade. Checked again in the writer's job, where this
            # hub's own changes move the index: only an index still behind the store is loaded anew.
            await self.store.run(lambda tx: self._reload_if_behind(tx, stored_version))
        else:
            await self.store.run(lambda tx: self._apply(tx, found))
        if self.on_version is not None and self.watchlists.index.feed_version != version:
            self.on_version(self.watchlists.index.feed_version)
        return found is None or len(found) >= PAGE

    def _reload_if_behind(self, tx: Tx, stored_version: int) -> None:
        if self.watchlists.index.feed_version >= stored_version:
            return
        self.watchlists.load(self.store.watchlists, tx)
        self.reloads += 1
        log.info(
            "watchlist index loaded anew at feed version %d: the lists changed without a logged change "
            "(a hub of an older release, during a rolling upgrade)",
            self.watchlists.index.feed_version,
        )

    def _apply(self, tx: Tx, found: list[tuple[int, LoggedChange]] | None) -> None:
        """In the writer's job: the changes the index does not hold yet, in order."""
        todo = [(pos, c) for pos, c in found or [] if pos > self.watchlists.position]
        if found is None or any(c.changes is None for _, c in todo):
            self.watchlists.load(self.store.watchlists, tx)
            self.reloads += 1
            log.info("watchlist index loaded anew at list change %d", self.watchlists.position)
            return
        for pos, change in todo:
            for op in index_ops(change, self.watchlists):
                op()
            self.watchlists.position = pos
            self.applied += 1
