"""An empty PostgreSQL store filled with a SQLite hub's rows, for ``cordon store migrate`` (run by
``central.record.migrate`` over ``central.record.sqlite.source``).

**As the stores write them.** Every row is made as the PostgreSQL stores make it: ids that are looked up
as ``events.key`` makes them (a NUL as U+FFFD), free text as bytes (``events.b``), a plate as
``reads.plate_forms`` gives it, a read's day as its day file's, a passage's cameras and read numbers as
arrays. Positions the PostgreSQL stores count in commit order come from the order SQLite kept: an
alert's ``pos`` is its rowid in hub.db's ``alerts`` (both count up as alerts are stored), an outcome's
``n`` its rowid in ``alert_outcomes``; audit records and dead letters keep their ids (so the audit
chain's hashes check, and a dead letter is found by the id the console showed), and the identity
sequences go on after the largest. So the store holds what it would have held had the hub run on it from
the start.

**Resumable.** A part (a table, a day's reads or passages, the cached evidence) is copied a chunk at a
time, each chunk by ``COPY`` in one transaction with the part's row of ``store_migration`` (the rows
copied, the key to go on after, whether the part is done): after an interruption at any instant, the next
run goes on after the last chunk that committed, so nothing is copied twice or left out. A store that
holds anything else (another hub's data, or a migration from another folder) is refused.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
import psycopg
from psycopg import sql

from central.people.audit import Verdict
from central.record.postgresql.audit import PgAuditStore
from central.record.postgresql.connections import connect
from central.record.postgresql.events import key
from central.record.postgresql.partitions import partition_name
from central.record.postgresql.reads import PgReadStore, plate_forms
from central.record.postgresql.schema import DAY_COUNTS, hub_slot, migrate
from protocols.errors import CordonError

Convert = Callable[[Any], Any]
_enc = msgspec.json.Encoder()
_ints = msgspec.json.Decoder(list[int])
_texts = msgspec.json.Decoder(list[str])


class TargetError(CordonError, RuntimeError):
    """The PostgreSQL store cannot take this migration; the message says why."""


def _same(value: Any) -> Any:
    return value


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _bytes(value: Any) -> bytes | None:
    """Free text kept as bytes (``events.b``); a value SQLite already held as bytes stays as it is."""
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


def _key(value: Any) -> str | None:
    return None if value is None else key(str(value))


def _date(value: Any) -> dt.date:
    return dt.date.fromisoformat(value)


def _person_hits(value: Any) -> bytes:
    """hub.db keeps a quick test's person hits comma-joined, PostgreSQL as a JSON list (read back alike)."""
    return _enc.encode([h for h in (value or "").split(",") if h])


@dataclass(frozen=True, slots=True)
class Table:
    """How one table of hub.db is copied: each SQLite column's conversion (the PostgreSQL column has the same
    name), and the PostgreSQL column the SQLite rowid goes in, if any."""

    columns: dict[str, Convert]
    rowid_as: str | None = None
    identity: tuple[str, ...] = field(default=())
    """Columns PostgreSQL numbers itself (``GENERATED ALWAYS AS IDENTITY``): copied, then the sequence set."""
    into: str | None = None
    """The PostgreSQL table the rows go in when it is not the one of the same name."""
    fixed: dict[str, Any] = field(default_factory=dict)
    """PostgreSQL columns hub.db has not, and the value each copied row takes."""

    def target(self, table: str) -> str:
        return self.into or table


_ids = dict.fromkeys(("epoch", "seq"), _same)

#: Every table of hub.db, as the PostgreSQL stores hold it (``tests/test_store_migrate.py`` checks that
#: these are every table and column of both schemas).
HUB_TABLES: dict[str, Table] = {
    "events": Table({"checkpoint": _key, **_ids, "kind": _same, "digest": _bytes, "received_at": _same}),
    "alerts": Table(
        {
            "alert_id": _key,
            "checkpoint": _key,
            **_ids,
            "entry_id": _key,
            "list_id": _key,
            "action": _same,
            "priority": _same,
            "raised_at": _same,
            "body": _bytes,
            "dispatched_at": _same,
            "dispatch_hub": _same,
        },
        rowid_as="pos",
    ),
    "checkpoints": Table(
        {
            "checkpoint": _key,
            "online": _flag,
            "epoch": _same,
            "status": _bytes,
            "last_seen": _same,
            "clock_offset_s": _same,
            "feed_version": _same,
            "dropped_reads": _same,
        }
    ),
    "dead_letters": Table(
        {
            "id": _same,
            "received_at": _same,
            "source": _bytes,
            "checkpoint": _bytes,
            "reason": _bytes,
            "raw": _bytes,
            "raw_bytes": _same,
        },
        identity=("id",),
    ),
    "wl_lists": Table({"list_id": _key, "body": _bytes, "updated_at": _same, "updated_by": _bytes}),
    "wl_entries": Table(
        {
            "entry_id": _key,
            "list_id": _key,
            "plate": _key,
            "body": _bytes,
            "updated_at": _same,
            "updated_by": _bytes,
        }
    ),
    "feed_changes": Table({"version": _same, "at": _same, "actor": _bytes, "body": _bytes}),
    "list_changes": Table({"position": _same, "at": _same, "body": _bytes}),
    "hub_meta": Table({"key": _same, "value": _same}),
    "edge_hits": Table(
        {
            "checkpoint": _key,
            **_ids,
            "read_seq": _same,
            "alert_id": _key,
            "entry_id": _key,
            "list_id": _key,
            "kind": _key,
            "score": _same,
            "explanation": _bytes,
            "feed_version": _same,
            "matcher_version": _bytes,
            "raised_at": _same,
            "thumbnail": _bytes,
        }
    ),
    "gaps": Table(
        {
            "checkpoint": _key,
            **_ids,
            "lo": _same,
            "hi": _same,
            "count": _same,
            "reason": _bytes,
            "dropped_at": _same,
            "received_at": _same,
        }
    ),
    "webhook_deliveries": Table(
        {"hook": _same, "alert_id": _key, "outcome": _same, "detail": _bytes, "at": _same}
    ),
    "audit": Table(
        {
            "id": _same,
            "at": _same,
            **dict.fromkeys(("actor", "role", "action", "target", "reason", "detail"), _bytes),
            "prev_hash": _same,
            "hash": _same,
        }
    ),
    "users": Table(
        {
            "username": _same,
            "display_name": _bytes,
            "role": _same,
            "checkpoint": _same,
            "password_hash": _same,
            "disabled": _flag,
            "generation": _same,
            "token_hash": _same,
            "created_at": _same,
            "updated_at": _same,
        }
    ),
    "alert_outcomes": Table(
        {
            "checkpoint": _key,
            **_ids,
            "alert_id": _key,
            "outcome": _same,
            "note": _bytes,
            "officer": _bytes,
            "acknowledged_at": _same,
            "alert_raised_at": _same,
            "received_at": _same,
        },
        rowid_as="n",
        identity=("n",),
    ),
    "alert_folds": Table(
        {"alert_id": _key, "into_id": _key, "checkpoint": _key, "captured_at": _same, "raised_at": _same}
    ),
    "kit_results": Table(
        {
            "checkpoint": _key,
            **_ids,
            "result_id": _bytes,
            "id_hash": _key,
            "id_last4": _bytes,
            "kit_model": _bytes,
            "result": _same,
            "officer": _bytes,
            "sampled_at": _same,
            "read_at": _same,
            "kit_expired": _flag,
            "outside_read_window": _flag,
            "person_hits": _person_hits,
            "body": _bytes,
            "received_at": _same,
        }
    ),
    # The counts one hub kept: the slot of a hub of no name (schema.hub_slot), as a PgStores of no name
    # would have kept them from the start.
    "daily_counts": Table(
        {"day": _date, "checkpoint": _key, "reads": _same, "passages": _same, "no_plate": _same},
        into="daily_slot_counts",
        fixed={"slot": hub_slot("")},
    ),
    "camera_samples": Table(
        {"day": _date, "checkpoint": _key, "camera": _key, "samples": _same, "stale": _same}
    ),
    "alert_receipts": Table(
        {
            "alert_id": _key,
            "checkpoint": _key,
            "shown_at": _same,
            "shown_by": _bytes,
            "acknowledged_at": _same,
            "outcome": _same,
            "officer": _bytes,
            "received_at": _same,
        }
    ),
}

#: A day file's reads and passages, as ``reads`` and ``passages`` on PostgreSQL hold them: each column's
#: conversion but the plate's, which becomes ``plate`` and ``plate_exact`` (``reads.plate_forms``); the
#: ``day`` column is the part's.
DAY_TABLES: dict[str, dict[str, Convert]] = {
    "reads": {
        **dict.fromkeys(("checkpoint", "epoch", "seq"), _same),
        "digest": _bytes,
        **dict.fromkeys(("camera_id", "camera_event_id"), _bytes),
        **dict.fromkeys(("captured_at", "edge_sent_at", "received_at"), _same),
        "plate_raw": _bytes,
        "plate_valid": bool,
        "plate_problem": _bytes,
        "no_plate": bool,
        **dict.fromkeys(("colour", "vehicle_type"), _bytes),
        **dict.fromkeys(("confidence", "lane"), _same),
        **dict.fromkeys(("direction", "attributes"), _bytes),
    },
    "passages": {
        **dict.fromkeys(("checkpoint", "epoch", "seq"), _same),
        "digest": _bytes,
        "no_plate": bool,
        **dict.fromkeys(("colour", "vehicle_type"), _bytes),
        **dict.fromkeys(("first_seen", "last_seen", "best_seq"), _same),
        "read_seqs": _ints.decode,
        "cameras": lambda text: [_bytes(c) for c in _texts.decode(text)],
        "received_at": _same,
    },
}
#: The cached evidence pictures, one row each.
EVIDENCE_COLUMNS = ("checkpoint", "epoch", "seq", "kind", "data", "kept_at")

#: Tables that a store holding any row of is not empty (what a migration must not be mixed into). Failed
#: logins, import jobs and evidence requests are left out: the hubs' passing state, not data (none is in hub.db).
DATA_TABLES = (
    *HUB_TABLES,
    "daily_slot_counts",
    "record_days",
    "record_day_counts",
    "reads",
    "passages",
    "plates",
    "evidence",
)
#: Tables ``cordon store migrate`` leaves alone.
NOT_COPIED = (
    "schema_migrations",
    "store_migration",
    "login_failures",
    "import_jobs",
    "evidence_requests",
    "hub_rates",
)


@dataclass(frozen=True, slots=True)
class Progress:
    """How far one part is: rows copied, the key to go on after (None: from the start), whether done."""

    copied: int = 0
    after: Any = None
    done: bool = False


@contextmanager
def _said(what: str) -> Iterator[None]:
    """A PostgreSQL error (a lost connection, a refused statement) as one line: what was being done, and
    what the server said."""
    try:
        yield
    except CordonError:
        raise
    except psycopg.Error as exc:
        raise TargetError(f"{what}: {' '.join(str(exc).split())}") from exc


def _day_row(day: dt.date, table: str, at: dict[str, int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A day file's read or passage (its key first, then its columns as ``at`` places them) as the row of
    ``day_columns(table)``."""
    steps = [(at[c], f) for c, f in DAY_TABLES[table].items()]
    plate = at["plate"]

    def row(r: Sequence[Any]) -> tuple[Any, ...]:
        return (day, *plate_forms(r[plate]), *(f(r[j]) for j, f in steps))

    return row


def day_columns(table: str) -> tuple[str, ...]:
    """The columns of a day's reads or passages on PostgreSQL, in the order ``_day_row`` makes them."""
    return ("day", "plate", "plate_exact", *DAY_TABLES[table])


class PgLoader:
    """The PostgreSQL side of a migration; ``open()`` connects and brings the schema up to date."""

    def __init__(self, dsn: str, *, utc_offset: str = "+08:00") -> None:
        self.dsn = dsn
        self.record = PgReadStore(dsn, utc_offset=utc_offset, pool_size=1)
        self._conn: psycopg.Connection | None = None
        self._column_types: dict[str, dict[str, str]] = {}

    def open(self) -> None:
        conn = connect(self.dsn, autocommit=True)  # each transaction is a `with conn.transaction()`
        try:
            with _said("cannot make the store's tables"):
                migrate(conn)
                self.record.start()
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def close(self) -> None:
        self.record.stop()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None:
            raise RuntimeError("open() the loader first")
        return self._conn

    @contextmanager
    def _transaction(self, what: str) -> Iterator[psycopg.Connection]:
        """One transaction of the loader's connection; what PostgreSQL refuses is said in one line."""
        with _said(what), self.conn.transaction():
            yield self.conn

    # -- whose store -------------------------------------------------------------------------------
    def claim(self, source: str) -> dict[str, Progress]:
        """The progress of a migration from ``source`` so far (empty for a new one); refused when the store
        holds a migration from elsewhere, or data that no migration put there."""
        with self._transaction("cannot read the store") as conn:
            sources = {s for (s,) in conn.execute("SELECT DISTINCT source FROM store_migration")}
            if sources - {source}:
                raise TargetError(
                    f"the PostgreSQL store holds a migration from {', '.join(sorted(sources - {source}))}, "
                    f"not from {source}: migrate into an empty database"
                )
            if not sources:
                held = [
                    t
                    for t in DATA_TABLES
                    if conn.execute(
                        sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(t))
                    ).fetchone()[0]  # type: ignore[index]
                ]
                if held:
                    raise TargetError(
                        f"the PostgreSQL store already holds data ({', '.join(held)}) that is not from this "
                        "migration: cordon store migrate fills an empty store only (make a new database, "
                        "or drop this one's tables)"
                    )
            return {
                part: Progress(copied, None if after is None else json.loads(after), done)
                for part, copied, after, done in conn.execute(
                    "SELECT part, copied, after, done FROM store_migration"
                )
            }

    # -- copying ---------------------------------------------------------------------------------
    def converter(
        self, table: str, day: dt.date | None, columns: Sequence[str]
    ) -> tuple[str, tuple[str, ...], Callable[[Sequence[Any]], tuple[Any, ...]]]:
        """Where a part's rows go (the table, or the day's partition), its columns, and how a source row
        (its key first, then ``columns``) becomes one; refused for a table or column it does not know."""
        at = {name: i + 1 for i, name in enumerate(columns)}
        if day is not None:
            if set(columns) != {"plate", *DAY_TABLES[table]}:
                odd = sorted(set(columns) ^ {"plate", *DAY_TABLES[table]})
                raise TargetError(f"the day files' {table} have other columns than this release knows: {odd}")
            with _said(f"cannot make the partitions of {day}"):
                self.record.prepare([day])
            return partition_name(table, day), day_columns(table), _day_row(day, table, at)
        if table == "evidence":
            i = [at[c] for c in EVIDENCE_COLUMNS]
            return table, EVIDENCE_COLUMNS, lambda r: tuple(r[j] for j in i)
        spec = HUB_TABLES.get(table)
        if spec is None:
            raise TargetError(f"hub.db holds a table {table!r} that cordon store migrate does not know")
        if set(columns) != set(spec.columns):
            odd = sorted(set(columns) ^ set(spec.columns))
            raise TargetError(f"hub.db's table {table} has other columns than this release knows: {odd}")
        names = list(spec.columns)
        steps = [(at[c], spec.columns[c]) for c in names]
        into, fixed = spec.target(table), tuple(spec.fixed.values())
        names += spec.fixed
        if spec.rowid_as is None:
            return into, tuple(names), lambda r: (*(f(r[j]) for j, f in steps), *fixed)
        return into, (*names, spec.rowid_as), lambda r: (*(f(r[j]) for j, f in steps), *fixed, r[0])

    def copy(
        self,
        part: str,
        source: str,
        target: tuple[str, tuple[str, ...], Callable[[Sequence[Any]], tuple[Any, ...]]],
        rows: Sequence[Sequence[Any]],
        *,
        day: dt.date | None = None,
        done: bool = False,
    ) -> None:
        """One chunk of a part (``rows`` from the source, each with its key first) and its progress, in one
        transaction."""
        table, columns, make = target
        with self._transaction(f"{part}: PostgreSQL stopped the copy (what committed stays)") as conn:
            if rows:
                statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                    sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
                )
                made = [make(r) for r in rows]
                types = self._types(table, columns)  # asked before the COPY holds the connection
                with conn.cursor() as cur, cur.copy(statement) as copy:
                    copy.set_types(types)
                    for row in made:
                        copy.write_row(row)
                if day is not None:
                    kind = table.rsplit("_", 1)[0]  # the day's partition of reads or passages
                    conn.execute(  # the counts of a hub of no name, as in daily_counts
                        sql.SQL(
                            "INSERT INTO record_day_counts AS c (day, slot, {}) VALUES (%s, %s, %s) "
                            "ON CONFLICT (day, slot) DO UPDATE SET {} = c.{} + excluded.{}"
                        ).format(*(sql.Identifier(kind),) * 4),
                        (day, hub_slot(""), len(made)),
                    )
                    if kind == "reads":
                        conn.execute(
                            "INSERT INTO plates (day, plate, rplate) SELECT %s, p, reverse(p) "
                            "FROM unnest(%s::text[]) p ON CONFLICT DO NOTHING",
                            (day, sorted({m[1] for m in made})),  # the plate follows the day
                        )
            conn.execute(
                "INSERT INTO store_migration (part, source, copied, after, done, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (part) DO UPDATE SET "
                "copied = store_migration.copied + excluded.copied, "
                "after = coalesce(excluded.after, store_migration.after), done = excluded.done, "
                "updated_at = excluded.updated_at",
                (
                    part,
                    source,
                    len(rows),
                    json.dumps(rows[-1][0]) if rows else None,
                    done,
                    time.time(),
                ),
            )

    def _types(self, table: str, columns: tuple[str, ...]) -> list[str]:
        """The columns' types, as binary COPY must be told them."""
        found = self._column_types.get(table)
        if found is None:
            found = self._column_types[table] = dict(
                self.conn.execute(
                    "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
                    "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                    (table,),
                ).fetchall()
            )
        return [found[c] for c in columns]

    def finish(self) -> None:
        """After the last part: the identity sequences go on after the largest id copied; statistics for
        the planner."""
        with self._transaction("cannot set the identity sequences") as conn:
            for table, spec in HUB_TABLES.items():
                for column in spec.identity:
                    conn.execute(
                        sql.SQL(
                            "SELECT setval(pg_get_serial_sequence(%s, %s), max({})) FROM {} HAVING count(*) > 0"
                        ).format(sql.Identifier(column), sql.Identifier(table)),
                        (table, column),
                    )
        with _said("ANALYZE failed"):
            self.conn.execute("ANALYZE")

    # -- checking -------------------------------------------------------------------------------------
    def count(self, table: str, day: dt.date | None = None) -> int:
        with self._transaction(f"cannot count {table}") as conn:
            if day is None:
                table = HUB_TABLES[table].target(table) if table in HUB_TABLES else table
                query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                return int(conn.execute(query).fetchone()[0])  # type: ignore[index]
            query = sql.SQL("SELECT count(*) FROM {} WHERE day = %s").format(sql.Identifier(table))
            return int(conn.execute(query, (day,)).fetchone()[0])  # type: ignore[index]

    def record_days(self) -> dict[dt.date, tuple[int, int]]:
        """The days the record holds with the counts its inserts keep, every slot summed (what the hub's counts
        read)."""
        with self._transaction("cannot read record_days") as conn:
            return {
                d: (int(r), int(p))
                for d, r, p in conn.execute(
                    f"SELECT d.day, coalesce(sum(c.reads), 0), coalesce(sum(c.passages), 0) FROM record_days d "
                    f"LEFT JOIN {DAY_COUNTS} c ON c.day = d.day GROUP BY d.day"
                )
            }

    def verify_audit(self, head: tuple[int, str] | None) -> Verdict:
        with self._transaction("cannot read the audit trail") as conn:
            return PgAuditStore.verify(conn, head)
