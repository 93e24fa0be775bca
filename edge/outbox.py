"""The edge's durable outbox: every event is committed here before anyone is told it exists.

An event is identified by (checkpoint, epoch, seq). The epoch is chosen when the outbox file is
created, so a replaced disk starts a new epoch and can never collide with old sequence numbers.
An event leaves the outbox only when the hub acknowledged it, by range.

Replay order is by priority, then sequence: hits and gap reports first, then reads oldest to
newest, then passages. The outbox has an optional quota on the bytes of the events it holds
(``[outbox] max_bytes``). Past it, appending drops the oldest *plain* reads (never a hit, nor a
read that caused one, nor a gap report) in the same transaction, and records what it dropped as a
``Gap`` event that travels to the hub like any other, so the record shows the hole and why.

The counters (last sequence number, bytes held, reads dropped) live in ``meta`` and change in the
transaction that makes them true: appends that share one group commit each see the others' numbers,
and a commit that fails (a full disk, the very case the quota exists for) takes them back with the rows.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import sqlite_utils

from protocols.messages import (
    Event,
    Gap,
    event_kind,
    seq_ranges,
)
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

log = logging.getLogger(__name__)

#: Replay order: lower goes first. Alerts, hits and positive tests before plain reads.
PRIORITY_HIT = 0
PRIORITY_READ = 5
PRIORITY_PASSAGE = 6

#: Only events of this priority may be dropped past the quota: plain reads.
DROPPABLE = PRIORITY_READ
MAX_GAP_RANGES = 1000
GAP_REASON = "outbox disk quota reached: oldest plain reads dropped"

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
    bytes: int = 0
    dropped_total: int = 0


@dataclass(frozen=True, slots=True)
class Appended:
    """The caller's events, numbered, and everything that now waits for the uplink (a gap too)."""

    events: list[Event]
    pending: list[Pending]
    gaps: list[Gap]


@dataclass(slots=True)
class _Counters:
    """The outbox's counters as the current transaction sees them (``meta``; writer thread)."""

    last_seq: int  # kept after its rows are acknowledged and deleted: a number is never reused
    bytes: int
    dropped_total: int

    @classmethod
    def read(cls, db: sqlite_utils.Database) -> _Counters:
        values = dict(
            db.conn.execute("SELECT key, value FROM meta WHERE key IN ('last_seq', 'bytes', 'dropped_total')")
        )
        return cls(*(int(values.get(key, 0)) for key in ("last_seq", "bytes", "dropped_total")))

    def write(self, db: sqlite_utils.Database) -> None:
        db.conn.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [
                ("last_seq", str(self.last_seq)),
                ("bytes", str(self.bytes)),
                ("dropped_total", str(self.dropped_total)),
            ],
        )

    def take_seq(self) -> int:
        self.last_seq += 1
        return self.last_seq


class OutboxStore:
    """SQLite outbox with one writer thread; ``append`` returns after the commit."""

    def __init__(self, path: str | Path, max_bytes: int | None = None) -> None:
        self._writer = SqlWriter(path, name="outbox", setup=self._setup)
        self.max_bytes = max_bytes or None
        self.epoch = 0
        self._initial: list[Pending] = []
        self.dropped_total = 0  # as of the last commit

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
        counters = _Counters.read(db)
        top = db.conn.execute("SELECT max(seq) FROM outbox").fetchone()[0] or 0
        counters.last_seq = max(counters.last_seq, top)
        counters.bytes = db.conn.execute("SELECT coalesce(sum(length(body)), 0) FROM outbox").fetchone()[0]
        counters.write(db)
        self.epoch = epoch
        self._initial = [
            Pending(p, s)
            for p, s in db.conn.execute("SELECT priority, seq FROM outbox ORDER BY priority, seq")
        ]
        self.dropped_total = counters.dropped_total

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

    async def append(self, events: Sequence[Event], priorities: Sequence[int]) -> Appended:
        """Give each event its sequence number and commit it (dropping old plain reads past the quota).

        A read that caused a hit comes at hit priority (the edge matches before it commits), so it
        replays first and is never dropped."""

        def job(db: sqlite_utils.Database) -> tuple[Appended, int]:
            counters = _Counters.read(db)
            numbered: list[Event] = []
            rows = []
            now = time.time()
            for event, priority in zip(events, priorities, strict=True):
                event = msgspec.structs.replace(event, seq=counters.take_seq())
                numbered.append(event)
                rows.append((event.seq, priority, now, event_kind(event), encode_event(event)))
            added = sum(len(r[4]) for r in rows)
            gaps = self._make_room(db, counters, added, now) if self.max_bytes is not None else []
            for gap in gaps:
                body = encode_event(gap)
                rows.append((gap.seq, PRIORITY_HIT, now, "gap", body))
                added += len(body)
            db.conn.executemany(
                "INSERT INTO outbox (seq, priority, created_at, kind, body) VALUES (?, ?, ?, ?, ?)", rows
            )
            counters.bytes += added
            counters.write(db)
            pending = [Pending(r[1], r[0]) for r in rows]
            return Appended(numbered, pending, gaps), counters.dropped_total

        appended, dropped_total = await self._writer.run(job)
        if appended.gaps:  # only now, committed, did they leave the outbox
            self.dropped_total = dropped_total
            spans = [span for gap in appended.gaps for span in gap.ranges]
            log.warning(
                "outbox quota of %d bytes reached: dropped %d oldest plain reads (seq %s); %d dropped in all",
                self.max_bytes,
                sum(gap.count for gap in appended.gaps),
                _describe(spans),
                dropped_total,
            )
        return appended

    def _make_room(
        self, db: sqlite_utils.Database, counters: _Counters, adding: int, now: float
    ) -> list[Gap]:
        """Drop the oldest plain reads until ``adding`` more bytes fit under the quota (writer thread)."""
        assert self.max_bytes is not None
        excess = counters.bytes + adding - self.max_bytes
        if excess <= 0:
            return []
        dropped: list[int] = []
        freed = 0
        while freed < excess:
            rows = db.conn.execute(
                "SELECT seq, length(body) FROM outbox WHERE priority = ? ORDER BY seq LIMIT 500", (DROPPABLE,)
            ).fetchall()
            if not rows:
                break
            for seq, size in rows:
                if freed >= excess:
                    break
                dropped.append(seq)
                freed += size
            # The chosen rows are the lowest sequence numbers of their priority: one range delete.
            db.conn.execute("DELETE FROM outbox WHERE priority = ? AND seq <= ?", (DROPPABLE, dropped[-1]))
        if freed < excess:
            log.error(
                "outbox over its quota by %d bytes and nothing left to drop but hits: keeping them",
                excess - freed,
            )
        if not dropped:
            return []
        counters.bytes -= freed
        counters.dropped_total += len(dropped)
        spans = seq_ranges(dropped)
        gaps = []
        for i in range(0, len(spans), MAX_GAP_RANGES):
            part = spans[i : i + MAX_GAP_RANGES]
            gaps.append(
                Gap(
                    seq=counters.take_seq(),
                    ranges=part,
                    count=sum(hi - lo + 1 for lo, hi in part),
                    reason=GAP_REASON,
                    dropped_at=now,
                    dropped_total=counters.dropped_total,
                )
            )
        return gaps

    async def acknowledge(self, ranges: Iterable[tuple[int, int]]) -> int:
        """Delete what the hub has committed; return how many events left the outbox."""
        spans = [(lo, hi) for lo, hi in ranges if lo <= hi]

        def job(db: sqlite_utils.Database) -> int:
            counters = _Counters.read(db) if self.max_bytes is not None else None
            removed = 0
            for lo, hi in spans:
                if counters is not None:
                    counters.bytes -= db.conn.execute(
                        "SELECT coalesce(sum(length(body)), 0) FROM outbox WHERE seq BETWEEN ? AND ?",
                        (lo, hi),
                    ).fetchone()[0]
                removed += db.conn.execute("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", (lo, hi)).rowcount
            if counters is not None:
                counters.write(db)
            return removed

        return await self._writer.run(job)

    async def load(self, seqs: Sequence[int]) -> dict[int, bytes]:
        """Bodies of the given events (those still in the outbox)."""

        def job(db: sqlite_utils.Database) -> dict[int, bytes]:
            found: dict[int, bytes] = {}
            for i in range(0, len(seqs), 500):
                chunk = seqs[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for seq, body in db.conn.execute(
                    f"SELECT seq, body FROM outbox WHERE seq IN ({marks})", chunk
                ):
                    found[seq] = body
            return found

        return await self._writer.run(job)

    async def stats(self) -> OutboxStats:
        def job(db: sqlite_utils.Database) -> OutboxStats:
            depth, oldest, size = db.conn.execute(
                "SELECT count(*), min(created_at), coalesce(sum(length(body)), 0) FROM outbox"
            ).fetchone()
            return OutboxStats(depth, oldest, size, _Counters.read(db).dropped_total)

        return await self._writer.run(job)


def _describe(spans: list[tuple[int, int]]) -> str:
    text = ", ".join(f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in spans[:5])
    return text + (f" and {len(spans) - 5} more ranges" if len(spans) > 5 else "")
