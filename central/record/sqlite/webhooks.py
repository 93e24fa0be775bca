"""Webhook deliveries on hub.db (``webhook_deliveries``): what each hook was sent, and what it still lacks
after a restart (alerts, and escalations from the audit trail)."""

from __future__ import annotations

import msgspec
import sqlite_utils

from central.record.escalation import ACTION, ACTOR
from central.record.sqlite import audit


class SqliteWebhookStore:
    """``WebhookStore`` on hub.db."""

    @staticmethod
    def record_delivery(
        db: sqlite_utils.Database, hook: str, key: str, outcome: str, detail: str, at: float
    ) -> None:
        """Inside a writer job: the outcome of one delivery (the last one counts)."""
        db.conn.execute(
            "INSERT OR REPLACE INTO webhook_deliveries (hook, alert_id, outcome, detail, at) VALUES (?,?,?,?,?)",
            (hook, key, outcome, detail, at),
        )

    @staticmethod
    def undelivered_alerts(db: sqlite_utils.Database, hook: str, since: float) -> list[bytes]:
        """Alerts raised since ``since`` that this hook has no delivery record of, oldest first (their bodies)."""
        return [
            b
            for (b,) in db.conn.execute(
                "SELECT a.body FROM alerts a LEFT JOIN webhook_deliveries d "
                "ON d.alert_id = a.alert_id AND d.hook = ? "
                "WHERE a.raised_at >= ? AND d.alert_id IS NULL ORDER BY a.raised_at",
                (hook, since),
            )
        ]

    @staticmethod
    def unsent_escalations(db: sqlite_utils.Database, hook: str, since: float) -> list[dict[str, object]]:
        """Escalations recorded since ``since`` that this hook has no delivery record of, as their frames."""
        frames: list[dict[str, object]] = []
        for record in audit.records(db, actor=ACTOR, action=ACTION, since=since):
            if db.conn.execute(
                "SELECT 1 FROM webhook_deliveries WHERE hook=? AND alert_id=?", (hook, f"esc:{record.target}")
            ).fetchone():
                continue
            try:
                detail = msgspec.json.decode(record.detail or "{}")
            except msgspec.DecodeError:
                detail = {}
            frames.append(
                {
                    **(detail if isinstance(detail, dict) else {}),
                    "alert_id": record.target,
                    "escalated_at": record.at,
                }
            )
        return frames
