"""The audit trail on PostgreSQL (table ``audit``; triggers refuse UPDATE, DELETE and TRUNCATE); the chain's
rule is ``central.people.audit``.

**Positions in commit order.** A record's id is the head's id plus one, and its hash links to the head, so
the head must be read and the record inserted with no other append in between, and the append that takes
id N must commit before any other can take N + 1. ``append`` takes one transaction-scoped advisory lock
(``pg_advisory_xact_lock``) just before it reads the head; PostgreSQL holds it until the transaction ends,
so appends queue one after the other and their ids follow their commits. A reader paging "since the last
id" therefore never skips a record that commits late: nothing after it can be visible before it is. The
head is read by a statement of its own after the lock is granted, so in READ COMMITTED (the store's
transactions) it sees the append committed just before. The lock is held from the first audit record of a
transaction to its commit, which is the commit of the writer's whole group (``PgStores`` commits the jobs
waiting together): a job writes its audit record last, after its slow work, as the SQLite writer (one
transaction at a time) makes every job do anyway, and another hub's append waits for the group.

Text is kept as bytes (a reason typed with a NUL comes back exactly, so its hash checks).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg

from central.people.audit import Record, Verdict, check_chain, next_record

#: The lock every append takes (any constant unique to Cordon's audit trail).
AUDIT_LOCK = 0x636F72646F6F

_COLUMNS = "id, at, actor, role, action, target, reason, detail, prev_hash, hash"
_TEXT = ("actor", "role", "action", "target", "reason", "detail")


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _record(row: tuple) -> Record:
    return Record(
        row[0], row[1], *(bytes(v).decode("utf-8", "surrogatepass") for v in row[2:8]), row[8], row[9]
    )


class PgAuditStore:
    """``AuditStore`` on PostgreSQL; every method takes the store's transaction (a psycopg connection)."""

    @staticmethod
    def append(
        tx: psycopg.Connection,
        actor: str,
        role: str,
        action: str,
        target: str = "",
        reason: str = "",
        detail: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> Record:
        """Append one record inside the caller's transaction and return it (its id is its commit's place)."""
        tx.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))
        rec = next_record(PgAuditStore.head(tx), actor, role, action, target, reason, detail, at)
        tx.execute(
            f"INSERT INTO audit ({_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (
                rec.id,
                rec.at,
                *(_b(getattr(rec, name)) for name in _TEXT),
                rec.prev_hash,
                rec.hash,
            ),
        )
        return rec

    @staticmethod
    def head(tx: psycopg.Connection) -> tuple[int, str] | None:
        """The last record's id and hash (None for an empty trail)."""
        row = tx.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else None

    @staticmethod
    def records(
        tx: psycopg.Connection,
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
            ("at >= %s", since),
            ("at < %s", until),
            ("actor = %s", None if actor is None else _b(actor)),
            ("action = %s", None if action is None else _b(action)),
            ("id < %s", before_id),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = f"SELECT {_COLUMNS} FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT %s"
            args.append(limit)
        return [_record(row) for row in tx.execute(sql, args)]  # type: ignore[arg-type]  # built from constants

    @staticmethod
    def _all(tx: psycopg.Connection) -> Iterator[Record]:
        # A server-side cursor (inside the caller's transaction): the whole trail is never held in memory.
        with tx.cursor(name="audit_walk") as cur:
            cur.itersize = 2000
            cur.execute(f"SELECT {_COLUMNS} FROM audit ORDER BY id")
            for row in cur:
                yield _record(row)

    @staticmethod
    def verify(tx: psycopg.Connection, head: tuple[int, str] | None = None) -> Verdict:
        """Walk the whole chain; the first broken link, missing id or unknown head is the problem."""

        def hash_of(id_: int) -> str | None:
            row = tx.execute("SELECT hash FROM audit WHERE id = %s", (id_,)).fetchone()
            return row[0] if row else None

        return check_chain(PgAuditStore._all(tx), hash_of, head)
