"""What an edge does with a read: number it, commit it, hand it on. No HTTP, no MQTT here."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from protocols import reads, times
from protocols.alerting import alert_for, rule_alert
from protocols.errors import CordonError
from protocols.matching import Hit
from protocols.messages import (
    THUMBNAIL_MAX_BYTES,
    Alert,
    AlertOutcome,
    AlertReceipt,
    AuditEvent,
    CameraRead,
    EdgeHit,
    Event,
    Passage,
    PlateRead,
)
from runtime.fanout import Fanout

from .alertlog import AlertLog
from .mirror import Mirror
from .outbox import PRIORITY_HIT, PRIORITY_PASSAGE, PRIORITY_READ, OutboxStore, Pending
from .passages import PassageBuilder

log = logging.getLogger(__name__)


#: Receipts changed this recently are sent again when the hub comes back online (EdgeService.replay_receipts).
RECEIPT_REPLAY_S = 3600.0

#: Passing vehicles a tablet gets when it connects (its list shows as many).
RECENT_READS = 40

#: The synthetic list id of the no-plate rule's alerts.
NO_PLATE_RULE = "rule:no-plate"


class ReadRejected(CordonError, ValueError):
    """A camera read that cannot be recorded as sent (for example an unparseable time)."""


@dataclass(slots=True)
class CameraHealth:
    reads: int = 0
    errors: int = 0
    refused: int = 0
    last_read_at: float | None = None
    last_seen_at: float | None = None
    """Last sign of life: a read, or a heartbeat the camera sends between reads."""
    last_error: str | None = None
    watched_since: float | None = None
    stale_after_s: float | None = None
    """Set for configured cameras: silent this long means stale."""
    stale_warned: bool = False
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=600))

    def reads_per_minute(self, now: float) -> int:
        return sum(1 for t in self.recent if now - t <= 60)

    def stale(self, now: float) -> bool:
        """Silent (no read, no heartbeat) for longer than ``stale_after_s`` since it was last seen or
        since the edge started watching it."""
        if not self.stale_after_s:
            return False
        since = max(t for t in (self.last_seen_at, self.watched_since, 0.0) if t is not None)
        return now - since > self.stale_after_s

    def snapshot(self, now: float) -> dict[str, object]:
        return {
            "reads": self.reads,
            "errors": self.errors,
            "refused": self.refused,
            "last_read_at": self.last_read_at,
            "last_seen_at": self.last_seen_at,
            "reads_per_minute": self.reads_per_minute(now),
            "last_error": self.last_error,
            "stale": self.stale(now),
        }


def parse_time(value: float | str | None, now: float) -> float:
    """Camera time as unix seconds: a number, ISO 8601 (naive means this machine's zone: protocols/times.py),
    or now."""
    if value is None:
        return now
    try:
        seconds = times.parse_time(value, naive="local")
    except times.TimeError as exc:
        raise ReadRejected(f"captured_at {exc}") from None
    if not 0 < seconds < 1e11:
        raise ReadRejected(f"captured_at {value} is not unix seconds")
    return seconds


def plate_read(read: CameraRead, camera_id: str, now: float, lane: int | None = None) -> PlateRead:
    """Turn a camera's read into the edge's record (protocols/reads.py); raises ReadRejected for its time."""
    return reads.plate_read(read, camera_id, parse_time(read.captured_at, now), lane)


class EdgeService:
    """Commits reads and passages to the outbox and tells the uplink and the tablets."""

    def __init__(
        self,
        checkpoint: str,
        outbox: OutboxStore,
        passages: PassageBuilder,
        enqueue: Callable[[list[Pending]], None],
        alert_log: AlertLog,
        clock: Callable[[], float] = time.time,
        mirror: Mirror | None = None,
        no_plate_alert: bool = False,
        no_plate_priority: int = 20,
    ) -> None:
        self.checkpoint = checkpoint
        self.mirror = mirror
        self.outbox = outbox
        self.passages = passages
        self._enqueue = enqueue
        self._clock = clock
        self.cameras: dict[str, CameraHealth] = {}
        self.live = Fanout()
        self.alert_log = alert_log
        self.reads_total = 0
        self.passages_total = 0
        self.local_hits = 0
        self._lock = asyncio.Lock()
        self.no_plate_alert = no_plate_alert
        self.no_plate_priority = no_plate_priority
        self.recent_reads: deque[dict[str, object]] = deque(maxlen=RECENT_READS)
        """The latest reads as the tablets' live feed shows them, oldest first (a tablet that connects gets them)."""
        self.publish_receipt: Callable[[AlertReceipt], Awaitable[bool]] | None = None
        """Hands a receipt to the broker (the uplink's); True once the broker has it."""

    def now(self) -> float:
        return self._clock()

    def camera(self, camera_id: str) -> CameraHealth:
        return self.cameras.setdefault(camera_id, CameraHealth())

    async def record(
        self,
        read: CameraRead,
        camera_id: str,
        lane: int | None = None,
        *,
        thumbnail: bytes | None = None,
        has_evidence: bool = False,
    ) -> PlateRead:
        """Record one camera read durably; return it numbered. Raises ReadRejected. ``thumbnail`` (a small
        JPEG of the read's picture) travels with its hits and alerts; the read itself only says
        ``has_evidence``."""
        now = self._clock()
        health = self.camera(camera_id)
        try:
            event = plate_read(read, camera_id, now, lane)
            if has_evidence:
                event = msgspec.structs.replace(event, has_evidence=True)
        except ReadRejected:
            health.errors += 1
            raise
        # Match before the commit: a read that hits must be committed at hit priority in the first place.
        # Committed as a plain read and promoted later, it could be dropped at the outbox quota in between
        # (another camera's commit makes room), and the hub would get the hit without its read.
        hits = self._match(event)
        (numbered,) = await self._commit([event], [PRIORITY_HIT if hits else PRIORITY_READ])
        assert isinstance(numbered, PlateRead)
        health.reads += 1
        health.last_read_at = health.last_seen_at = now
        health.recent.append(now)
        self.reads_total += 1
        frame = _read_frame(numbered)
        self.recent_reads.append(frame)
        self.live.publish({"type": "read", "read": frame})
        if hits:
            thumb = base64.b64encode(thumbnail).decode("ascii") if thumbnail else None
            if thumb is not None and len(thumbnail) > THUMBNAIL_MAX_BYTES:
                log.warning(
                    "thumbnail of read %d (%d bytes) is over the cap; the hit goes without",
                    numbered.seq,
                    len(thumbnail),
                )
                thumb = None
            await self._alert_locally(numbered, hits, now, thumb)
        if numbered.no_plate and self.no_plate_alert:
            await self.on_alert(
                rule_alert(
                    self.checkpoint,
                    self.outbox.epoch,
                    numbered,
                    rule_id=NO_PLATE_RULE,
                    name="无牌车 no readable plate",
                    action="notify",
                    priority=self.no_plate_priority,
                    raised_at=now,
                    explanation=f"vehicle without a readable plate (camera sent {numbered.plate_raw[:40]!r})",
                )
            )
        closed = self.passages.observe(numbered, now)
        if closed:
            await self._commit_passages(closed)
        return numbered

    def _match(self, read: PlateRead) -> list[Hit]:
        """The read's hits against the local watchlist mirror (none without a mirror or a plate)."""
        if self.mirror is None or read.no_plate:
            return []
        return self.mirror.match(
            read.plate, now=read.captured_at, colour=read.colour, vehicle_type=read.vehicle_type
        )

    async def _alert_locally(
        self, read: PlateRead, hits: list[Hit], now: float, thumbnail: str | None = None
    ) -> None:
        """Alert this checkpoint's tablets from the local mirror, uplink or not; tell the hub (a hit event)."""
        assert self.mirror is not None
        events: list[Event] = []
        alerts: list[Alert] = []
        for hit in hits:
            wl = self.mirror.lists.get(hit.list_id)
            entry = await self.mirror.entry(hit.entry_id)
            alert = alert_for(
                self.checkpoint,
                self.outbox.epoch,
                read,
                hit,
                list_name=wl.name if wl else hit.list_id,
                reason=entry.reason if entry else "",
                raised_at=now,
            )
            if thumbnail is not None:
                alert = msgspec.structs.replace(alert, thumbnail=thumbnail)
            alerts.append(alert)
            events.append(
                EdgeHit(
                    seq=1,
                    read_seq=read.seq,
                    alert_id=alert.alert_id,
                    entry_id=hit.entry_id,
                    list_id=hit.list_id,
                    kind=hit.kind.value,
                    score=hit.score,
                    explanation=hit.explanation[:500],
                    feed_version=hit.feed_version,
                    matcher_version=hit.matcher_version,
                    raised_at=now,
                    thumbnail=thumbnail,
                )
            )
        for alert in alerts:  # the tablets first: they must not wait for a disk write
            await self.on_alert(alert)
        await self._commit(events, [PRIORITY_HIT] * len(events))
        self.local_hits += len(events)

    async def expire_passages(self) -> None:
        closed = self.passages.expire(self._clock())
        if closed:
            await self._commit_passages(closed)

    async def flush_passages(self) -> None:
        closed = self.passages.flush()
        if closed:
            await self._commit_passages(closed)

    async def _commit_passages(self, closed: list[Passage]) -> None:
        await self._commit(closed, [PRIORITY_PASSAGE] * len(closed))
        self.passages_total += len(closed)

    async def _commit(self, events: Sequence[Event], priorities: list[int]) -> list[Event]:
        appended = await self.outbox.append(events, priorities)
        self._enqueue(appended.pending)
        return appended.events

    async def audit(
        self,
        action: str,
        actor: str,
        *,
        role: str = "",
        target: str = "",
        detail: dict[str, object] | None = None,
    ) -> None:
        """Send something the hub's audit trail must hold (an officer's login, a retention run) as an
        event: it is committed here first, so it reaches the hub even after an outage."""
        event = AuditEvent(
            seq=1,
            action=action[:128],
            actor=actor[:128],
            at=self._clock(),
            role=role[:32],
            target=target[:500],
            detail=json.dumps(detail or {}, ensure_ascii=False)[:4000],
        )
        await self._commit([event], [PRIORITY_HIT])

    async def record_outcome(self, alert_id: str, outcome: str, note: str, officer: str) -> dict[str, object]:
        """An officer acknowledged an alert and said what came of it: kept here, sent to the hub
        (at hit priority: it replays first), and shown on every tablet. Raises KeyError for an
        alert this checkpoint has not shown recently. A folded hit's id stands for the alert it was
        folded into (the one the tablets show)."""
        alert = self.alert_log.get(alert_id)
        if alert is None:
            raise KeyError(alert_id)
        alert_id = alert.alert_id
        now = self._clock()
        event = AlertOutcome(
            seq=1,
            alert_id=alert_id,
            outcome=outcome,
            officer=officer[:128],  # type: ignore[arg-type]
            acknowledged_at=now,
            note=note[:500],
            alert_raised_at=alert.raised_at,
        )
        await self._commit([event], [PRIORITY_HIT])
        frame = await self.alert_log.record_outcome(alert_id, outcome, note[:500], officer[:128], now)
        self.live.publish({"type": "outcome", "outcome": frame})
        receipt = await self.alert_log.note_receipt(
            self.checkpoint, alert_id, acknowledged_at=now, outcome=outcome, officer=officer[:128]
        )
        if receipt is not None:
            await self.send_receipt(receipt)
        return frame

    async def alarm_shown(self, alert_id: str, officer: str) -> AlertReceipt:
        """A tablet put this alert's alarm on screen: the first showing is the receipt the hub gets (the
        console shows it). Raises KeyError for an alert this checkpoint has not shown recently."""
        alert = self.alert_log.get(alert_id)
        if alert is None:
            raise KeyError(alert_id)
        receipt = await self.alert_log.note_receipt(
            self.checkpoint, alert.alert_id, shown_at=self._clock(), shown_by=officer[:128]
        )
        if receipt is not None:
            await self.send_receipt(receipt)
        return self.alert_log.receipts[alert.alert_id]

    async def send_receipt(self, receipt: AlertReceipt) -> bool:
        """Hand a receipt to the broker; kept as unsent (and sent on the next connect) when it cannot."""
        if self.publish_receipt is None:
            return False
        try:
            sent = await self.publish_receipt(receipt)
        except Exception as exc:  # the link dropped meanwhile: it is sent again on the next connect
            log.info("receipt of %s not sent yet: %s", receipt.alert_id, exc)
            return False
        if sent:
            await self.alert_log.receipt_sent(receipt)
        return sent

    async def replay_receipts(self) -> int:
        """The hub came (back) online: send again the receipts of the last ``RECEIPT_REPLAY_S``. The broker
        may have taken them while the hub was not subscribed (a broker restarted without its sessions);
        the hub keeps a receipt idempotently, so a second copy costs nothing."""
        since = self._clock() - RECEIPT_REPLAY_S
        sent = 0
        for alert_id, updated in sorted(self.alert_log.receipt_updated.items()):
            receipt = self.alert_log.receipts.get(alert_id)
            if updated >= since and receipt is not None and await self.send_receipt(receipt):
                sent += 1
        return sent

    async def flush_receipts(self) -> int:
        """Send every receipt the broker has not taken yet (the uplink calls it on each connect)."""
        sent = 0
        for alert_id in sorted(self.alert_log.unsent):
            receipt = self.alert_log.receipts.get(alert_id)
            if receipt is not None and await self.send_receipt(receipt):
                sent += 1
        return sent

    @property
    def alerts(self) -> deque[Alert]:
        """The most recent alerts shown here, oldest first."""
        return self.alert_log.recent

    def routed_here(self, alert: Alert) -> bool:
        """Read here, or routed here by the hub (an approach camera's early warning, a vehicle heading this way)."""
        return alert.checkpoint == self.checkpoint or any(
            r.checkpoint == self.checkpoint for r in alert.routed_to
        )

    async def on_alert(self, alert: Alert) -> None:
        """An alert for this checkpoint (raised here or sent by the hub): show it once on every tablet,
        ever: a repeat of an id already shown is dropped, across restarts too. A repeated hit of a vehicle
        whose alarm is still open (protocols/folding.py, as the hub folds it for the console) is folded
        into that alarm: the tablets get the alarm with its count grown, not a second alarm."""
        if not self.routed_here(alert) or alert.alert_id in self.alert_log:
            return
        open_alert = self.alert_log.open_alert_for(alert)
        if open_alert is not None:
            updated = self.alert_log.fold(alert, open_alert)
            log.info(
                "alert %s: %s again, folded into %s (x%d)",
                alert.alert_id,
                alert.plate_read,
                updated.alert_id,
                updated.folded + 1,
            )
            self.live.publish({"type": "alert_folded", "alert": updated, "folded_id": alert.alert_id})
            await self.alert_log.save_fold(alert, updated)
            return
        if not self.alert_log.claim(alert):
            return
        log.info("alert %s: %s matched %s", alert.alert_id, alert.plate_read, alert.hit.list_name)
        self.live.publish({"type": "alert", "alert": alert})
        await self.alert_log.save(alert)


def _read_frame(read: PlateRead) -> dict[str, object]:
    return {
        "seq": read.seq,
        "plate": read.plate,
        "colour": read.colour,
        "camera_id": read.camera_id,
        "lane": read.lane,
        "captured_at": read.captured_at,
        "plate_valid": read.plate_valid,
        "no_plate": read.no_plate,
    }
