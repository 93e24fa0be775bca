"""What every implementation of the record shares, whatever holds it: the record day of a time in the
configured UTC offset, a day's bounds, an event's content digest, a read's optional attributes as the
record keeps them."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import msgspec

from protocols.messages import AlertOutcome, AuditEvent, EdgeHit, Event, Gap, KitResultEvent, PlateRead

# captured_at outside these bounds (a broken edge clock) is routed to the nearest bound's day.
_EARLIEST, _LATEST = 0.0, 4_102_444_799.0  # 1970-01-01 .. 2099-12-31 UTC

_encoder = msgspec.json.Encoder()


def digest(event: Event) -> bytes:
    """Content digest of an event: equal for an honest resend, different for a reused identity."""
    return hashlib.blake2b(_encoder.encode(event), digest_size=16).digest()


def parse_offset(text: str) -> dt.timezone:
    """``+08:00`` -> the fixed offset the record's days are cut in."""
    m = re.fullmatch(r"([+-])(\d{2}):(\d{2})", text.strip())
    if not m or int(m.group(2)) > 14 or int(m.group(3)) > 59:
        raise ValueError(f"UTC offset must look like +08:00, not {text!r}")
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return dt.timezone(dt.timedelta(minutes=minutes if m.group(1) == "+" else -minutes))


def day_of(ts: float, tz: dt.timezone) -> dt.date:
    """The record day of a timestamp (clamped to 1970..2099, so any float has a day)."""
    ts = min(max(ts, _EARLIEST), _LATEST) if ts == ts else _EARLIEST  # NaN -> earliest
    return dt.datetime.fromtimestamp(ts, tz).date()


def day_bounds(day: dt.date, tz: dt.timezone) -> tuple[float, float]:
    """[start, end) of a record day in unix seconds."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
    return start, start + 86400.0


def read_attributes(read: PlateRead) -> str | None:
    """The read's optional attributes as the day file keeps them (JSON), or None when it has none."""
    attrs = {
        k: v
        for k, v in (
            ("vehicle_colour", read.vehicle_colour),
            ("vehicle_brand", read.vehicle_brand),
            ("has_evidence", read.has_evidence),
        )
        if v
    }
    return _encoder.encode(attrs).decode() if attrs else None


def made_at(event: Event) -> float:
    """When the edge made a hit, gap, outcome, audit or quick-test event: where to look for a read that may
    hold the same identity (the record's day of that moment)."""
    if isinstance(event, EdgeHit):
        return event.raised_at
    if isinstance(event, Gap):
        return event.dropped_at
    if isinstance(event, AlertOutcome):
        return event.acknowledged_at
    if isinstance(event, AuditEvent):
        return event.at
    if isinstance(event, KitResultEvent):
        return event.recorded_at
    raise TypeError(type(event).__name__)
