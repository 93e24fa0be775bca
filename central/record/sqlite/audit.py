"""The audit trail in hub.db (table ``audit``, its triggers refuse UPDATE and DELETE); the chain's rule is
``central.people.audit``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlite_utils

from central.people.audit import COLUMNS, Record, Verdict, check_chain, next_record


def append(
    db: sqlite_utils.Database,
    actor: str,
    role: str,
    action: str,
    target: str = "",
    reason: str = "",
    detail: dict[str, Any] | None = None,
    at: float | None = None,
) -> Record:
    """Append one record inside the caller's transaction (writer thread) and return it."""
    rec = next_record(head(db), actor, role, action, target, reason, detail, at)
    db.conn.execute(
        "INSERT INTO audit (id, at, actor, role, action, target, reason, detail, prev_hash, hash) "
        "VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            rec.id,
            rec.at,
            rec.actor,
            rec.role,
            rec.action,
            rec.target,
            rec.reason,
            rec.detail,
            rec.prev_hash,
            rec.hash,
        ),
    )
    return rec


def head(db: sqlite_utils.Database) -> tuple[int, str] | None:
    """The last record's id and hash (None for an empty trail)."""
    row = db.conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else None


def records(
    db: sqlite_utils.Database,
    *,
    since: float | None = None,
    until: float | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int | None = None,
    before_id: int | None = None,
) -> list[Record]:
    """Newest first, filtered."""
    where, args = [], []
    for clause, value in (
        ("at >= ?", since),
        ("at < ?", until),
        ("actor = ?", actor),
        ("action = ?", action),
        ("id < ?", before_id),
    ):
        if value is not None:
            where.append(clause)
            args.append(value)
    sql = "SELECT " + ", ".join(COLUMNS) + " FROM audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return [Record(*row) for row in db.conn.execute(sql, args)]


def _all(db: sqlite_utils.Database) -> Iterator[Record]:
    for row in db.conn.execute("SELECT " + ", ".join(COLUMNS) + " FROM audit ORDER BY id"):
        yield Record(*row)


def verify(db: sqlite_utils.Database, head: tuple[int, str] | None = None) -> Verdict:
    """Walk the whole chain; the first broken link, missing id or unknown head is the problem."""

    def hash_of(id_: int) -> str | None:
        row = db.conn.execute("SELECT hash FROM audit WHERE id = ?", (id_,)).fetchone()
        return row[0] if row else None

    return check_chain(_all(db), hash_of, head)


class SqliteAuditStore:
    """``AuditStore`` on hub.db: the functions above, as the store's ``audit``."""

    append = staticmethod(append)
    head = staticmethod(head)
    records = staticmethod(records)
    verify = staticmethod(verify)
