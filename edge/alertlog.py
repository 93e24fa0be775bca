"""The alerts this checkpoint has shown, on disk: each one is shown once, across restarts too.

An alert can reach the edge more than once: the edge raises it from its own mirror and the hub
sends the same alert (same id) after matching; a hub that crashed between sending and marking an
alert dispatched sends it again after its restart. The tablets must alarm once per alert, so the
edge keeps the ids it has shown in its own SQLite file (``alerts.db``) and drops a repeat, even
when the edge itself restarted in between. The recent alerts are also what a tablet that signs in
after a restart sees first.

A repeated hit of a vehicle whose alarm is still open (protocols/folding.py: the same listed entry,
within the window the hub announced) is folded into it, as the hub folds it for the console: its id is
remembered with the alert it went into, and that alert's count and last sighting grow. The window the
hub last announced is kept here too, so an edge restarted with its uplink down folds the same.

Receipts: when a tablet shows an alarm, and when an officer acknowledges it, the edge tells the hub
(``cordon/v1/cp/{cp}/receipt``); each receipt is kept here until the broker has taken it.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import msgspec
import sqlite_utils

from protocols import folding
from protocols.messages import SCHEMA_VERSION, Alert, AlertReceipt
from runtime.sqlwriter import SqlWriter

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS alerts (
        alert_id TEXT PRIMARY KEY, shown_at REAL NOT NULL, body BLOB NOT NULL) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS alerts_shown ON alerts (shown_at)",
    """CREATE TABLE IF NOT EXISTS outcomes (
        alert_id TEXT NOT NULL, acknowledged_at REAL NOT NULL, outcome TEXT NOT NULL, note TEXT NOT NULL,
        officer TEXT NOT NULL, PRIMARY KEY (alert_id, acknowledged_at))""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS receipts (
        alert_id TEXT PRIMARY KEY, body BLOB NOT NULL, updated_at REAL NOT NULL, sent INTEGER NOT NULL)""",
]
#: Columns added after the first release (an alerts.db from before gets them at start-up).
COLUMNS = {"alerts": {"folded_into": "TEXT"}}

#: How long an id is remembered: longer than any outage after which the hub could still resend it.
REMEMBER_S = 30 * 86400

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(type=Alert)
_receipt_decoder = msgspec.json.Decoder(type=AlertReceipt)


class AlertLog:
    """Seen-alert ids (all of the last ``REMEMBER_S``) and the most recent alerts, kept on disk."""

    def __init__(self, path: str | Path, recent: int = 200, clock=time.time) -> None:  # noqa: ANN001
        self._writer = SqlWriter(path, name="alerts", setup=self._setup)
        self._clock = clock
        self.recent: deque[Alert] = deque(maxlen=recent)
        self._ids: set[str] = set()
        self.folded_into: dict[str, str] = {}
        """Folded alert id -> the id of the open alert it was folded into (recent ones)."""
        self.outcomes: dict[str, dict[str, object]] = {}
        """The latest outcome recorded here for each recent alert."""
        self.fold_window_s = folding.FOLD_WINDOW_S
        """The window repeated hits fold in: the hub's, as it last announced it."""
        self.receipts: dict[str, AlertReceipt] = {}
        """The receipt of each recent alert shown on a tablet here."""
        self.unsent: set[str] = set()
        """Alert ids whose latest receipt the broker has not taken yet."""
        self.receipt_updated: dict[str, float] = {}
        """When each receipt last changed."""

    def _setup(self, db: sqlite_utils.Database) -> None:
        for statement in SCHEMA:
            db.conn.execute(statement)
        for table, columns in COLUMNS.items():
            have = {row[1] for row in db.conn.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns.items():
                if name not in have:
                    db.conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        db.conn.execute("DELETE FROM alerts WHERE shown_at < ?", (self._clock() - REMEMBER_S,))
        db.conn.execute("DELETE FROM receipts WHERE updated_at < ?", (self._clock() - REMEMBER_S,))
        self._ids = {aid for (aid,) in db.conn.execute("SELECT alert_id FROM alerts")}
        rows = db.conn.execute(
            "SELECT body FROM alerts WHERE folded_into IS NULL ORDER BY shown_at DESC LIMIT ?",
            (self.recent.maxlen,),
        )
        self.recent.extend(reversed([_decoder.decode(body) for (body,) in rows]))
        open_ids = {a.alert_id for a in self.recent}
        self.folded_into = {
            aid: into
            for aid, into in db.conn.execute(
                "SELECT alert_id, folded_into FROM alerts WHERE folded_into IS NOT NULL"
            )
            if into in open_ids
        }
        window = db.conn.execute("SELECT value FROM meta WHERE key='fold_window_s'").fetchone()
        if window is not None:
            self.fold_window_s = float(window[0])
        for body, sent, updated in db.conn.execute(
            "SELECT body, sent, updated_at FROM receipts ORDER BY updated_at"
        ):
            receipt = _receipt_decoder.decode(body)
            if receipt.alert_id in open_ids or not sent:
                self.receipts[receipt.alert_id] = receipt
                self.receipt_updated[receipt.alert_id] = updated
            if not sent:
                self.unsent.add(receipt.alert_id)
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
            db.conn.execute("DELETE FROM receipts WHERE updated_at < ?", (cutoff,))
            return gone

        gone = await self._writer.run(job)
        self._ids.difference_update(gone)
        # What no tablet can ask for any more: folds into alerts gone from the recent ones, receipts sent.
        open_ids = {a.alert_id for a in self.recent}
        self.folded_into = {aid: into for aid, into in self.folded_into.items() if into in open_ids}
        self.receipts = {aid: r for aid, r in self.receipts.items() if aid in open_ids or aid in self.unsent}
        return len(gone)

    def get(self, alert_id: str) -> Alert | None:
        """A recent alert shown here; a folded one's id finds the alert it was folded into."""
        alert_id = self.folded_into.get(alert_id, alert_id)
        return next((a for a in self.recent if a.alert_id == alert_id), None)

    # -- folding (protocols/folding.py) ----------------------------------------------------------------
    def open_alert_for(self, alert: Alert) -> Alert | None:
        """The open alert ``alert`` repeats (same listed entry, within the window, no outcome yet), newest
        first; None: ``alert`` is an alarm of its own."""
        if folding.fold_key(alert) is None:
            return None
        for candidate in reversed(self.recent):
            if candidate.alert_id not in self.outcomes and folding.folds_into(
                candidate, alert, self.fold_window_s
            ):
                return candidate
        return None

    def fold(self, alert: Alert, into: Alert) -> Alert:
        """Fold ``alert`` (not seen before) into the open alert ``into``; return that alert as updated."""
        updated = folding.fold_into(into, alert)
        self._ids.add(alert.alert_id)
        self.folded_into[alert.alert_id] = into.alert_id
        for index, shown in enumerate(self.recent):
            if shown.alert_id == into.alert_id:
                self.recent[index] = updated
                break
        return updated

    async def save_fold(self, alert: Alert, updated: Alert) -> None:
        """Commit a fold: the folded alert's id (with the alert it went into) and the open alert as updated."""
        shown_at = self._clock()

        def job(db: sqlite_utils.Database) -> None:
            db.conn.execute(
                "INSERT OR IGNORE INTO alerts (alert_id, shown_at, body, folded_into) VALUES (?, ?, ?, ?)",
                (alert.alert_id, shown_at, _encoder.encode(alert), updated.alert_id),
            )
            db.conn.execute(
                "UPDATE alerts SET body=? WHERE alert_id=?", (_encoder.encode(updated), updated.alert_id)
            )

        await self._writer.run(job)

    async def set_fold_window(self, window_s: float) -> None:
        """The hub announced its fold window: fold with it from now on, also after a restart offline."""
        if window_s == self.fold_window_s:
            return
        self.fold_window_s = window_s

        def job(db: sqlite_utils.Database) -> None:
            db.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('fold_window_s', ?)", (repr(window_s),)
            )

        await self._writer.run(job)

    # -- receipts ------------------------------------------------------------------------------------
    async def note_receipt(
        self,
        checkpoint: str,
        alert_id: str,
        *,
        shown_at: float | None = None,
        shown_by: str = "",
        acknowledged_at: float | None = None,
        outcome: str | None = None,
        officer: str = "",
    ) -> AlertReceipt | None:
        """Record that the alarm of ``alert_id`` was shown on a tablet here (the first time counts) or
        acknowledged (the latest counts); the receipt as it now stands, or None when nothing changed."""
        old = self.receipts.get(alert_id)
        now = self._clock()
        if old is None:
            receipt = AlertReceipt(
                v=SCHEMA_VERSION,
                checkpoint=checkpoint,
                alert_id=alert_id,
                shown_at=shown_at,
                shown_by=shown_by,
                sent_at=now,
            )
        elif shown_at is not None and old.shown_at is not None:
            receipt = old  # shown before: the first time is the receipt
        else:
            receipt = msgspec.structs.replace(
                old,
                shown_at=old.shown_at if old.shown_at is not None else shown_at,
                shown_by=old.shown_by or shown_by,
            )
        if acknowledged_at is not None:
            receipt = msgspec.structs.replace(
                receipt, acknowledged_at=acknowledged_at, outcome=outcome, officer=officer
            )
        if receipt is old:
            return None
        receipt = msgspec.structs.replace(receipt, sent_at=now)
        self.receipts[alert_id] = receipt
        self.receipt_updated[alert_id] = now
        self.unsent.add(alert_id)

        def job(db: sqlite_utils.Database) -> None:
            db.conn.execute(
                "INSERT OR REPLACE INTO receipts (alert_id, body, updated_at, sent) VALUES (?, ?, ?, 0)",
                (alert_id, _encoder.encode(receipt), now),
            )

        await self._writer.run(job)
        return receipt

    async def receipt_sent(self, receipt: AlertReceipt) -> None:
        """The broker took this receipt; a later change to it is sent again."""
        if self.receipts.get(receipt.alert_id) != receipt:
            return
        self.unsent.discard(receipt.alert_id)

        def job(db: sqlite_utils.Database) -> None:
            db.conn.execute(
                "UPDATE receipts SET sent=1 WHERE alert_id=? AND body=?",
                (receipt.alert_id, _encoder.encode(receipt)),
            )

        await self._writer.run(job)

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
