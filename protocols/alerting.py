"""How a hit on a read becomes an alert: one function, so the edge and the hub make the same alert."""

from __future__ import annotations

from typing import Literal

from .kits import KitResult, overall_call
from .matching import Entry, Hit, Watchlist
from .messages import SCHEMA_VERSION, Alert, AlertHit, PlateRead, derive_alert_id


def alert_for(
    checkpoint: str, epoch: int, read: PlateRead, hit: Hit, *, list_name: str, reason: str, raised_at: float
) -> Alert:
    """The alert for ``hit`` on ``read`` (its id derived from the read and the entry)."""
    return Alert(
        v=SCHEMA_VERSION,
        alert_id=derive_alert_id(checkpoint, epoch, read.seq, hit.entry_id),
        checkpoint=checkpoint,
        epoch=epoch,
        seq=read.seq,
        raised_at=raised_at,
        captured_at=read.captured_at,
        camera_id=read.camera_id,
        plate_read=read.plate,
        lane=read.lane,
        colour=read.colour,
        vehicle_type=read.vehicle_type,
        direction=read.direction,
        hit=AlertHit(
            entry_id=hit.entry_id,
            entry_plate=hit.entry_plate,
            list_id=hit.list_id,
            list_name=list_name,
            action=hit.action.value,
            priority=hit.priority,
            kind=hit.kind.value,
            score=hit.score,
            explanation=hit.explanation[:500],
            reason=reason[:500],
            feed_version=hit.feed_version,
            matcher_version=hit.matcher_version,
        ),
    )


def rule_alert(
    checkpoint: str,
    epoch: int,
    read: PlateRead,
    *,
    rule_id: str,
    name: str,
    action: Literal["intercept", "covert", "notify"],
    priority: int,
    explanation: str,
    raised_at: float,
) -> Alert:
    """An alert raised by a rule about the read itself (no watchlist entry), e.g. a vehicle without a
    readable plate; ``rule_id`` (``rule:…``) stands in for the list and the entry."""
    return Alert(
        v=SCHEMA_VERSION,
        alert_id=derive_alert_id(checkpoint, epoch, read.seq, rule_id),
        checkpoint=checkpoint,
        epoch=epoch,
        seq=read.seq,
        raised_at=raised_at,
        captured_at=read.captured_at,
        camera_id=read.camera_id,
        plate_read=read.plate,
        lane=read.lane,
        colour=read.colour,
        vehicle_type=read.vehicle_type,
        hit=AlertHit(
            entry_id=rule_id,
            entry_plate="",
            list_id=rule_id,
            list_name=name[:128],
            action=action,
            priority=priority,
            kind="rule",
            score=1.0,
            explanation=explanation[:500],
        ),
    )


def kit_alert(checkpoint: str, epoch: int, seq: int, result: KitResult, *, raised_at: float) -> Alert:
    """The alert for a positive or invalid drug quick test (``rule:kit``), made the same at the edge and the
    hub (one id), so the officer's tablet and the console see one alert. The subject shows as its last four."""
    call = overall_call(result.panels)
    shown = f"ID …{result.subject.id_last4}"
    drugs = ", ".join(p.drug for p in result.panels if p.officer_call == call)
    return Alert(
        v=SCHEMA_VERSION,
        alert_id=derive_alert_id(checkpoint, epoch, seq, "rule:kit"),
        checkpoint=checkpoint,
        epoch=epoch,
        seq=seq,
        raised_at=raised_at,
        captured_at=result.read_at,
        camera_id="kit",
        plate_read=shown,
        hit=AlertHit(
            entry_id="rule:kit",
            entry_plate=shown,
            list_id="rule:kit",
            list_name=f"quick test {call}",
            action="notify",
            priority=80 if call == "positive" else 40,
            kind="kit",
            score=1.0,
            explanation=f"{result.kit_model} {call}: {drugs} ({result.result_id})"[:500],
        ),
    )


def person_alert(
    checkpoint: str,
    epoch: int,
    seq: int,
    result: KitResult,
    entry: Entry,
    watchlist: Watchlist,
    *,
    raised_at: float,
) -> Alert:
    """The alert for a quick-test subject whose keyed ID hash is on a person list (same id at edge and hub)."""
    shown = f"ID …{result.subject.id_last4}"
    return Alert(
        v=SCHEMA_VERSION,
        alert_id=derive_alert_id(checkpoint, epoch, seq, entry.entry_id),
        checkpoint=checkpoint,
        epoch=epoch,
        seq=seq,
        raised_at=raised_at,
        captured_at=result.sampled_at,
        camera_id="kit",
        plate_read=shown,
        hit=AlertHit(
            entry_id=entry.entry_id[:128],
            entry_plate=shown,
            list_id=watchlist.list_id[:128],
            list_name=watchlist.name[:128],
            action=watchlist.action.value,
            priority=watchlist.priority,
            kind="person",
            score=1.0,
            reason=entry.reason[:500],
            explanation=f"quick test {result.result_id}: the subject's keyed ID hash is on this person list"[
                :500
            ],
        ),
    )
