"""The hub's record: SQLite through one writer thread, explicit schema with numbered migrations.

Every event is inserted idempotently by its identity (checkpoint, epoch, seq) into ``events``,
the ledger of what was committed; its content digest lets a repeated identity with different
content be told apart from an honest resend (the first is a dead letter, the second a no-op).
Keep the public methods the interface: a PostgreSQL store can implement the same.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import sqlite_utils

from protocols.messages import Alert, EdgeHit, Event, Passage, PlateRead
from runtime import deadletters
from runtime.sqlwriter import SqlWriter, open_database

T = TypeVar("T")

MIGRATIONS: list[list[str]] = [
    # 1: the spine
    [
        """CREATE TABLE events (
            checkpoint TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
            kind TEXT NOT NULL, digest BLOB NOT NULL, received_at REAL NOT NULL,
            PRIMARY KEY (checkpoint, epoch, seq)) WITHOUT ROWID""",
        """CREATE TABLE reads (
            id INTEGER PRIMARY KEY, checkpoint TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
            camera_id TEXT NOT NULL, camera_event_id TEXT, captured_at REAL NOT NULL, edge_sent_at REAL,
            received_at REAL NOT NULL, plate TEXT NOT NULL, plate_raw TEXT NOT NULL, plate_valid INTEGER NOT NULL,
            plate_problem TEXT, no_plate INTEGER NOT NULL, colour TEXT, vehicle_type TEXT, confidence REAL,
            lane INTEGER, direction TEXT)""",
        "CREATE INDEX reads_plate ON reads (plate, captured_at)",
        "CREATE INDEX reads_time ON reads (captured_at)",
        """CREATE TABLE passages (
            id INTEGER PRIMARY KEY, checkpoint TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
            plate TEXT NOT NULL, no_plate INTEGER NOT NULL, colour TEXT, vehicle_type TEXT,
            first_seen REAL NOT NULL, last_seen REAL NOT NULL, best_seq INTEGER NOT NULL,
            read_seqs TEXT NOT NULL, cameras TEXT NOT NULL, received_at REAL NOT NULL)""",
        "CREATE INDEX passages_plate ON passages (plate, first_seen)",
        """CREATE TABLE alerts (
            alert_id TEXT PRIMARY KEY, checkpoint TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
            entry_id TEXT NOT NULL, list_id TEXT NOT NULL, action TEXT NOT NULL, priority INTEGER NOT NULL,
            raised_at REAL NOT NULL, body BLOB NOT NULL, dispatched_at REAL)""",
        "CREATE INDEX alerts_raised ON alerts (raised_at)",
        "CREATE INDEX alerts_undispatched ON alerts (dispatched_at) WHERE dispatched_at IS NULL",
        """CREATE TABLE checkpoints (
            checkpoint TEXT PRIMARY KEY, online INTEGER NOT NULL DEFAULT 0, epoch INTEGER,
            status TEXT, last_seen REAL, clock_offset_s REAL)""",
        *deadletters.SCHEMA,
    ],
    # 2: watchlists and the field feed
    [
        "CREATE TABLE wl_lists (list_id TEXT PRIMARY KEY, body BLOB NOT NULL, updated_at REAL NOT NULL, updated_by TEXT)",
        """CREATE TABLE wl_entries (entry_id TEXT PRIMARY KEY, list_id TEXT NOT NULL, plate TEXT NOT NULL,
            body BLOB NOT NULL, updated_at REAL NOT NULL, updated_by TEXT)""",
        "CREATE INDEX wl_entries_list ON wl_entries (list_id)",
        "CREATE INDEX wl_entries_plate ON wl_entries (plate)",
        "CREATE TABLE feed_changes (version INTEGER PRIMARY KEY, at REAL NOT NULL, actor TEXT, body BLOB NOT NULL)",
        "CREATE TABLE hub_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "ALTER TABLE checkpoints ADD COLUMN feed_version INTEGER",
        """CREATE TABLE edge_hits (checkpoint TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
            read_seq INTEGER NOT NULL, alert_id TEXT NOT NULL, entry_id TEXT NOT NULL, list_id TEXT NOT NULL,
            kind TEXT NOT NULL, score REAL NOT NULL, explanation TEXT NOT NULL, feed_version INTEGER NOT NULL,
            matcher_version TEXT NOT NULL, raised_at REAL NOT NULL, PRIMARY KEY (checkpoint, epoch, seq))""",
        "CREATE INDEX edge_hits_read ON edge_hits (checkpoint, epoch, read_seq)",
    ],
    # 3: ingest looks a read up by its identity (reconciling edge hits) for every read and hit it stores;
    # without this index each lookup scanned the whole reads table, so ingest slowed as the record grew
    [
        "CREATE INDEX IF NOT EXISTS reads_identity ON reads (checkpoint, epoch, seq)",
    ],
]

_encoder = msgspec.json.Encoder()
_alert_decoder = msgspec.json.Decoder(type=Alert)


def digest(event: Event) -> bytes:
    return hashlib.blake2b(_encoder.encode(event), digest_size=16).digest()


def migrate(db: sqlite_utils.Database) -> None:
    """Apply the migrations this file has not seen yet, each in its own transaction."""
    db.conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
    done = {v for (v,) in db.conn.execute("SELECT version FROM schema_migrations")}
    for version, statements in enumerate(MIGRATIONS, start=1):
        if version in done:
            continue
        db.conn.execute("BEGIN IMMEDIATE")
        for statement in statements:
            db.conn.execute(statement)
        db.conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
        db.conn.execute("COMMIT")


class Outcome(msgspec.Struct):
    """What happened to one event of a batch."""

    inserted: bool
    dead_letter: str | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    reads: int
    passages: int
    alerts: int
    dead_letters: int


class HubStore:
    """Write side (one writer thread) and read side (short-lived connections) of the hub record."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer = SqlWriter(self.path, name="hub-store", setup=migrate)

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer.start()

    def stop(self) -> None:
        self._writer.stop()

    @property
    def writer_error(self) -> str | None:
        return self._writer.last_error

    def submit(self, job: Callable[[sqlite_utils.Database], T]):  # noqa: ANN201 - concurrent Future[T]
        """Run a job in the writer thread (used by ingest, which works from the MQTT thread)."""
        return self._writer.submit(job)

    async def run(self, job: Callable[[sqlite_utils.Database], T]) -> T:
        return await self._writer.run(job)

    # -- write helpers, called inside writer jobs ----------------------------------------------
    @staticmethod
    def insert_event(db: sqlite_utils.Database, checkpoint: str, epoch: int, event: Event,
                     edge_sent_at: float, received_at: float) -> Outcome:
        """Insert idempotently; a reused identity with other content comes back as a dead letter."""
        kind = "read" if isinstance(event, PlateRead) else "passage" if isinstance(event, Passage) else "hit"
        d = digest(event)
        cur = db.conn.execute(
            "INSERT OR IGNORE INTO events (checkpoint, epoch, seq, kind, digest, received_at) VALUES (?,?,?,?,?,?)",
            (checkpoint, epoch, event.seq, kind, d, received_at))
        if cur.rowcount == 0:
            (existing,) = db.conn.execute(
                "SELECT digest FROM events WHERE checkpoint=? AND epoch=? AND seq=?",
                (checkpoint, epoch, event.seq)).fetchone()
            if existing == d:
                return Outcome(inserted=False)
            return Outcome(inserted=False, dead_letter=(
                f"event {checkpoint}/{epoch}/{event.seq} was already stored with different content"))
        if isinstance(event, PlateRead):
            db.conn.execute(
                """INSERT INTO reads (checkpoint, epoch, seq, camera_id, camera_event_id, captured_at, edge_sent_at,
                received_at, plate, plate_raw, plate_valid, plate_problem, no_plate, colour, vehicle_type, confidence,
                lane, direction) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (checkpoint, epoch, event.seq, event.camera_id, event.camera_event_id, event.captured_at,
                 edge_sent_at, received_at, event.plate, event.plate_raw, event.plate_valid, event.plate_problem,
                 event.no_plate, event.colour, event.vehicle_type, event.confidence, event.lane, event.direction))
        elif isinstance(event, EdgeHit):
            db.conn.execute(
                """INSERT INTO edge_hits (checkpoint, epoch, seq, read_seq, alert_id, entry_id, list_id, kind, score,
                explanation, feed_version, matcher_version, raised_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (checkpoint, epoch, event.seq, event.read_seq, event.alert_id, event.entry_id, event.list_id,
                 event.kind, event.score, event.explanation, event.feed_version, event.matcher_version,
                 event.raised_at))
        elif isinstance(event, Passage):
            db.conn.execute(
                """INSERT INTO passages (checkpoint, epoch, seq, plate, no_plate, colour, vehicle_type, first_seen,
                last_seen, best_seq, read_seqs, cameras, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (checkpoint, epoch, event.seq, event.plate, event.no_plate, event.colour, event.vehicle_type,
                 event.first_seen, event.last_seen, event.best_seq, _encoder.encode(event.read_seqs).decode(),
                 _encoder.encode(event.cameras).decode(), received_at))
        return Outcome(inserted=True)

    @staticmethod
    def insert_alert(db: sqlite_utils.Database, alert: Alert) -> bool:
        cur = db.conn.execute(
            """INSERT OR IGNORE INTO alerts (alert_id, checkpoint, epoch, seq, entry_id, list_id, action, priority,
            raised_at, body) VALUES (?,?,?,?,?,?,?,?,?,?)""",
            (alert.alert_id, alert.checkpoint, alert.epoch, alert.seq, alert.hit.entry_id, alert.hit.list_id,
             alert.hit.action, alert.hit.priority, alert.raised_at, _encoder.encode(alert)))
        return cur.rowcount == 1

    @staticmethod
    def update_checkpoint(db: sqlite_utils.Database, checkpoint: str, **fields: Any) -> None:
        columns = ["checkpoint", *fields]
        updates = ", ".join(f"{c}=excluded.{c}" for c in fields)
        db.conn.execute(
            f"INSERT INTO checkpoints ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT(checkpoint) DO UPDATE SET {updates}", (checkpoint, *fields.values()))

    async def mark_dispatched(self, alert_ids: list[str]) -> None:
        now = time.time()

        def job(db: sqlite_utils.Database) -> None:
            db.conn.executemany("UPDATE alerts SET dispatched_at=? WHERE alert_id=? AND dispatched_at IS NULL",
                                [(now, a) for a in alert_ids])

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
        def q(db: sqlite_utils.Database) -> Counts:
            one = lambda sql: db.conn.execute(sql).fetchone()[0]  # noqa: E731
            return Counts(one("SELECT count(*) FROM reads"), one("SELECT count(*) FROM passages"),
                          one("SELECT count(*) FROM alerts"), one("SELECT count(*) FROM dead_letters"))

        return self.read(q)

    def undispatched_alerts(self) -> list[Alert]:
        return self.read(lambda db: [_alert_decoder.decode(b) for (b,) in db.conn.execute(
            "SELECT body FROM alerts WHERE dispatched_at IS NULL ORDER BY raised_at")])

    def recent_alerts(self, limit: int = 100, include_covert: bool = True) -> list[Alert]:
        sql = "SELECT body FROM alerts"
        if not include_covert:
            sql += " WHERE action != 'covert'"
        sql += " ORDER BY raised_at DESC LIMIT ?"
        return self.read(lambda db: [_alert_decoder.decode(b) for (b,) in db.conn.execute(sql, (limit,))])

    def dead_letters(self, limit: int = 100, before_id: int | None = None) -> list[deadletters.DeadLetter]:
        return self.read(lambda db: deadletters.recent(db, limit, before_id))

    def checkpoints(self) -> list[dict[str, Any]]:
        def q(db: sqlite_utils.Database) -> list[dict[str, Any]]:
            rows = db.conn.execute(
                "SELECT checkpoint, online, epoch, status, last_seen, clock_offset_s FROM checkpoints ORDER BY checkpoint")
            return [{"checkpoint": c, "online": bool(o), "epoch": e,
                     "status": msgspec.json.decode(s) if s else None, "last_seen": ls, "clock_offset_s": off}
                    for c, o, e, s, ls, off in rows]

        return self.read(q)
