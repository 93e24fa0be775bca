"""How a hit on a read becomes an alert: one function, so the edge and the hub make the same alert."""

from __future__ import annotations

from typing import Literal

from .matching import Hit
from .messages import SCHEMA_VERSION, Alert, AlertHit, PlateRead, derive_alert_id


def alert_for(checkpoint: str, epoch: int, read: PlateRead, hit: Hit, *, list_name: str, reason: str,
              raised_at: float) -> Alert:
    """The alert for ``hit`` on ``read`` (its id derived from the read and the entry)."""
    return Alert(
        v=SCHEMA_VERSION, alert_id=derive_alert_id(checkpoint, epoch, read.seq, hit.entry_id),
        checkpoint=checkpoint, epoch=epoch, seq=read.seq, raised_at=raised_at, captured_at=read.captured_at,
        camera_id=read.camera_id, plate_read=read.plate, lane=read.lane, colour=read.colour,
        vehicle_type=read.vehicle_type, direction=read.direction,
        hit=AlertHit(entry_id=hit.entry_id, entry_plate=hit.entry_plate, list_id=hit.list_id, list_name=list_name,
                     action=hit.action.value, priority=hit.priority, kind=hit.kind.value, score=hit.score,
                     explanation=hit.explanation[:500], reason=reason[:500], feed_version=hit.feed_version,
                     matcher_version=hit.matcher_version))


def rule_alert(checkpoint: str, epoch: int, read: PlateRead, *, rule_id: str, name: str,
               action: Literal["intercept", "covert", "notify"], priority: int, explanation: str,
               raised_at: float) -> Alert:
    """An alert raised by a rule about the read itself (no watchlist entry), e.g. a vehicle without a
    readable plate; ``rule_id`` (``rule:…``) stands in for the list and the entry."""
    return Alert(
        v=SCHEMA_VERSION, alert_id=derive_alert_id(checkpoint, epoch, read.seq, rule_id),
        checkpoint=checkpoint, epoch=epoch, seq=read.seq, raised_at=raised_at, captured_at=read.captured_at,
        camera_id=read.camera_id, plate_read=read.plate, lane=read.lane, colour=read.colour,
        vehicle_type=read.vehicle_type,
        hit=AlertHit(entry_id=rule_id, entry_plate="", list_id=rule_id, list_name=name[:128], action=action,
                     priority=priority, kind="rule", score=1.0, explanation=explanation[:500]))
