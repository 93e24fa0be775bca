"""The alerts this checkpoint has shown, on disk: each one is shown once, across restarts too.

An alert can reach the edge more than once: the edge raises it from its own mirror and the hub
sends the same alert (same id) after matching; a hub that crashed between sending and marking an
alert dispatched sends it again after its restart. The tablets must alarm once per alert, so the
edge keeps the ids it has shown in its own SQLite file (``alerts.db``) and drops a repeat, even
when the edge itself restarted in between. The recent alerts are also what a tablet that signs in
after a restart sees first.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import msgspec
import sqlite_utils

from protocols.messages import Alert
from runtime.sqlwriter import SqlWriter

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS alerts (
        alert_id TEXT PRIMARY KEY, shown_at REAL NOT NULL, body BLOB NOT NULL) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS alerts_shown ON alerts (shown_at)",
    """CREATE TABLE IF NOT EXISTS outcomes (
        alert_id TEXT NOT NULL, acknowledged_at REAL NOT NULL, outcome TEXT NOT NULL, note TEXT NOT NULL,
        officer TEXT NOT NULL, PRIMARY KEY (alert_id, acknowledged_at))""",
]

#: How long an id is remembered: longer than any outage after which the hub could still resend it.
REMEMBER_S = 30 * 86400

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(type=Alert)


class AlertLog:
    """Seen-alert ids (all of the last ``REMEMBER_S``) and the most recent alerts, kept on disk."""

    def __init__(self, path: str | Path, recent: int = 200, clock=time.time) -> None:  # noqa: ANN001
        self._writer = SqlWriter(path, name="alerts", setup=self._setup)
        self._clock = clock
        self.recent: deque[Alert] = deque(maxlen=recent)
        self._ids: set[str] = set()
        self.outcomes: dict[str, dict[str, object]] = {}
        """The latest outcome recorded here for each recent alert."""

    def _setup(self, db: sqlite_utils.Database) -> None:
        for statement in SCHEMA:
            db.conn.execute(statement)
        db.conn.execute("DELETE FROM alerts WHERE shown_at < ?", (self._clock() - REMEMBER_S,))
        self._ids = {aid for (aid,) in db.conn.execute("SELECT alert_id FROM alerts")}
        rows = db.conn.execute(
            "SELECT body FROM alerts ORDER BY shown_at DESC LIMIT ?", (self.recent.maxlen,)
        )
        self.recent.extend(reversed([_decoder.decode(body) for (body,) in rows]))
        db.conn.execute("DELETE FROM outcomes WHERE acknowledged_at < ?", (self._clock() - REMEMBER_S,))
        recent_ids = {a.alert_id for a in self.recent}
        for aid, at, outcome, note, officer in db.conn.execute(
            "SELECT alert_id, acknowledged_at, outcome, note, officer FROM outcomes ORDER BY acknowledged_at"
        ):
            if aid in recent_ids:
                self.outcomes[aid] = outcome_frame(aid, at, outcome, note, officer)

    def start(self) -> None:
        self._writer.start()

    def stop(self) -> None:
        self._writer.stop()

    def __contains__(self, alert_id: str) -> bool:
        return alert_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def claim(self, alert: Alert) -> bool:
        """True the first time this alert id is seen (then it counts as shown); False for a repeat."""
        if alert.alert_id in self._ids:
            return False
        self._ids.add(alert.alert_id)
        self.recent.append(alert)
        return True

    async def forget_old(self) -> int:
        """Drop alert ids (and outcomes) older than ``REMEMBER_S``; return how many alerts went."""
        cutoff = self._clock() - REMEMBER_S

        def job(db: sqlite_utils.Database) -> list[str]:
            gone = [
                aid for (aid,) in db.conn.execute("SELECT alert_id FROM alerts WHERE shown_at < ?", (cutoff,))
            ]
            db.conn.execute("DELETE FROM alerts WHERE shown_at < ?", (cutoff,))
            db.conn.execute("DELETE FROM outcomes WHERE acknowledged_at < ?", (cutoff,))
            return gone

        gone = await self._writer.run(job)
        self._ids.difference_update(gone)
        return len(gone)

    def get(self, alert_id: str) -> Alert | None:
        return next((a for a in self.recent if a.alert_id == alert_id), None)

    async def record_outcome(
        self, alert_id: str, outcome: str, note: str, officer: str, at: float
    ) -> dict[str, object]:
        def job(db: sqlite_utils.Database) -> None:
            db.conn.execute(
                "INSERT OR REPLACE INTO outcomes (alert_id, acknowledged_at, outcome, note, officer) "
                "VALUES (?, ?, ?, ?, ?)",
                (alert_id, at, outcome, note, officer),
            )

        await self._writer.run(job)
        frame = self.outcomes[alert_id] = outcome_frame(alert_id, at, outcome, note, officer)
        return frame

    async def save(self, alert: Alert) -> None:
        """Commit a claimed alert, so a restart still knows it was shown."""
        shown_at = self._clock()

        def job(db: sqlite_utils.Database) -> None:
            db.conn.execute(
                "INSERT OR IGNORE INTO alerts (alert_id, shown_at, body) VALUES (?, ?, ?)",
                (alert.alert_id, shown_at, _encoder.encode(alert)),
            )

        await self._writer.run(job)


def outcome_frame(alert_id: str, at: float, outcome: str, note: str, officer: str) -> dict[str, object]:
    return {"alert_id": alert_id, "acknowledged_at": at, "outcome": outcome, "note": note, "officer": officer}
