"""Escalations on hub.db: the intercept alerts nobody answered, audited once each in the writer's
transaction (so exactly once, also across restarts), and the escalations already recorded."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import sqlite_utils

from central.record.escalation import ACTION, ACTOR, LOOKBACK_S, frame
from central.record.sqlite import audit
from protocols.messages import Alert

_decoder = msgspec.json.Decoder(Alert)


def escalate_due(db: sqlite_utils.Database, after_s: float, now: float | None = None) -> list[dict[str, Any]]:
    """Inside a writer job: audit every intercept alert unanswered for ``after_s`` and not yet escalated;
    return the escalation frames' bodies."""
    now = time.time() if now is None else now
    rows = db.conn.execute(
        """SELECT body FROM alerts a WHERE action = 'intercept' AND raised_at <= ? AND raised_at >= ?
           AND NOT EXISTS (SELECT 1 FROM alert_outcomes o WHERE o.alert_id = a.alert_id OR o.alert_id IN
                           (SELECT f.alert_id FROM alert_folds f WHERE f.into_id = a.alert_id))
           AND NOT EXISTS (SELECT 1 FROM audit u WHERE u.actor = ? AND u.action = ? AND u.target = a.alert_id)
           ORDER BY raised_at""",
        (now - after_s, now - after_s - LOOKBACK_S, ACTOR, ACTION),
    ).fetchall()
    escalated = []
    for (body,) in rows:
        alert = _decoder.decode(body)
        found = frame(alert, now, after_s)
        audit.append(
            db,
            ACTOR,
            "system",
            ACTION,
            target=alert.alert_id,
            reason=f"no outcome {round(after_s)} s after the alert",
            detail={k: found[k] for k in ("checkpoint", "plate_read", "list_id", "raised_at")},
            at=now,
        )
        escalated.append(found)
    return escalated


def escalated_among(db: sqlite_utils.Database, alert_ids: list[str], after_s: float) -> list[dict[str, Any]]:
    """The escalations already recorded for these alerts (a console connecting gets them with the alerts),
    as whole frames like the ones ``escalate_due`` returns."""
    found: list[dict[str, Any]] = []
    for i in range(0, len(alert_ids), 500):
        chunk = alert_ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for at, body in db.conn.execute(
            f"""SELECT u.at, a.body FROM audit u JOIN alerts a ON a.alert_id = u.target
                WHERE u.actor = ? AND u.action = ? AND u.target IN ({marks})""",
            (ACTOR, ACTION, *chunk),
        ):
            found.append(frame(_decoder.decode(body), at, after_s))
    return found
