"""The hub's record: SQLite through one writer thread, explicit schema with numbered migrations.

``hub.db`` holds what is kept long or looked up often: alerts, edge hits, checkpoints, watchlists,
dead letters, and the ``events`` ledger of edge hits. Plain reads and passages, millions a day,
live in day files behind :class:`central.record.reads.ReadStore` (see that module for the layout, the
exactly-once rule and the crash reasoning); the writer attaches the day files it needs, so one
group commit covers both. Every event is inserted idempotently by its identity (checkpoint, epoch,
seq); its content digest tells a reused identity with other content (a dead letter) from an honest
resend (a no-op). Keep the public methods the interface: a PostgreSQL store can implement the same.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import sqlite_utils

from central.record.alerts import PendingHit
from central.record.days import digest, made_at
from central.record.escalation import ACTION as ESCALATION_ACTION
from central.record.escalation import ACTOR as ESCALATION_ACTOR
from central.record.reads import RecordCounts
from central.record.sqlite import escalation, folding
from central.record.sqlite.audit import SqliteAuditStore
from central.record.sqlite.dayfiles import FILE_SUFFIX, SqliteReadStore, file_day, file_name
from central.record.sqlite.schema import MIGRATIONS
from central.record.sqlite.stats import SqliteStatsStore
from central.record.sqlite.users import SqliteUserStore
from central.record.sqlite.watchlists import SqliteWatchlistStore
from central.record.sqlite.webhooks import SqliteWebhookStore
from central.record.stores import BackupCut, Counts, Outcome, StoredRun
from central.record.tx import StoreUnavailable
from protocols.kits import KitResult, overall_call
from protocols.messages import (
    Alert,
    AlertOutcome,
    AlertReceipt,
    EdgeHit,
    Event,
    Gap,
    KitResultEvent,
    Passage,
    PlateRead,
    event_kind,
)
from runtime import deadletters
from runtime.sqlwriter import BUSY_TIMEOUT_S, SqlWriter, open_database

__all__ = ["BackupCut", "HubStore", "Outcome", "Counts", "digest", "migrate"]

T = TypeVar("T")


#: SQLite's primary result codes for a failure of the store rather than of a statement (busy or locked,
#: out of memory, an I/O error, a full disk, a file that cannot be opened, a lock protocol error).
TRANSIENT_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)

RECORD_MIGRATION = 100
"""Reads and passages leave hub.db for day files (moved by :meth:`SqliteReadStore.import_legacy`); numbered
apart from the list above so the two sequences never collide."""

_encoder = msgspec.json.Encoder()
_alert_decoder = msgspec.json.Decoder(type=Alert)


def migrate(db: sqlite_utils.Database, record: SqliteReadStore | None = None) -> None:
    """Apply the migrations this file has not seen yet, each in its own transaction.

    Migration 3 moves the ``reads`` and ``passages`` tables of an older hub.db into day files; it
    needs the record (``record``), and runs again harmlessly if a crash interrupted it.
    """
    db.conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)"
    )
    done = {v for (v,) in db.conn.execute("SELECT version FROM schema_migrations")}
    for version, statements in enumerate(MIGRATIONS, start=1):
        if version in done:
            continue
        db.conn.execute("BEGIN IMMEDIATE")
        for statement in statements:
            db.conn.execute(statement)
        db.conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
        db.conn.execute("COMMIT")
    if record is not None and RECORD_MIGRATION not in done:
        record.import_legacy(db)
        db.conn.execute("BEGIN IMMEDIATE")
        db.conn.execute("DROP TABLE IF EXISTS main.reads")
        db.conn.execute("DROP TABLE IF EXISTS main.passages")
        db.conn.execute("DELETE FROM main.events WHERE kind IN ('read', 'passage')")
        db.conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (RECORD_MIGRATION, time.time()))
        db.conn.execute("COMMIT")


class HubStore:
    """Write side (one writer thread) and read side (short-lived connections) of the hub record."""

    def __init__(
        self,
        path: str | Path,
        *,
        record_dir: str | Path | None = None,
        utc_offset: str = "+08:00",
        attached_max: int = 4,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        hub: str = "",
    ) -> None:
        self.path = Path(path)
        #: this hub's name (``cluster.name``): the alerts it raises are its to dispatch
        self.hub = hub
        self.record = SqliteReadStore(
            record_dir if record_dir is not None else self.path.parent / "record",
            utc_offset=utc_offset,
            attached_max=attached_max,
        )
        # Another process holding the file's write lock (a backup, an operator's sqlite3 shell) makes a
        # commit fail after this long; ingest then acknowledges nothing and the edges send again.
        self._writer = SqlWriter(
            self.path, name="hub-store", setup=self._setup, busy_timeout_s=busy_timeout_s
        )
        self.record.bind(self._writer)
        self.audit = SqliteAuditStore()
        self.webhooks = SqliteWebhookStore()
        self.watchlists = SqliteWatchlistStore()
        self.users = SqliteUserStore()
        self.stats = SqliteStatsStore()

    def _setup(self, db: sqlite_utils.Database) -> None:
        self.record.start(db)
        migrate(db, self.record)

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer.start()

    def stop(self) -> None:
        self._writer.stop()

    @property
    def writer_error(self) -> str | None:
        return self._writer.last_error

    @staticmethod
    def transient(exc: BaseException) -> bool:
        """SQLite fails by itself when the file is locked past the busy timeout, the disk is full or
        failing, or memory runs out; a job meeting one of these is failed, not dead-lettered."""
        if isinstance(exc, StoreUnavailable):
            return True
        code = getattr(exc, "sqlite_errorcode", None)
        return isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in TRANSIENT_CODES

    def submit(self, job: Callable[[sqlite_utils.Database], T]):  # noqa: ANN201 - concurrent Future[T]
        """Run a job in the writer thread (used by ingest, which works from the MQTT thread)."""
        return self._writer.submit(job)

    def submit_aside(self, job: Callable[[sqlite_utils.Database], T]):  # noqa: ANN201 - concurrent Future[T]
        """One hub writes hub.db: no other hub's transaction to wait for, so the writer's own."""
        return self._writer.submit(job)

    async def run(self, job: Callable[[sqlite_utils.Database], T]) -> T:
        return await self._writer.run(job)

    # -- write helpers, called inside writer jobs ----------------------------------------------
    def insert_event(
        self,
        db: sqlite_utils.Database,
        checkpoint: str,
        epoch: int,
        event: Event,
        edge_sent_at: float,
        received_at: float,
    ) -> Outcome:
        """Insert idempotently; a reused identity with other content comes back as a dead letter."""
        if isinstance(event, PlateRead | Passage):
            stored = self.record.insert(db, checkpoint, epoch, event, edge_sent_at, received_at)
            return Outcome(
                inserted=stored.inserted, dead_letter=stored.conflict, seen_before=stored.seen_before
            )
        d = digest(event)
        taken = f"event {checkpoint}/{epoch}/{event.seq} was already stored with different content"
        row = db.conn.execute(
            "SELECT digest FROM events WHERE checkpoint=? AND epoch=? AND seq=?",
            (checkpoint, epoch, event.seq),
        ).fetchone()
        if row is not None:
            return Outcome(inserted=False) if row[0] == d else Outcome(inserted=False, dead_letter=taken)
        if self.record.identity_taken(db, checkpoint, epoch, event.seq, near=made_at(event)):
            return Outcome(inserted=False, dead_letter=taken)
        db.conn.execute(
            "INSERT INTO events (checkpoint, epoch, seq, kind, digest, received_at) VALUES (?,?,?,?,?,?)",
            (checkpoint, epoch, event.seq, event_kind(event), d, received_at),
        )
        if isinstance(event, EdgeHit):
            db.conn.execute(
                """INSERT INTO edge_hits (checkpoint, epoch, seq, read_seq, alert_id, entry_id, list_id, kind, score,
                explanation, feed_version, matcher_version, raised_at, thumbnail) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (
                    checkpoint,
                    epoch,
                    event.seq,
                    event.read_seq,
                    event.alert_id,
                    event.entry_id,
                    event.list_id,
                    event.kind,
                    event.score,
                    event.explanation,
                    event.feed_version,
                    event.matcher_version,
                    event.raised_at,
                    event.thumbnail,
                ),
            )
        elif isinstance(event, Gap):
            db.conn.executemany(
                """INSERT INTO gaps (checkpoint, epoch, seq, lo, hi, count, reason, dropped_at, received_at)
                VALUES (?,?,?,?,?,?,?,?,?)""",
                [
                    (
                        checkpoint,
                        epoch,
                        event.seq,
                        lo,
                        hi,
                        hi - lo + 1,
                        event.reason,
                        event.dropped_at,
                        received_at,
                    )
                    for lo, hi in event.ranges
                ],
            )
            db.conn.execute(
                "INSERT INTO checkpoints (checkpoint, dropped_reads) VALUES (?, ?) ON CONFLICT(checkpoint) "
                "DO UPDATE SET dropped_reads = dropped_reads + excluded.dropped_reads",
                (checkpoint, event.count),
            )
        elif isinstance(event, AlertOutcome):
            db.conn.execute(
                """INSERT INTO alert_outcomes (checkpoint, epoch, seq, alert_id, outcome, note, officer, acknowledged_at,
                alert_raised_at, received_at) VALUES (?,?,?,?,?,?,?,?,?,?)""",
                (
                    checkpoint,
                    epoch,
                    event.seq,
                    event.alert_id,
                    event.outcome,
                    event.note,
                    event.officer,
                    event.acknowledged_at,
                    event.alert_raised_at,
                    received_at,
                ),
            )
        elif isinstance(event, KitResultEvent):
            r = event.result
            db.conn.execute(
                """INSERT INTO kit_results (checkpoint, epoch, seq, result_id, id_hash, id_last4, kit_model, result,
                officer, sampled_at, read_at, kit_expired, outside_read_window, person_hits, body, received_at)
                VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (
                    checkpoint,
                    epoch,
                    event.seq,
                    r.result_id,
                    r.subject.id_hash,
                    r.subject.id_last4,
                    r.kit_model,
                    overall_call(r.panels),
                    event.checkpoint_officer,
                    r.sampled_at,
                    r.read_at,
                    int(r.kit_expired),
                    int(r.outside_read_window),
                    ",".join(event.person_hits),
                    _encoder.encode(r),
                    received_at,
                ),
            )
        return Outcome(inserted=True)

    def insert_alert(self, db: sqlite_utils.Database, alert: Alert) -> bool:
        cur = db.conn.execute(
            """INSERT OR IGNORE INTO alerts (alert_id, checkpoint, epoch, seq, entry_id, list_id, action, priority,
            raised_at, body, dispatch_hub) VALUES (?,?,?,?,?,?,?,?,?,?,?)""",
            (
                alert.alert_id,
                alert.checkpoint,
                alert.epoch,
                alert.seq,
                alert.hit.entry_id,
                alert.hit.list_id,
                alert.hit.action,
                alert.hit.priority,
                alert.raised_at,
                _encoder.encode(alert),
                self.hub or None,
            ),
        )
        return cur.rowcount == 1

    def clone_sightings(
        self, db: sqlite_utils.Database, plates: Any, since: float, besides: Any
    ) -> list[tuple[Any, str | None, str | None]]:
        """Alone on hub.db: the clone index has seen every read already."""
        return []

    def share_rates(self, rates: dict[str, int], now: float, fresh_s: float) -> dict[str, int]:
        """Alone on hub.db: no other hub counts reads."""
        return {}

    def announce_news(self) -> None:
        """Alone on hub.db: no other hub to tell."""

    def listen_news(self, on_news: Callable[[], None]) -> None:
        """Alone on hub.db: no other hub says anything."""

    def claim_orphans(self, db: sqlite_utils.Database, older_than: float, limit: int = 500) -> list[Alert]:
        """One hub keeps a hub.db: an alert another hub name left undispatched is a former hub's, gone."""
        rows = db.conn.execute(
            "SELECT alert_id, body FROM alerts WHERE dispatched_at IS NULL AND raised_at < ? "
            "AND dispatch_hub IS NOT ? ORDER BY rowid LIMIT ?",
            (older_than, self.hub, limit),
        ).fetchall()
        db.conn.executemany(
            "UPDATE alerts SET dispatch_hub = ? WHERE alert_id = ?", [(self.hub, aid) for aid, _ in rows]
        )
        return [_alert_decoder.decode(body) for _, body in rows]

    @staticmethod
    def add_thumbnail(db: sqlite_utils.Database, alert_id: str, thumbnail: str) -> Alert | None:
        """Put an edge hit's thumbnail on a stored alert that has none (the hit came after its read);
        the alert as it is now, or None when there is no such alert or it had a picture already."""
        row = db.conn.execute("SELECT body FROM alerts WHERE alert_id=?", (alert_id,)).fetchone()
        if row is None:
            return None
        alert = _alert_decoder.decode(row[0])
        if alert.thumbnail is not None:
            return None
        alert = msgspec.structs.replace(alert, thumbnail=thumbnail)
        db.conn.execute("UPDATE alerts SET body=? WHERE alert_id=?", (_encoder.encode(alert), alert_id))
        return alert

    @staticmethod
    def update_checkpoint(db: sqlite_utils.Database, checkpoint: str, **fields: Any) -> None:
        columns = ["checkpoint", *fields]
        updates = ", ".join(f"{c}=excluded.{c}" for c in fields)
        db.conn.execute(
            f"INSERT INTO checkpoints ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT(checkpoint) DO UPDATE SET {updates}",
            (checkpoint, *fields.values()),
        )

    @staticmethod
    def checkpoint_seen(db: sqlite_utils.Database, checkpoint: str, last_seen: float, epoch: int) -> None:
        HubStore.update_checkpoint(db, checkpoint, last_seen=last_seen, epoch=epoch)  # one writer: no race

    #: Inside a writer job: escalate the intercept alerts nobody answered (audited once each), their frames.
    escalate_due = staticmethod(escalation.escalate_due)
    #: On a read connection: the escalations already recorded for these alerts, as frames.
    escalated_among = staticmethod(escalation.escalated_among)

    #: Inside a writer job: fold an alert into the open alert of its entry and list (the alert as updated),
    #: or None when it is to be raised.
    fold = staticmethod(folding.fold)
    #: Inside a writer job: this alert id was already raised or folded (a replay).
    folded_or_raised = staticmethod(folding.known)

    @staticmethod
    def folded_into(db: sqlite_utils.Database, alert_id: str) -> str | None:
        """Inside a writer job: the open alert a hit's alert was folded into, None when it was not folded."""
        row = db.conn.execute("SELECT into_id FROM alert_folds WHERE alert_id=?", (alert_id,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def hit_thumbnail(
        db: sqlite_utils.Database, checkpoint: str, epoch: int, read_seq: int, alert_id: str
    ) -> str | None:
        """Inside a writer job: the picture an edge hit stored earlier carried for this alert of this read."""
        row = db.conn.execute(
            "SELECT thumbnail FROM edge_hits WHERE checkpoint=? AND epoch=? AND read_seq=? AND alert_id=? "
            "AND thumbnail IS NOT NULL LIMIT 1",
            (checkpoint, epoch, read_seq, alert_id),
        ).fetchone()
        return row[0] if row else None

    def insert_reads(
        self,
        db: sqlite_utils.Database,
        checkpoint: str,
        epoch: int,
        events: Sequence[PlateRead | Passage],
        edge_sent_at: float,
        received_at: float,
    ) -> StoredRun:
        """A run of reads and passages, each as ``insert_event`` (statements in-process cost microseconds),
        and the reads edge hits name."""
        outcomes = [self.insert_event(db, checkpoint, epoch, e, edge_sent_at, received_at) for e in events]
        seqs = [e.seq for e in events if isinstance(e, PlateRead)]
        return StoredRun(outcomes, self._edge_hit_reads(db, checkpoint, epoch, seqs))

    @staticmethod
    def _edge_hit_reads(db: sqlite_utils.Database, checkpoint: str, epoch: int, seqs: list[int]) -> set[int]:
        found: set[int] = set()
        for i in range(0, len(seqs), 500):  # within any SQLite's limit of bound parameters
            chunk = seqs[i : i + 500]
            found.update(
                seq
                for (seq,) in db.conn.execute(
                    "SELECT DISTINCT read_seq FROM edge_hits WHERE checkpoint=? AND epoch=? "
                    f"AND read_seq IN ({','.join('?' * len(chunk))})",
                    (checkpoint, epoch, *chunk),
                )
            )
        return found

    @staticmethod
    def unalerted_edge_hits(
        db: sqlite_utils.Database, checkpoint: str, epoch: int, read_seq: int
    ) -> list[PendingHit]:
        """Inside a writer job: the edge hits on this read that have no alert yet and were not folded."""
        return [
            PendingHit(*row)
            for row in db.conn.execute(
                "SELECT h.alert_id, h.entry_id, h.list_id, h.kind, h.score, h.explanation, h.feed_version, "
                "h.matcher_version FROM edge_hits h LEFT JOIN alerts a ON a.alert_id = h.alert_id "
                "WHERE h.checkpoint=? AND h.epoch=? AND h.read_seq=? AND a.alert_id IS NULL "
                "AND NOT EXISTS (SELECT 1 FROM alert_folds f WHERE f.alert_id = h.alert_id)",
                (checkpoint, epoch, read_seq),
            ).fetchall()
        ]

    @staticmethod
    def dead_letter(
        db: sqlite_utils.Database,
        source: str,
        reason: str,
        raw: bytes,
        checkpoint: str | None = None,
        received_at: float | None = None,
    ) -> int:
        """Inside a writer job: keep what could not be taken, with the reason and the raw bytes; its id."""
        return deadletters.insert(db, source, reason, raw, checkpoint, received_at)

    @staticmethod
    def alerts_naming(db: sqlite_utils.Database, checkpoint: str, epoch: int, seq: int) -> list[Alert]:
        """Alerts of this read, and clone alerts that name it as the other read ("rule:clone:CP/epoch/seq")."""
        rows = db.conn.execute(
            "SELECT body FROM alerts WHERE (checkpoint = ? AND epoch = ? AND seq = ?) OR entry_id = ?",
            (checkpoint, epoch, seq, f"rule:clone:{checkpoint}/{epoch}/{seq}"),
        ).fetchall()
        return [_alert_decoder.decode(body) for (body,) in rows]

    async def mark_dispatched(self, alert_ids: list[str]) -> None:
        now = time.time()

        def job(db: sqlite_utils.Database) -> None:
            db.conn.executemany(
                "UPDATE alerts SET dispatched_at=? WHERE alert_id=? AND dispatched_at IS NULL",
                [(now, a) for a in alert_ids],
            )

        await self._writer.run(job)

    # -- read side ---------------------------------------------------------------------------------
    def _read(self) -> sqlite_utils.Database:
        return open_database(self.path, synchronous="NORMAL")

    def read(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """Run a read-only query on a connection of its own (call it via asyncio.to_thread)."""
        db = self._read()
        try:
            return fn(db)
        finally:
            db.conn.close()

    def counts(self) -> Counts:
        def q(db: sqlite_utils.Database) -> tuple[int, int]:
            one = lambda sql: db.conn.execute(sql).fetchone()[0]  # noqa: E731
            return one("SELECT count(*) FROM alerts"), one("SELECT count(*) FROM dead_letters")

        alerts, dead = self.read(q)
        record = self.record.counts()
        return Counts(record.reads, record.passages, alerts, dead)

    def record_counts(self) -> RecordCounts:
        return self.record.counts()

    def purge_before(self, cutoff: dt.date) -> list[dt.date]:
        """Drop every day of plain reads and passages before ``cutoff``; alerts and hits stay."""
        return self.record.purge_before(cutoff)

    # -- backup and restore ---------------------------------------------------------------------------
    def backup(self, dest: Path, *, lock_timeout_s: float = BUSY_TIMEOUT_S) -> BackupCut:
        """Copy hub.db and every day file into the empty folder ``dest`` as one consistent cut.

        Works from any process, the hub running or not. Every commit of the hub's writer begins with
        ``BEGIN IMMEDIATE`` on hub.db (day files are attached to that connection), so holding hub.db's
        write lock holds the writer between two commits; meanwhile a read transaction is begun on
        hub.db and on each day file, and the lock is let go. The copies are then taken from those read
        transactions (SQLite's backup API) while the hub goes on writing.
        """
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "record").mkdir(exist_ok=True)
        lock = sqlite3.connect(str(self.path), isolation_level=None, timeout=lock_timeout_s)
        main = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, isolation_level=None, timeout=30)
        days: list[tuple[dt.date, sqlite3.Connection]] = []
        try:
            lock.execute("BEGIN IMMEDIATE")
            held = time.monotonic()
            try:
                main.execute("BEGIN")
                main.execute("SELECT count(*) FROM sqlite_master").fetchone()
                days = self.record.snapshots()
            finally:
                lock.execute("ROLLBACK")
                paused = time.monotonic() - held
            files = ["hub.db"]
            _copy(main, dest / "hub.db")
            reads = passages = 0
            for day, conn in days:
                name = f"record/{file_name(day)}"
                _copy(conn, dest / name)
                files.append(name)
                reads += conn.execute("SELECT coalesce(max(id), 0) FROM reads").fetchone()[0]
                passages += conn.execute("SELECT coalesce(max(id), 0) FROM passages").fetchone()[0]
            one = lambda sql: main.execute(sql).fetchone()  # noqa: E731
            head = one("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
            return BackupCut(
                files=files,
                reads=reads,
                passages=passages,
                alerts=one("SELECT count(*) FROM alerts")[0],
                audit_records=one("SELECT count(*) FROM audit")[0],
                audit_head=f"{head[0]}:{head[1]}" if head else f"0:{'0' * 64}",
                migrations=[v for (v,) in main.execute("SELECT version FROM schema_migrations ORDER BY 1")],
                paused_s=paused,
            )
        finally:
            for _, conn in days:
                conn.close()
            main.close()
            lock.close()

    @classmethod
    def prune_backup(cls, folder: Path, days_before: dt.date, hits_before: float) -> dict[str, Any]:
        """Apply the retention to a backup's copy: day files before ``days_before`` are deleted, and
        hub.db's hit rows (the hits retention's tables) older than ``hits_before``; never the audit trail."""
        removed = []
        for path in sorted((folder / "record").glob(f"*{FILE_SUFFIX}")):
            day = file_day(path.name)
            if day is not None and day < days_before:
                path.unlink()
                removed.append(f"record/{path.name}")
        conn = sqlite3.connect(str(folder / "hub.db"), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            # A backup of an earlier release may lack a table a later migration added: nothing to prune there.
            present = {
                name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            rows = {
                table: conn.execute(f"DELETE FROM {table} WHERE {column} < ?", (hits_before,)).rowcount
                for table, column in cls.HIT_TABLES
                if table in present
            }
            conn.execute("COMMIT")
            if any(rows.values()):
                conn.execute("VACUUM")  # deleted rows must not linger in free pages
        finally:
            conn.close()
        return {"removed": removed, "hit_rows": {k: v for k, v in rows.items() if v}}

    @staticmethod
    def restore_backup(folder: Path, files: list[str], data_dir: Path) -> None:
        """Copy a backup's files into ``data_dir`` (hub.db and record/), which must hold nothing yet."""
        if data_dir.exists() and any(data_dir.iterdir()):
            raise FileExistsError(f"{data_dir} is not empty: restore into an empty data folder")
        (data_dir / "record").mkdir(parents=True, exist_ok=True)
        for name in files:
            shutil.copyfile(folder / name, data_dir / name)

    #: What the hits retention removes: (table, time column). The audit trail is never purged.
    HIT_TABLES = (
        ("alerts", "raised_at"),
        ("alert_outcomes", "acknowledged_at"),
        ("edge_hits", "raised_at"),
        ("events", "received_at"),
        ("webhook_deliveries", "at"),
        ("gaps", "received_at"),
        ("dead_letters", "received_at"),
        ("alert_folds", "raised_at"),
        ("kit_results", "received_at"),
        ("alert_receipts", "received_at"),
    )

    def purge_hits_before(self, cutoff: float) -> dict[str, int]:
        """Delete alerts, outcomes, edge hits, gap reports, dead letters and quick-test results older than
        ``cutoff`` (unix s)."""

        def job(db: sqlite_utils.Database) -> dict[str, int]:
            return {
                table: db.conn.execute(f"DELETE FROM {table} WHERE {column} < ?", (cutoff,)).rowcount
                for table, column in self.HIT_TABLES
            }

        return self._writer.submit(job).result()

    def undispatched_alerts(self) -> list[Alert]:
        return self.read(
            lambda db: [
                _alert_decoder.decode(b)
                for (b,) in db.conn.execute(
                    "SELECT body FROM alerts WHERE dispatched_at IS NULL "
                    "AND (dispatch_hub IS NULL OR dispatch_hub = ?) ORDER BY raised_at",
                    (self.hub,),
                )
            ]
        )

    def recent_alerts(self, limit: int = 100, include_covert: bool = True) -> list[Alert]:
        sql = "SELECT body FROM alerts"
        if not include_covert:
            sql += " WHERE action != 'covert'"
        sql += " ORDER BY raised_at DESC LIMIT ?"
        return self.read(lambda db: [_alert_decoder.decode(b) for (b,) in db.conn.execute(sql, (limit,))])

    def alerts_after(self, position: int, limit: int = 500) -> list[tuple[int, Alert]]:
        """Alerts after ``position`` (their rowid: one writer inserts them, in commit order), oldest first."""
        return self.read(
            lambda db: [
                (int(pos), _alert_decoder.decode(b))
                for pos, b in db.conn.execute(
                    "SELECT rowid, body FROM alerts WHERE rowid > ? ORDER BY rowid LIMIT ?", (position, limit)
                )
            ]
        )

    def touched_since(self, since: float, limit: int = 500) -> list[tuple[float, Alert]]:
        """The alerts with news stored at ``since`` or later (folds, outcomes, receipts, escalations), each
        with the time of its latest, oldest first."""
        sql = (
            "SELECT t.at, a.body FROM (SELECT id, max(at) AS at FROM ("
            "SELECT raised_at AS at, into_id AS id FROM alert_folds WHERE raised_at >= :s "
            "UNION ALL SELECT o.received_at, COALESCE(f.into_id, o.alert_id) FROM alert_outcomes o "
            "LEFT JOIN alert_folds f ON f.alert_id = o.alert_id WHERE o.received_at >= :s "
            "UNION ALL SELECT r.received_at, COALESCE(f.into_id, r.alert_id) FROM alert_receipts r "
            "LEFT JOIN alert_folds f ON f.alert_id = r.alert_id WHERE r.received_at >= :s "
            "UNION ALL SELECT at, target FROM audit WHERE actor = :actor AND at >= :s AND action = :action"
            ") GROUP BY id) t JOIN alerts a ON a.alert_id = t.id ORDER BY t.at LIMIT :limit"
        )
        args = {"s": since, "actor": ESCALATION_ACTOR, "action": ESCALATION_ACTION, "limit": limit}
        return self.read(
            lambda db: [(float(at), _alert_decoder.decode(b)) for at, b in db.conn.execute(sql, args)]
        )

    def alert_position(self) -> int:
        return int(
            self.read(lambda db: db.conn.execute("SELECT coalesce(max(rowid), 0) FROM alerts").fetchone()[0])
        )

    def outcomes(self, alert_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Each alert's outcome history, oldest first (with the outcomes of hits folded into it)."""
        cols = ("alert_id", "checkpoint", "outcome", "note", "officer", "acknowledged_at", "received_at")

        def q(db: sqlite_utils.Database) -> dict[str, list[dict[str, Any]]]:
            found: dict[str, list[dict[str, Any]]] = {}
            for i in range(0, len(alert_ids), 500):
                chunk = alert_ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                picked = ", ".join(f"o.{c}" for c in cols[1:])
                for row in db.conn.execute(
                    f"SELECT COALESCE(f.into_id, o.alert_id), {picked} FROM alert_outcomes o "
                    f"LEFT JOIN alert_folds f ON f.alert_id = o.alert_id WHERE o.alert_id IN ({marks}) "
                    f"OR o.alert_id IN (SELECT alert_id FROM alert_folds WHERE into_id IN ({marks})) "
                    "ORDER BY o.acknowledged_at",
                    (*chunk, *chunk),
                ):
                    found.setdefault(row[0], []).append(dict(zip(cols, row, strict=True)))
            return found

        return self.read(q)

    #: A receipt as the console gets it (docs/protocol.md, "Alarm receipts").
    RECEIPT_COLUMNS = (
        "checkpoint",
        "shown_at",
        "shown_by",
        "acknowledged_at",
        "outcome",
        "officer",
        "received_at",
    )

    @classmethod
    def insert_receipt(
        cls, db: sqlite_utils.Database, receipt: AlertReceipt, received_at: float
    ) -> dict[str, Any]:
        """Inside a writer job: keep an alarm receipt (the earliest showing, the latest acknowledgement per
        alert and checkpoint) and return it as the console's frame: under the alert the console shows (the
        open alert a folded hit went into), with that alert's list and action when the hub has it."""
        db.conn.execute(
            """INSERT INTO alert_receipts (alert_id, checkpoint, shown_at, shown_by, acknowledged_at, outcome,
                   officer, received_at) VALUES (?,?,?,?,?,?,?,?)
               ON CONFLICT (alert_id, checkpoint) DO UPDATE SET
                   shown_at = CASE WHEN alert_receipts.shown_at IS NULL THEN excluded.shown_at
                       WHEN excluded.shown_at IS NULL THEN alert_receipts.shown_at
                       ELSE MIN(alert_receipts.shown_at, excluded.shown_at) END,
                   shown_by = CASE WHEN alert_receipts.shown_by = '' THEN excluded.shown_by
                       ELSE alert_receipts.shown_by END,
                   outcome = CASE WHEN excluded.acknowledged_at >= COALESCE(alert_receipts.acknowledged_at, 0)
                       THEN excluded.outcome ELSE alert_receipts.outcome END,
                   officer = CASE WHEN excluded.acknowledged_at >= COALESCE(alert_receipts.acknowledged_at, 0)
                       THEN excluded.officer ELSE alert_receipts.officer END,
                   acknowledged_at = MAX(COALESCE(alert_receipts.acknowledged_at, excluded.acknowledged_at),
                       COALESCE(excluded.acknowledged_at, alert_receipts.acknowledged_at)),
                   received_at = excluded.received_at""",
            (
                receipt.alert_id,
                receipt.checkpoint,
                receipt.shown_at,
                receipt.shown_by,
                receipt.acknowledged_at,
                receipt.outcome,
                receipt.officer,
                received_at,
            ),
        )
        row = db.conn.execute(
            f"SELECT {', '.join(cls.RECEIPT_COLUMNS)} FROM alert_receipts WHERE alert_id=? AND checkpoint=?",
            (receipt.alert_id, receipt.checkpoint),
        ).fetchone()
        frame: dict[str, Any] = dict(zip(cls.RECEIPT_COLUMNS, row, strict=True))
        into = db.conn.execute(
            "SELECT into_id FROM alert_folds WHERE alert_id=?", (receipt.alert_id,)
        ).fetchone()
        frame["alert_id"] = into[0] if into else receipt.alert_id
        if into:
            frame["folded_id"] = receipt.alert_id
        known = db.conn.execute(
            "SELECT list_id, action FROM alerts WHERE alert_id=?", (frame["alert_id"],)
        ).fetchone()
        frame["list_id"], frame["action"] = known if known else (None, None)
        return frame

    def receipts(self, alert_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Each alert's receipts from the checkpoints (with those of hits folded into it), by checkpoint."""
        cols = self.RECEIPT_COLUMNS

        def q(db: sqlite_utils.Database) -> dict[str, list[dict[str, Any]]]:
            found: dict[str, list[dict[str, Any]]] = {}
            for i in range(0, len(alert_ids), 500):
                chunk = alert_ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                picked = ", ".join(f"r.{c}" for c in cols)
                for row in db.conn.execute(
                    f"SELECT COALESCE(f.into_id, r.alert_id), {picked} FROM alert_receipts r "
                    f"LEFT JOIN alert_folds f ON f.alert_id = r.alert_id WHERE r.alert_id IN ({marks}) "
                    f"OR r.alert_id IN (SELECT alert_id FROM alert_folds WHERE into_id IN ({marks})) "
                    "ORDER BY r.checkpoint",
                    (*chunk, *chunk),
                ):
                    found.setdefault(row[0], []).append(
                        {"alert_id": row[0], **dict(zip(cols, row[1:], strict=True))}
                    )
            return found

        return self.read(q)

    def gaps(self, checkpoint: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Reads the edges reported dropped, newest first."""
        sql = "SELECT checkpoint, epoch, lo, hi, count, reason, dropped_at, received_at FROM gaps"
        args: tuple[Any, ...] = ()
        if checkpoint is not None:
            sql += " WHERE checkpoint = ?"
            args = (checkpoint,)
        sql += " ORDER BY received_at DESC, lo DESC LIMIT ?"
        cols = ("checkpoint", "epoch", "lo", "hi", "count", "reason", "dropped_at", "received_at")
        return self.read(
            lambda db: [dict(zip(cols, row, strict=True)) for row in db.conn.execute(sql, (*args, limit))]
        )

    def kit_results(
        self,
        checkpoint: str | None = None,
        since: float | None = None,
        until: float | None = None,
        result: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Quick-test results, newest first (the subject only as hash and last four)."""
        where, args = [], []
        for cond, value in (
            ("checkpoint = ?", checkpoint),
            ("sampled_at >= ?", since),
            ("sampled_at < ?", until),
            ("result = ?", result),
        ):
            if value is not None:
                where.append(cond)
                args.append(value)
        sql = (
            "SELECT checkpoint, epoch, seq, officer, person_hits, body, received_at FROM kit_results"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY sampled_at DESC LIMIT ?"
        )

        def q(db: sqlite_utils.Database) -> list[dict[str, Any]]:
            out = []
            for cp, epoch, seq, officer, hits, body, received in db.conn.execute(sql, (*args, limit)):
                record = msgspec.json.decode(body)
                record.update(
                    checkpoint=cp,
                    epoch=epoch,
                    seq=seq,
                    recorded_by=officer,
                    received_at=received,
                    person_hits=[h for h in hits.split(",") if h],
                    result=overall_call(msgspec.json.decode(body, type=KitResult).panels),
                )
                out.append(record)
            return out

        return self.read(q)

    def dead_letters(self, limit: int = 100, before_id: int | None = None) -> list[deadletters.DeadLetter]:
        return self.read(lambda db: deadletters.recent(db, limit, before_id))

    def checkpoints(self) -> list[dict[str, Any]]:
        def q(db: sqlite_utils.Database) -> list[dict[str, Any]]:
            rows = db.conn.execute(
                "SELECT checkpoint, online, epoch, status, last_seen, clock_offset_s, dropped_reads FROM checkpoints "
                "ORDER BY checkpoint"
            )
            return [
                {
                    "checkpoint": c,
                    "online": bool(o),
                    "epoch": e,
                    "status": msgspec.json.decode(s) if s else None,
                    "last_seen": ls,
                    "clock_offset_s": off,
                    "dropped_reads": dropped,
                }
                for c, o, e, s, ls, off, dropped in rows
            ]

        return self.read(q)


def _copy(source: sqlite3.Connection, target: Path) -> None:
    """The source connection's snapshot, page by page, into a new file (SQLite's backup API)."""
    out = sqlite3.connect(str(target))
    try:
        source.backup(out)
    finally:
        out.close()
