"""The alerts other hubs raise, to this hub's consoles.

Hubs sharing one PostgreSQL store each raise the alerts of the batches they ingest and dispatch them to
their own consoles at once (``central/alerts/dispatch.py``). A console connected to another hub learns
of them here: every ``POLL_S`` the relay reads the alerts after the last position it has seen
(``AlertStore.alerts_after``: positions are taken under a lock held to the commit, so paging by
position never skips one that commits late) and hands each to the dispatcher, which gives the consoles
an alert they have not had and, for one they had (raised here), only its position. The position is the
console's place in the one sequence every hub shares: after a reconnect, to this hub or another, the
console asks for the alerts after it (``GET /api/v1/ws?after=``).

**The news of alerts** (a hit folded into an open alert, an officer's outcome, a tablet's alarm receipt,
an escalation) changes an alert already raised, and takes no position. The relay reads it by time: the
alerts with news stored in the last ``LOOKBACK_S`` before the newest it has seen
(``AlertStore.touched_since``), and for each one whose news is newer than it had, the alert as it is
now (``alert_folded`` when a hit folded into it), its outcomes, receipts and escalation, which the
dispatcher gives its consoles unless they had them (``give``: this hub's own news included). The times
are those of the hubs that stored the news, so the hubs' clocks must agree to well within
``LOOKBACK_S`` (they keep to NTP: docs/deploy.md, "Time"), and news committed more than ``LOOKBACK_S``
after it was received is missed live (a console still gets it on its next connect).

**Quick-test results** (``kit`` frames) are read the same way, by the time the test was sampled: the
results sampled in the last ``LOOKBACK_S`` (``KitResultStore.kit_results``), each given unless the
consoles had it (a result the tablet sent more than ``LOOKBACK_S`` after sampling it, having been
offline, is not relayed live; the kit results' route has it).

Alone on SQLite the relay finds only this hub's own alerts and news, and gives their positions. Why the
store is polled rather than woken by ``LISTEN``/``NOTIFY``: see docs/architecture.md, "Several hubs on
one store".
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec

from central.alerts.dispatch import AlertDispatcher
from central.record.stores import HubStores
from protocols.kits import KitResult, overall_call, raises_alert
from runtime.background import poll

log = logging.getLogger(__name__)

#: How often the store is asked for alerts after the last position: an alert raised by another hub
#: reaches this hub's consoles this much later at most (plus the read).
POLL_S = 0.25
#: Alerts read at once (a hub that was cut off catches up page by page).
PAGE = 500
#: How far back news is read again before the newest seen: longer than a batch's transaction takes from
#: receipt to commit, and than the hubs' clocks may differ.
LOOKBACK_S = 30.0


class AlertRelay:
    """Gives this hub's consoles the alerts of every hub on the store, in position order."""

    def __init__(
        self, store: HubStores, dispatcher: AlertDispatcher, escalate_after_s: float, poll_s: float = POLL_S
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.escalate_after_s = escalate_after_s
        self.poll_s = poll_s
        #: the newest alert position handed to the dispatcher (the consoles had everything up to it)
        self.position = 0
        self.relayed = 0
        #: the time of the newest news read, and of each alert's news the dispatcher was handed
        self.news_at = time.time()
        self._news: dict[str, float] = {}
        #: set when a hub on the store announces news (``HubStores.listen_news``): read now, not at the poll
        self.wake = asyncio.Event()

    async def start(self) -> None:
        """Begin at the store's newest alert: a console that connects gets the recent ones from the store."""
        self.position = await asyncio.to_thread(self.store.alert_position)
        self.news_at = time.time()

    async def run(self) -> None:
        async def step() -> bool:
            more = await self.catch_up(PAGE)
            await self.news()
            await self.kits()
            return more

        loop = asyncio.get_running_loop()
        self.store.listen_news(lambda: loop.call_soon_threadsafe(self.wake.set))
        await poll(step, self.poll_s, log, "reading the alerts of other hubs", wake=self.wake)

    async def catch_up(self, page: int = PAGE) -> bool:
        """Hand the alerts after ``position`` to the dispatcher; whether there may be more."""
        found = await asyncio.to_thread(self.store.alerts_after, self.position, page)
        for position, alert in found:
            if not self.dispatcher.shown(alert.alert_id):
                self.relayed += 1
            self.dispatcher.relay(alert, position)
            self.position = position
        return len(found) >= page

    async def news(self) -> int:
        """Hand the dispatcher the news of the alerts that had some since it last read; how many alerts."""
        since = self.news_at - LOOKBACK_S
        touched = await asyncio.to_thread(self.store.touched_since, since, PAGE)
        fresh = [(at, alert) for at, alert in touched if self._news.get(alert.alert_id) != at]
        if fresh:
            ids = [alert.alert_id for _, alert in fresh]
            store, after_s = self.store, self.escalate_after_s
            outcomes = await asyncio.to_thread(store.outcomes, ids)
            receipts = await asyncio.to_thread(store.receipts, ids)
            escalated = await asyncio.to_thread(
                store.read, lambda tx: store.escalated_among(tx, ids, after_s)
            )
            for at, alert in fresh:
                if alert.folded:
                    self.dispatcher.give({"type": "alert_folded", "alert": alert}, own=False)
                for outcome in outcomes.get(alert.alert_id, []):
                    self.dispatcher.give({"type": "outcome", "outcome": outcome}, own=False)
                for receipt in receipts.get(alert.alert_id, []):
                    # The alert's list decides who may see the receipt, as for one this hub stored.
                    receipt = {**receipt, "list_id": alert.hit.list_id, "action": str(alert.hit.action)}
                    self.dispatcher.give({"type": "receipt", "receipt": receipt}, own=False)
                for frame in escalated:
                    if frame["alert_id"] == alert.alert_id:
                        self.dispatcher.give({"type": "escalation", "escalation": frame}, own=False)
                self._news[alert.alert_id] = at
        if touched:
            self.news_at = max(self.news_at, touched[-1][0])
        for alert_id, at in list(self._news.items()):
            if at < since:
                del self._news[alert_id]
        return len(fresh)

    async def kits(self) -> int:
        """Give the dispatcher the quick-test results sampled lately (every hub's); how many were read."""
        since = time.time() - LOOKBACK_S
        found = await asyncio.to_thread(self.store.kit_results, None, since, None, None, PAGE)
        for record in reversed(found):  # oldest first
            try:
                result = msgspec.convert(
                    {f: record[f] for f in KitResult.__struct_fields__ if f in record},
                    KitResult,
                    strict=False,
                )
            except msgspec.ValidationError:
                continue
            frame = kit_frame(record["checkpoint"], result, list(record.get("person_hits") or []))
            self.dispatcher.give({"type": "kit", "kit": frame}, own=False)
        return len(found)


def kit_frame(checkpoint: str, r: KitResult, person_hits: list[Any]) -> dict[str, object]:
    """A quick-test result as the consoles show it; a positive or invalid one, or a subject on a person
    list, is flagged as an alert (the console raises it)."""
    return {
        "result_id": r.result_id,
        "checkpoint": checkpoint,
        "result": overall_call(r.panels),
        "kit_model": r.kit_model,
        "id_last4": r.subject.id_last4,
        "sampled_at": r.sampled_at,
        "officers": r.officers,
        "kit_expired": r.kit_expired,
        "outside_read_window": r.outside_read_window,
        "person_hits": person_hits,
        "alert": raises_alert(r) or bool(person_hits),
    }
