"""Folding repeated hits of one listed vehicle into its open alert (``alerts.fold_window_s``).

What folds into what is defined once, in protocols/folding.py, which the edges use for their tablets too:
a hit on the same entry of the same list, captured within the window of the open alert's sightings,
does not raise a new alert: the open alert's ``folded`` count, ``last_seen_at`` and ``last_seen_checkpoint``
grow instead. The fold key is the entry, so another listed vehicle is never held back by this one's window.
An alert with an outcome recorded is closed: the next hit raises a new alert. An outcome an officer
recorded for a hit folded into it (the reading edge alerted its tablets under that hit's own id) closes it too.

Everything is decided inside the writer's transaction, from the database: the folded hit's own alert id
is remembered in ``alert_folds``, so a replayed read (after an edge or hub restart) folds nothing twice
and never raises the alert it was folded into again."""

from __future__ import annotations

import msgspec
import sqlite_utils

from protocols import folding
from protocols.messages import Alert

_decoder = msgspec.json.Decoder(Alert)
_encoder = msgspec.json.Encoder()


def foldable(alert: Alert) -> bool:
    """Only hits on a listed entry fold; clone findings and rules (no entry) always raise."""
    return folding.fold_key(alert) is not None


def known(db: sqlite_utils.Database, alert_id: str) -> bool:
    """This alert id was already raised or folded (a replay)."""
    return (
        db.conn.execute(
            "SELECT 1 FROM alerts WHERE alert_id=? UNION ALL SELECT 1 FROM alert_folds WHERE alert_id=?",
            (alert_id, alert_id),
        ).fetchone()
        is not None
    )


def fold(db: sqlite_utils.Database, alert: Alert, window_s: float) -> Alert | None:
    """Inside a writer job: fold ``alert`` into the open alert of its entry and list, if there is one
    within the window, and return that alert as updated; None: raise ``alert`` as a new one."""
    if window_s <= 0 or not foldable(alert) or known(db, alert.alert_id):
        return None
    rows = db.conn.execute(
        """SELECT body FROM alerts a WHERE list_id=? AND entry_id=? AND raised_at >= ?
           AND NOT EXISTS (SELECT 1 FROM alert_outcomes o WHERE o.alert_id = a.alert_id OR o.alert_id IN
                           (SELECT f.alert_id FROM alert_folds f WHERE f.into_id = a.alert_id))
           ORDER BY raised_at DESC LIMIT 20""",
        (alert.hit.list_id, alert.hit.entry_id, alert.raised_at - window_s - 86400.0),
    ).fetchall()
    for (body,) in rows:
        open_alert = _decoder.decode(body)
        if not folding.folds_into(open_alert, alert, window_s):
            continue
        db.conn.execute(
            "INSERT INTO alert_folds (alert_id, into_id, checkpoint, captured_at, raised_at) "
            "VALUES (?,?,?,?,?)",
            (alert.alert_id, open_alert.alert_id, alert.checkpoint, alert.captured_at, alert.raised_at),
        )
        updated = folding.fold_into(open_alert, alert)
        db.conn.execute(
            "UPDATE alerts SET body=? WHERE alert_id=?", (_encoder.encode(updated), open_alert.alert_id)
        )
        return updated
    return None
