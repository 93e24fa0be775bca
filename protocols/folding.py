"""When a repeated hit folds into the open alert instead of raising a new one: the one definition the hub
(central/ingest/folding.py, for the console) and the edge (edge/service.py, for its tablets, uplink or
not) both use, so a tablet and the console show the same vehicle as one alarm with the same count.

The key is the listed entry on its list: one vehicle read by two lanes a second apart, or again at the
next checkpoint, is one alert; another listed vehicle never folds into it. A hit folds when it was
captured within the window of the open alert's first and last sightings; an alert with an outcome is
closed, so the next hit raises a new one. Clone findings, rules (no plate, quick tests) and person-list
hits from quick tests never fold: each is its own event.
"""

from __future__ import annotations

import msgspec

from .messages import Alert

FOLD_WINDOW_S = 600.0
"""The default window (the hub's ``alerts.fold_window_s``; the hub announces its own in its retained status,
and every edge folds with the window it last heard, this one before it ever heard the hub)."""

_NEVER_FOLD_KINDS = frozenset({"clone", "rule", "kit", "person"})

FoldKey = tuple[str, str]


def fold_key(alert: Alert) -> FoldKey | None:
    """What makes two alerts one: (list id, entry id); None for an alert that never folds."""
    hit = alert.hit
    if hit.kind in _NEVER_FOLD_KINDS or hit.entry_id.startswith("rule:") or hit.list_id.startswith("rule:"):
        return None
    return (hit.list_id, hit.entry_id)


def last_seen(alert: Alert) -> float:
    """When the open alert's vehicle was last captured (its own read until something folded into it)."""
    return alert.last_seen_at if alert.last_seen_at is not None else alert.captured_at


def within_window(open_alert: Alert, alert: Alert, window_s: float) -> bool:
    """``alert`` was captured within the window of ``open_alert``'s first and last sightings (either side:
    a replayed older read folds too)."""
    if window_s <= 0:
        return False
    return open_alert.captured_at - window_s <= alert.captured_at <= last_seen(open_alert) + window_s


def folds_into(open_alert: Alert, alert: Alert, window_s: float) -> bool:
    """``alert`` is a repeat of the still open ``open_alert``: same key, within the window, not itself."""
    key = fold_key(alert)
    return (
        key is not None
        and open_alert.alert_id != alert.alert_id
        and fold_key(open_alert) == key
        and within_window(open_alert, alert, window_s)
    )


def fold_into(open_alert: Alert, alert: Alert) -> Alert:
    """The open alert with ``alert`` folded in: one more repeat, and its last sighting (time and place)
    moved on when ``alert`` is the newer one."""
    last = last_seen(open_alert)
    newer = alert.captured_at >= last
    return msgspec.structs.replace(
        open_alert,
        folded=open_alert.folded + 1,
        last_seen_at=alert.captured_at if newer else last,
        last_seen_checkpoint=alert.checkpoint
        if newer
        else (open_alert.last_seen_checkpoint or open_alert.checkpoint),
    )
