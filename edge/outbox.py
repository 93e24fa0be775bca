"""The edge's durable outbox: every event is committed here before anyone is told it exists.

An event is identified by (checkpoint, epoch, seq). The epoch is chosen when the outbox file is
created, so a replaced disk starts a new epoch and can never collide with old sequence numbers.
An event leaves the outbox only when the hub acknowledged it, by range.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import sqlite_utils

from protocols.messages import EdgeHit, Event, Passage, PlateRead
from runtime.sqlwriter import SqlWriter

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    priority INTEGER NOT NULL,
    created_at REAL NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_priority ON outbox (priority, seq);
"""

#: Replay order: lower goes first. Alerts, hits and positive tests before plain reads.
PRIORITY_HIT = 0
PRIORITY_READ = 5
PRIORITY_PASSAGE = 6

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(type=Event)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(body: bytes) -> Event:
    return _decoder.decode(body)


@dataclass(frozen=True, slots=True)
class Pending:
    priority: int
    seq: int


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    oldest_created_at: float | None


class OutboxStore:
    """SQLite outbox with one writer thread; ``append`` returns after the commit."""

    def __init__(self, path: str | Path) -> None:
        self._writer = SqlWriter(path, name="outbox", setup=self._setup)
        self.epoch = 0
        self._next_seq = 1
        self._initial: list[Pending] = []

    def _setup(self, db: sqlite_utils.Database) -> None:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.conn.execute(statement)
        row = db.conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        if row is None:
            # Milliseconds plus randomness: unique per disk without trusting the clock alone.
            epoch = int(time.time() * 1000) * 1000 + secrets.randbelow(1000)
            db.conn.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?)", (str(epoch),))
        else:
            epoch = int(row[0])
        last = db.conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
        top = db.conn.execute("SELECT max(seq) FROM outbox").fetchone()[0] or 0
        self.epoch = epoch
        self._next_seq = max(int(last[0]) if last else 0, top) + 1
        self._initial = [Pending(p, s) for p, s in
                         db.conn.execute("SELECT priority, seq FROM outbox ORDER BY priority, seq")]

    def start(self) -> None:
        self._writer.start()

    @property
    def writer_error(self) -> str | None:
        """The last commit failure, cleared by the next successful commit."""
        return self._writer.last_error

    def stop(self) -> None:
        self._writer.stop()

    def take_initial_pending(self) -> list[Pending]:
        """What was in the outbox at start-up (unacknowledged events of earlier runs)."""
        pending, self._initial = self._initial, []
        return pending

    async def append(self, events: Sequence[Event], priorities: Sequence[int]) -> list[Event]:
        """Give each event its sequence number and commit it; return the numbered events."""

        def job(db: sqlite_utils.Database) -> list[Event]:
            numbered: list[Event] = []
            rows = []
            now = time.time()
            for event, priority in zip(events, priorities, strict=True):
                seq = self._next_seq
                self._next_seq += 1
                event = msgspec.structs.replace(event, seq=seq)
                numbered.append(event)
                rows.append((seq, priority, now, _kind(event), encode_event(event)))
            db.conn.executemany(
                "INSERT INTO outbox (seq, priority, created_at, kind, body) VALUES (?, ?, ?, ?, ?)", rows)
            # Remember the high-water mark even after the rows are acknowledged and deleted.
            db.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_seq', ?)",
                            (str(self._next_seq - 1),))
            return numbered

        return await self._writer.run(job)

    async def acknowledge(self, ranges: Iterable[tuple[int, int]]) -> int:
        """Delete what the hub has committed; return how many events left the outbox."""
        spans = [(lo, hi) for lo, hi in ranges if lo <= hi]

        def job(db: sqlite_utils.Database) -> int:
            removed = 0
            for lo, hi in spans:
                removed += db.conn.execute("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", (lo, hi)).rowcount
            return removed

        return await self._writer.run(job)

    async def load(self, seqs: Sequence[int]) -> dict[int, bytes]:
        """Bodies of the given events (those still in the outbox)."""

        def job(db: sqlite_utils.Database) -> dict[int, bytes]:
            found: dict[int, bytes] = {}
            for i in range(0, len(seqs), 500):
                chunk = seqs[i:i + 500]
                marks = ",".join("?" * len(chunk))
                for seq, body in db.conn.execute(f"SELECT seq, body FROM outbox WHERE seq IN ({marks})", chunk):
                    found[seq] = body
            return found

        return await self._writer.run(job)

    async def stats(self) -> OutboxStats:
        def job(db: sqlite_utils.Database) -> OutboxStats:
            depth, oldest = db.conn.execute("SELECT count(*), min(created_at) FROM outbox").fetchone()
            return OutboxStats(depth, oldest)

        return await self._writer.run(job)


def _kind(event: Event) -> str:
    if isinstance(event, PlateRead):
        return "read"
    if isinstance(event, Passage):
        return "passage"
    if isinstance(event, EdgeHit):
        return "hit"
    raise TypeError(f"unknown event type {type(event).__name__}")
