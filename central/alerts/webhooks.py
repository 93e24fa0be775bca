"""Webhooks: alerts POSTed to other systems (an SMS gateway, a case system), at least once, each
carrying its alert id as the idempotency key, so a receiver that honours it acts exactly once.

Which alerts a webhook takes is configured per hook (lists, actions, lowest priority). An alert
is delivered when the receiver answers 2xx; that is recorded in the hub's store
(``webhook_deliveries``). A network error, a timeout, 408, 429 or 5xx is retried with backoff until
``give_up_after_s``; another 4xx means the receiver will never take it, so it is recorded as failed
at once (and logged). After a restart every matching alert of the last ``resume_window_s`` with no
record for the hook is sent again: a hub killed between its commit and the POST, or between the
POST and the record, loses nothing, and a receiver sees the same key twice at worst.

A hook with ``escalations = true`` also gets every escalation (central/alerts/escalation.py) of an alert on its
lists, as ``{"type": "escalation", "escalation": {…}}`` with the key ``esc:<alert id>``, recorded and
resumed the same way (from the audit trail, where each escalation is recorded once).

Deliveries are the ``webhooks`` duty (central/record/duties.py): one hub of those sharing a database
delivers for all of them. While it holds the duty it takes what its own dispatcher offers at once, and
every ``central.record.duties.POLL_S`` looks in the store for what it lacks of the last ``POLL_WINDOW_S``
(alerts and escalations other hubs committed); a hub that takes the duty over first resumes the whole
``resume_window_s``, as after a restart. A hub without the duty drops what is offered: the holder finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import aiohttp
import msgspec

from central.record.stores import HubStores
from central.settings import WebhookSettings
from protocols.messages import Alert

log = logging.getLogger(__name__)

USER_AGENT = "cordon-hub/0.1"
#: With other hubs on the store, how far back the duty's holder looks for what they committed (what is
#: older was found by an earlier look, or by the resume when it took the duty).
POLL_WINDOW_S = 600.0
_RETRY_STATUSES = {408, 425, 429}
_decoder = msgspec.json.Decoder(type=Alert)


def wants(hook: WebhookSettings, alert: Alert) -> bool:
    """Does this hook take this alert (by list, action and priority)?"""
    return (
        (not hook.lists or alert.hit.list_id in hook.lists)
        and alert.hit.action in hook.actions
        and alert.hit.priority >= hook.min_priority
    )


def wants_escalation(hook: WebhookSettings, frame: dict[str, object]) -> bool:
    return hook.escalations and (not hook.lists or frame.get("list_id") in hook.lists)


@dataclass(frozen=True)
class Delivery:
    key: str
    """The idempotency key: the alert id, or ``esc:<alert id>`` for its escalation."""
    alert_id: str
    body: bytes

    @classmethod
    def of_alert(cls, alert: Alert) -> Delivery:
        return cls(alert.alert_id, alert.alert_id, msgspec.json.encode({"type": "alert", "alert": alert}))

    @classmethod
    def of_escalation(cls, frame: dict[str, object]) -> Delivery:
        aid = str(frame["alert_id"])
        return cls(f"esc:{aid}", aid, msgspec.json.encode({"type": "escalation", "escalation": frame}))


@dataclass
class HookState:
    settings: WebhookSettings
    queue: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)
    delivered: int = 0
    failed: int = 0
    retries: int = 0
    last_error: str | None = None
    last_delivered_at: float | None = None


class WebhookSender:
    """One delivery task per hook; ``offer`` is called by the alert dispatcher for every alert."""

    def __init__(self, store: HubStores, hooks: list[WebhookSettings], *, active: bool = True) -> None:
        """``active``: deliver what is offered; a sender built for the duty starts inactive (``run_duty``)."""
        self.store = store
        self.hooks = {h.name: HookState(h) for h in hooks}
        self._queued: set[tuple[str, str]] = set()
        self.active = active

    def offer(self, alert: Alert) -> None:
        if not self.active:
            return
        for name, state in self.hooks.items():
            key = (name, alert.alert_id)
            if key not in self._queued and wants(state.settings, alert):
                self._queued.add(key)
                state.queue.put_nowait(Delivery.of_alert(alert))

    def offer_escalation(self, frame: dict[str, object]) -> None:
        """An escalation (the shift commander must hear of it): to every hook that takes escalations."""
        if not self.active:
            return
        delivery = Delivery.of_escalation(frame)
        for name, state in self.hooks.items():
            key = (name, delivery.key)
            if key not in self._queued and wants_escalation(state.settings, frame):
                self._queued.add(key)
                state.queue.put_nowait(delivery)

    async def resume(self, window_s: float | None = None) -> int:
        """Queue every recent matching alert a hook has no record of (after a crash or an outage): of
        the hook's ``resume_window_s``, or of the last ``window_s``."""
        queued = 0
        for name, state in self.hooks.items():
            since = time.time() - (state.settings.resume_window_s if window_s is None else window_s)
            bodies = await asyncio.to_thread(
                self.store.read,
                lambda tx, name=name, since=since: self.store.webhooks.undelivered_alerts(tx, name, since),
            )
            for body in bodies:
                alert = _decoder.decode(body)
                key = (name, alert.alert_id)
                if key not in self._queued and wants(state.settings, alert):
                    self._queued.add(key)
                    state.queue.put_nowait(Delivery.of_alert(alert))
                    queued += 1
            if state.settings.escalations:
                for frame in await asyncio.to_thread(
                    self.store.read,
                    lambda tx, name=name, since=since: self.store.webhooks.unsent_escalations(
                        tx, name, since
                    ),
                ):
                    delivery = Delivery.of_escalation(frame)
                    if (name, delivery.key) not in self._queued and wants_escalation(state.settings, frame):
                        self._queued.add((name, delivery.key))
                        state.queue.put_nowait(delivery)
                        queued += 1
        if queued and window_s is None:
            log.info("webhooks: %d alert(s) from before the restart to deliver", queued)
        return queued

    async def run_duty(self, poll_s: float | None) -> None:
        """The ``webhooks`` duty: resume, then deliver (and, with other hubs on the store, look for their
        alerts every ``poll_s``) until cancelled; then drop what was queued (the next holder resumes it)."""
        self.active = True
        try:
            await self.resume()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.run(), name="webhooks-deliver")
                if poll_s is not None:
                    tasks.create_task(self._poll(poll_s), name="webhooks-poll")
            await asyncio.Event().wait()  # no hook to deliver to: the duty is held all the same
        finally:
            self.active = False
            self._queued.clear()
            for state in self.hooks.values():
                state.queue = asyncio.Queue()

    async def _poll(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.resume(POLL_WINDOW_S)
            except Exception:
                log.exception("webhooks: could not look for undelivered alerts; trying again")

    async def run(self) -> None:
        async with (
            aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session,
            asyncio.TaskGroup() as tasks,
        ):
            for state in self.hooks.values():
                tasks.create_task(
                    self._deliver_forever(session, state), name=f"webhook-{state.settings.name}"
                )

    async def _deliver_forever(self, session: aiohttp.ClientSession, state: HookState) -> None:
        while True:
            delivery = await state.queue.get()
            outcome, detail = await self._deliver(session, state, delivery)
            with contextlib.suppress(Exception):
                await self._record(state.settings.name, delivery.key, outcome, detail)
            self._queued.discard((state.settings.name, delivery.key))

    async def _deliver(
        self, session: aiohttp.ClientSession, state: HookState, delivery: Delivery
    ) -> tuple[str, str]:
        hook = state.settings
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": delivery.key,
            "X-Cordon-Alert-Id": delivery.alert_id,
        }
        if hook.token:
            headers["Authorization"] = f"Bearer {hook.token}"
        body = delivery.body
        started = time.monotonic()
        delay = hook.retry_min_s
        while True:
            try:
                async with session.post(
                    hook.url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=hook.timeout_s)
                ) as response:
                    if 200 <= response.status < 300:
                        state.delivered += 1
                        state.last_delivered_at = time.time()
                        return "delivered", str(response.status)
                    error = f"HTTP {response.status}"
                    if response.status < 500 and response.status not in _RETRY_STATUSES:
                        state.failed += 1
                        state.last_error = error
                        log.error("webhook %s refused %s (%s): not retrying", hook.name, delivery.key, error)
                        return "refused", error
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
            state.last_error = error
            if time.monotonic() - started + delay > hook.give_up_after_s:
                state.failed += 1
                log.error(
                    "webhook %s: giving up on %s after %.0f s: %s",
                    hook.name,
                    delivery.key,
                    time.monotonic() - started,
                    error,
                )
                return "gave_up", error
            state.retries += 1
            log.warning(
                "webhook %s: %s not delivered (%s); retrying in %.1f s", hook.name, delivery.key, error, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, hook.retry_max_s)

    async def _record(self, hook: str, alert_id: str, outcome: str, detail: str) -> None:
        now = time.time()

        await self.store.run(
            lambda tx: self.store.webhooks.record_delivery(tx, hook, alert_id, outcome, detail, now)
        )

    def status(self) -> list[dict[str, object]]:
        return [
            {
                "name": name,
                "queued": s.queue.qsize(),
                "delivered": s.delivered,
                "failed": s.failed,
                "retries": s.retries,
                "last_error": s.last_error,
                "last_delivered_at": s.last_delivered_at,
            }
            for name, s in self.hooks.items()
        ]
