"""The alerts other hubs raise, to this hub's consoles.

Hubs sharing one PostgreSQL store each raise the alerts of the batches they ingest and dispatch them to
their own consoles at once (``central/alerts/dispatch.py``). A console connected to another hub learns
of them here: every ``POLL_S`` the relay reads the alerts after the last position it has seen
(``AlertStore.alerts_after``: positions are taken under a lock held to the commit, so paging by
position never skips one that commits late) and hands each to the dispatcher, which gives the consoles
an alert they have not had and, for one they had (raised here), only its position. The position is the
console's place in the one sequence every hub shares: after a reconnect, to this hub or another, the
console asks for the alerts after it (``GET /api/v1/ws?after=``).

Alone on SQLite the relay finds only this hub's own alerts, and gives their positions. Why the store is
polled rather than woken by ``LISTEN``/``NOTIFY``: see docs/architecture.md, "Several hubs on one store".
"""

from __future__ import annotations

import asyncio
import logging

from central.alerts.dispatch import AlertDispatcher
from central.record.stores import HubStores
from runtime.background import poll

log = logging.getLogger(__name__)

#: How often the store is asked for alerts after the last position: an alert raised by another hub
#: reaches this hub's consoles this much later at most (plus the read).
POLL_S = 0.25
#: Alerts read at once (a hub that was cut off catches up page by page).
PAGE = 500


class AlertRelay:
    """Gives this hub's consoles the alerts of every hub on the store, in position order."""

    def __init__(self, store: HubStores, dispatcher: AlertDispatcher, poll_s: float = POLL_S) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.poll_s = poll_s
        #: the newest alert position handed to the dispatcher (the consoles had everything up to it)
        self.position = 0
        self.relayed = 0

    async def start(self) -> None:
        """Begin at the store's newest alert: a console that connects gets the recent ones from the store."""
        self.position = await asyncio.to_thread(self.store.alert_position)

    async def run(self) -> None:
        await poll(lambda: self.catch_up(PAGE), self.poll_s, log, "reading the alerts of other hubs")

    async def catch_up(self, page: int = PAGE) -> bool:
        """Hand the alerts after ``position`` to the dispatcher; whether there may be more."""
        found = await asyncio.to_thread(self.store.alerts_after, self.position, page)
        for position, alert in found:
            if not self.dispatcher.shown(alert.alert_id):
                self.relayed += 1
            self.dispatcher.relay(alert, position)
            self.position = position
        return len(found) >= page
