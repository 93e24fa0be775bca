"""Intercept alerts nobody answered: after ``console.escalate_after_s`` without an outcome an alert is
escalated, once, in the audit trail (action ``alert.escalated``) and on every console.

The check and the audit record are written in one writer transaction, so an alert is escalated exactly
once, also across restarts: the audit trail itself is the memory of what was escalated."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import sqlite_utils

from central.people import audit
from protocols.matching import ListAction
from protocols.messages import Alert

ACTOR = "escalation"
ACTION = "alert.escalated"
#: Alerts older than this are not escalated any more (a first start on an old record must not ring for days-old alerts).
LOOKBACK_S = 86400.0

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
        frame = _frame(alert, now, after_s)
        audit.append(
            db,
            ACTOR,
            "system",
            ACTION,
            target=alert.alert_id,
            reason=f"no outcome {round(after_s)} s after the alert",
            detail={k: frame[k] for k in ("checkpoint", "plate_read", "list_id", "raised_at")},
            at=now,
        )
        escalated.append(frame)
    return escalated


#: The action of every alert that escalates (the query above takes only these): an escalation frame names
#: its list but not its action, and who may see it is decided by both (central/people/visibility.py).
ACTION_OF_ESCALATED = ListAction.INTERCEPT


def _frame(alert: Alert, escalated_at: float, after_s: float) -> dict[str, Any]:
    """An escalation as consoles get it: it names its alert (plate, list, checkpoint), so a notice can say
    which vehicle nobody answered for without the alert at hand."""
    return {
        "alert_id": alert.alert_id,
        "checkpoint": alert.checkpoint,
        "plate_read": alert.plate_read,
        "list_id": alert.hit.list_id,
        "list_name": alert.hit.list_name,
        "raised_at": alert.raised_at,
        "escalated_at": escalated_at,
        "after_s": after_s,
    }


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
            found.append(_frame(_decoder.decode(body), at, after_s))
    return found


def check_interval(after_s: float) -> float:
    """Look a few times per escalation period, never busier than twice a second nor lazier than 10 s."""
    return max(0.5, min(10.0, after_s / 4))
