"""What the alert store gives, whatever holds it (the alerts themselves are ``protocols.messages.Alert``)."""

from __future__ import annotations

from typing import NamedTuple


class PendingHit(NamedTuple):
    """An edge hit on a read that has no alert at the hub yet (the hub did not match it itself)."""

    alert_id: str
    entry_id: str
    list_id: str
    kind: str
    score: float
    explanation: str
    feed_version: int
    matcher_version: str
