"""What the record keeps of an escalation, whatever holds it: the audit trail is the memory of what was
escalated (actor ``escalation``, action ``alert.escalated``, target the alert id), and the frame consoles
and webhooks get. The timing rule and the loop are ``central.alerts.escalation``."""

from __future__ import annotations

from typing import Any

from protocols.messages import Alert

ACTOR = "escalation"
ACTION = "alert.escalated"
#: Alerts older than this are not escalated any more (a first start on an old record must not ring for days-old alerts).
LOOKBACK_S = 86400.0


def frame(alert: Alert, escalated_at: float, after_s: float) -> dict[str, Any]:
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
