"""Alert dispatch: console, checkpoints and webhooks, idempotent, resumed after a restart.

Alerts are committed by ingest before they get here, already routed (central/ingest/routing.py). Dispatch sends
each one to the console's live feed, unless its list is covert or restricted to every checkpoint in its
``routed_to`` over MQTT (each on its own alerts topic), and to every webhook that takes it
(central/alerts/webhooks.py, which keeps its own delivery record). An alert is marked dispatched once the
broker has taken every checkpoint's copy. At start-up every alert not marked is sent again;
receivers drop an alert id they have already shown (the console page, the edge's alert log,
webhook receivers by the idempotency key), so a resend is never shown or acted on twice.

The consoles connected to this hub also get the alerts other hubs on the same store raised, and the
news of alerts (folds, outcomes, receipts, escalations) other hubs stored (``central/alerts/relay.py``):
each alert once, whichever of the two paths brings it first (``shown``), and each piece of news once
(``give``: this hub's own news and the relay's copy of it are the same frame).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from central.alerts.webhooks import WebhookSender
from central.ingest.routing import Router
from central.people import visibility
from central.record.stores import HubStores
from central.record.tx import StoreUnavailable
from protocols import topics
from protocols.messages import Alert, encode
from runtime.fanout import Fanout

log = logging.getLogger(__name__)

MARK_BATCH_WAIT_S = 0.05
#: How soon marking alerts dispatched is tried again when the store was away.
MARK_RETRY_S = 1.0
#: The ids of the alerts this hub's consoles were given that are remembered (the newest), so that the
#: relay's copy of an alert dispatched here, or the other way round, is not given again.
SHOWN_KEEP = 10_000
#: The news (folds, outcomes, receipts, escalations) this hub's consoles were given that is remembered.
NEWS_KEEP = 10_000


class AlertDispatcher:
    def __init__(
        self,
        store: HubStores,
        publish: Callable[..., None],
        console: Fanout,
        webhooks: WebhookSender | None = None,
        restricted: visibility.Restricted = visibility.never_restricted,
    ) -> None:
        self.store = store
        self.restricted = restricted
        self.router = Router(restricted=restricted)
        self._copies: dict[str, int] = {}
        self.webhooks = webhooks
        self._publish = publish
        self.console = console
        self._loop: asyncio.AbstractEventLoop | None = None
        self._delivered: asyncio.Queue[str] = asyncio.Queue()
        self._shown: OrderedDict[str, None] = OrderedDict()
        self._news: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.dispatched = 0
        #: alerts this hub took over from hubs that were gone (``take_over``)
        self.taken_over = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def submit_threadsafe(self, alerts: list[Alert]) -> None:
        """Called from the writer thread after the commit."""
        assert self._loop is not None, "dispatcher not bound to a loop"
        self._loop.call_soon_threadsafe(self.dispatch, alerts)

    def pictures_threadsafe(self, alerts: list[Alert]) -> None:
        """Alerts already dispatched whose edge hit brought their picture later: the consoles get them
        again (a console replaces an alert by its id); tablets and webhooks are not told twice."""
        assert self._loop is not None, "dispatcher not bound to a loop"
        self._loop.call_soon_threadsafe(
            lambda: [self.give({"type": "alert", "alert": alert}) for alert in alerts]
        )

    def give(self, frame: dict[str, Any], own: bool = True) -> None:
        """News of an alert to the consoles (an alert as it now is, a fold, an outcome, an alarm receipt, an
        escalation; and a quick-test result), unless they were given exactly this already: by this hub's own ingest, or by the
        relay from the store, whichever came first (on the event loop). News of this hub's ``own`` (not
        the relay's) is announced to the other hubs on the store, whose relays then read it at once."""
        key, value = _news_of(frame)
        if key in self._news and self._news[key] == value:
            return
        self._news[key] = value
        self._news.move_to_end(key)
        if len(self._news) > NEWS_KEEP:
            self._news.popitem(last=False)
        self.console.publish(frame)
        if own:
            self.store.announce_news()

    def shown(self, alert_id: str) -> bool:
        """Whether this hub's consoles were given this alert (among the last ``SHOWN_KEEP``)."""
        return alert_id in self._shown

    def _show(self, alert: Alert, position: int | None = None) -> None:
        """The consoles get the alert unless they had it already (on the event loop)."""
        if alert.alert_id in self._shown:
            if position is not None:  # the consoles' catch-up goes on from here after a reconnect
                self.console.publish({"type": "position", "position": position})
            return
        self._shown[alert.alert_id] = None
        if len(self._shown) > SHOWN_KEEP:
            self._shown.popitem(last=False)
        self._news[("alert", alert.alert_id)] = alert  # as given: a later fold is news, this is not
        frame: dict[str, object] = {"type": "alert", "alert": alert}
        if position is not None:
            frame["position"] = position
        self.console.publish(frame)

    def relay(self, alert: Alert, position: int) -> None:
        """An alert at ``position`` (raised by this hub or another on the same store): the consoles get it
        once, and its position (on the event loop)."""
        self._show(alert, position)

    def dispatch(self, alerts: list[Alert], webhooks: bool = True) -> None:
        """To the consoles, the checkpoints and (``webhooks``) the webhook sender."""
        loop = self._loop
        assert loop is not None
        for alert in alerts:
            self._show(alert)
            if webhooks and self.webhooks is not None:
                self.webhooks.offer(alert)
            recipients = self.router.recipients(alert)
            if not recipients:
                # Covert and restricted hits never leave the hub: no tablet may sound for them.
                self._delivered.put_nowait(alert.alert_id)
                continue
            aid = alert.alert_id
            self._copies[aid] = self._copies.get(aid, 0) + len(recipients)
            payload = encode(alert)
            for checkpoint in recipients:
                self._publish(
                    topics.alerts(checkpoint),
                    payload,
                    qos=1,
                    on_delivered=lambda aid=aid: loop.call_soon_threadsafe(self._copy_delivered, aid),
                )
        self.dispatched += len(alerts)
        if alerts:  # committed: the other hubs' relays read them now (their consoles get them from there)
            self.store.announce_news()

    def dispatch_folded(self, alerts: list[Alert]) -> None:
        """Open alerts that took a repeated hit: the consoles update their row (count, last seen, where)."""
        for alert in alerts:
            self.give({"type": "alert_folded", "alert": alert})

    def submit_folded_threadsafe(self, alerts: list[Alert]) -> None:
        assert self._loop is not None, "dispatcher not bound to a loop"
        self._loop.call_soon_threadsafe(self.dispatch_folded, alerts)

    def _copy_delivered(self, aid: str) -> None:
        left = self._copies.get(aid, 1) - 1
        if left > 0:
            self._copies[aid] = left
            return
        self._copies.pop(aid, None)
        self._delivered.put_nowait(aid)

    async def resume(self) -> int:
        """Send again every committed alert that was not marked dispatched (after a crash)."""
        pending = await asyncio.to_thread(self.store.undispatched_alerts)
        if pending:
            log.info("dispatching %d alert(s) left over from before the restart", len(pending))
            self.dispatch(pending)
        return len(pending)

    async def take_over(self, after_s: float, fence: Callable[[Any], None], page: int = 500) -> int:
        """Dispatch the alerts hubs that are gone left undispatched ``after_s`` after raising them (one
        writer job, fenced on the redispatch duty: they become this hub's to dispatch at its commit); how
        many. Receivers drop an alert id they had, so one the gone hub did send is not shown twice."""
        store = self.store

        def job(tx: Any) -> list[Alert]:
            fence(tx)
            return store.claim_orphans(tx, time.time() - after_s, page)

        taken = await store.run(job)
        if taken:
            log.warning(
                "dispatching %d alert(s) a hub that is gone left undispatched: %s",
                len(taken),
                ", ".join(a.alert_id for a in taken[:5]),
            )
            # Not offered to the webhooks: their duty finds in the store every alert they lack.
            self.dispatch(taken, webhooks=False)
            self.taken_over += len(taken)
        return len(taken)

    async def run_marker(self) -> None:
        """Mark delivered alerts in the store, a small batch at a time."""
        while True:
            ids = [await self._delivered.get()]
            await asyncio.sleep(MARK_BATCH_WAIT_S)
            while not self._delivered.empty():
                ids.append(self._delivered.get_nowait())
            try:
                await self.store.mark_dispatched(ids)
            except StoreUnavailable as exc:
                # The store is away for now: marked once it is back (only a restart meanwhile sends them again).
                log.warning("could not mark %d alert(s) dispatched yet, trying again: %s", len(ids), exc)
                for aid in ids:
                    self._delivered.put_nowait(aid)
                await asyncio.sleep(MARK_RETRY_S)
            except Exception:
                log.exception(
                    "could not mark %d alert(s) dispatched; they will be resent after a restart", len(ids)
                )


def _news_of(frame: dict[str, Any]) -> tuple[tuple[Any, ...], Any]:
    """What a frame of news is about, and what it says of it (the same news from two paths is equal)."""
    kind = frame["type"]
    if kind in ("alert", "alert_folded"):
        return ("alert", frame["alert"].alert_id), frame["alert"]
    if kind == "outcome":
        o = frame["outcome"]
        return (
            "outcome",
            o["alert_id"],
            o["checkpoint"],
            o["acknowledged_at"],
            o["officer"],
            o["outcome"],
        ), None
    if kind == "receipt":
        r = frame["receipt"]
        said = (
            r.get("shown_at"),
            r.get("shown_by"),
            r.get("acknowledged_at"),
            r.get("outcome"),
            r.get("officer"),
        )
        return ("receipt", r["alert_id"], r["checkpoint"]), said
    if kind == "escalation":
        return ("escalation", frame["escalation"]["alert_id"]), frame["escalation"]["escalated_at"]
    if kind == "kit":
        return ("kit", frame["kit"]["checkpoint"], frame["kit"]["result_id"]), None
    raise ValueError(f"not a frame of news: {kind}")
