"""Dead letters: input that failed validation, kept with the reason and the raw bytes (bounded)."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import sqlite_utils

from .sqlwriter import SqlWriter

MAX_RAW_BYTES = 64 * 1024

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS dead_letters (
        id INTEGER PRIMARY KEY,
        received_at REAL NOT NULL,
        source TEXT NOT NULL,
        checkpoint TEXT,
        reason TEXT NOT NULL,
        raw BLOB NOT NULL,
        raw_bytes INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters (received_at)",
]


class DeadLetter(msgspec.Struct):
    id: int
    received_at: float
    source: str
    checkpoint: str | None
    reason: str
    raw_bytes: int
    raw_preview: str


def create_schema(db: sqlite_utils.Database) -> None:
    for statement in SCHEMA:
        db.conn.execute(statement)


def insert(
    db: sqlite_utils.Database,
    source: str,
    reason: str,
    raw: bytes,
    checkpoint: str | None = None,
    received_at: float | None = None,
) -> int:
    """Insert one dead letter inside the caller's transaction; return its id."""
    cur = db.conn.execute(
        "INSERT INTO dead_letters (received_at, source, checkpoint, reason, raw, raw_bytes) VALUES (?,?,?,?,?,?)",
        (received_at or time.time(), source[:200], checkpoint, reason[:2000], raw[:MAX_RAW_BYTES], len(raw)),
    )
    return int(cur.lastrowid or 0)


def recent(db: sqlite_utils.Database, limit: int = 100, before_id: int | None = None) -> list[DeadLetter]:
    sql = "SELECT id, received_at, source, checkpoint, reason, raw_bytes, raw FROM dead_letters"
    args: list[object] = []
    if before_id is not None:
        sql += " WHERE id < ?"
        args.append(before_id)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(limit)
    return [
        DeadLetter(i, t, s, c, r, n, bytes(raw[:2000]).decode("utf-8", "replace"))
        for i, t, s, c, r, n, raw in db.conn.execute(sql, args)
    ]


class DeadLetterStore:
    """A dead-letter file of its own (the edge's), so a flood of junk never stalls the outbox."""

    def __init__(self, path: str | Path, keep: int = 10_000) -> None:
        self._writer = SqlWriter(path, name="deadletters", synchronous="NORMAL", setup=create_schema)
        self._keep = keep
        self.count = 0

    def start(self) -> None:
        self._writer.start()

    def stop(self) -> None:
        self._writer.stop()

    async def record(self, source: str, reason: str, raw: bytes, checkpoint: str | None = None) -> int:
        keep = self._keep

        def job(db: sqlite_utils.Database) -> int:
            new_id = insert(db, source, reason, raw, checkpoint)
            if new_id % 100 == 0:
                db.conn.execute("DELETE FROM dead_letters WHERE id <= ?", (new_id - keep,))
            return new_id

        self.count += 1
        return await self._writer.run(job)

    async def recent(self, limit: int = 100) -> list[DeadLetter]:
        return await self._writer.run(lambda db: recent(db, limit))
