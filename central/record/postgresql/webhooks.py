"""Webhook deliveries on PostgreSQL (``webhook_deliveries``): what each hook was sent, and which alerts
and escalations (from the audit trail) it still lacks after a restart."""

from __future__ import annotations

import msgspec
import psycopg

from central.record.escalation import ACTION, ACTOR
from central.record.postgresql.audit import PgAuditStore
from central.record.postgresql.events import key as _key


class PgWebhookStore:
    """``WebhookStore`` on PostgreSQL; every method takes the store's transaction."""

    @staticmethod
    def record_delivery(
        tx: psycopg.Connection, hook: str, key: str, outcome: str, detail: str, at: float
    ) -> None:
        """The outcome of one delivery (the last one counts)."""
        tx.execute(
            "INSERT INTO webhook_deliveries (hook, alert_id, outcome, detail, at) VALUES (%s,%s,%s,%s,%s) "
            "ON CONFLICT (hook, alert_id) DO UPDATE SET outcome = excluded.outcome, detail = excluded.detail, "
            "at = excluded.at",
            (
                hook,
                _key(key),
                outcome,
                None if detail is None else detail.encode("utf-8", "surrogatepass"),
                at,
            ),
        )

    @staticmethod
    def undelivered_alerts(tx: psycopg.Connection, hook: str, since: float) -> list[bytes]:
        """Alerts raised since ``since`` that this hook has no delivery record of, oldest first (their bodies)."""
        return [
            bytes(body)
            for (body,) in tx.execute(
                "SELECT a.body FROM alerts a LEFT JOIN webhook_deliveries d "
                "ON d.alert_id = a.alert_id AND d.hook = %s "
                "WHERE a.raised_at >= %s AND d.alert_id IS NULL ORDER BY a.raised_at, a.alert_id",
                (hook, since),
            )
        ]

    @staticmethod
    def unsent_escalations(tx: psycopg.Connection, hook: str, since: float) -> list[dict[str, object]]:
        """Escalations recorded since ``since`` that this hook has no delivery record of, as their frames."""
        frames: list[dict[str, object]] = []
        records = PgAuditStore.records(tx, actor=ACTOR, action=ACTION, since=since)
        sent = {
            key
            for (key,) in tx.execute(
                "SELECT alert_id FROM webhook_deliveries WHERE hook = %s AND alert_id = ANY(%s)",
                (hook, [_key(f"esc:{r.target}") for r in records]),
            )
        }
        for record in records:
            if _key(f"esc:{record.target}") in sent:
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
