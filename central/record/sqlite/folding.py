"""Folding on hub.db: the open alert of an entry and list, the folded hit remembered in ``alert_folds``,
all inside the writer's transaction (the rule: ``central.ingest.folding``)."""

from __future__ import annotations

import msgspec
import sqlite_utils

from central.record.folding import foldable
from protocols import folding
from protocols.messages import Alert

__all__ = ["fold", "foldable", "known"]

_decoder = msgspec.json.Decoder(Alert)
_encoder = msgspec.json.Encoder()


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
