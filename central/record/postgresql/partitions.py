"""The days of the record on PostgreSQL, as partitions: ``DayPartitions``.

``reads``, ``passages`` and ``plates`` are partitioned by ``RANGE (day)``; a day's three partitions are
made when its first row comes (:meth:`DayPartitions.prepare`), analyzed once they hold rows
(:meth:`DayPartitions.grew`), and detached and dropped when the day expires
(:meth:`DayPartitions.purge_before`). Why each is done so (``ATTACH`` rather than ``CREATE ... PARTITION
OF``, ``DETACH ... CONCURRENTLY`` under ``lock_timeout``, the analysis of a young partition) is in the
docstring of :mod:`central.record.postgresql.reads`, which inserts and searches them. All DDL runs on a
connection of its own, outside any writer's transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Iterable, Sequence

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from central.record.postgresql.connections import alive, connect

log = logging.getLogger(__name__)

TABLES = ("reads", "passages", "plates")
_PARTITION = re.compile(r"(reads|passages|plates)_(\d{8})")
DAYS_LOCK = 0x636F72646F72
"""The advisory lock under which a day's partitions are made: hubs sharing the database make them one at a
time (two hubs that both met a new day raced to create the same table, and one's batch failed)."""
#: Rows in a day's new partition after which it is analyzed (:meth:`DayPartitions.grew`).
ANALYZE_AT = 1000
#: A purged day's row and every hub's counts of it, in one statement (a crash leaves both or neither).
_FORGET_DAY = (
    "WITH counts AS (DELETE FROM record_day_counts WHERE day = %s) DELETE FROM record_days WHERE day = %s"
)


def partition_name(table: str, day: dt.date) -> str:
    return f"{table}_{day:%Y%m%d}"


class DayPartitions:
    """The days whose partitions exist, and the DDL that makes, analyzes and drops them.

    ``known`` is what this process knows to be made; an insert for a day outside it prepares the day
    first (another hub may have made it already: then nothing is made again).
    """

    def __init__(self, dsn: str, lock_timeout_s: float) -> None:
        self.dsn = dsn
        self.lock_timeout_s = lock_timeout_s
        self._ddl: psycopg.Connection | None = None
        self._ddl_lock = threading.Lock()
        self._known: set[dt.date] = set()
        self._known_lock = threading.Lock()
        #: Rows sent to each of the reads' and passages' partitions this process made for a day, until the
        #: partition is analyzed (:meth:`grew`).
        self._young: dict[tuple[dt.date, str], int] = {}
        #: The analyses started (a thread each), for the tests.
        self.analyzed: list[tuple[dt.date, str]] = []

    # -- life ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Finish a purge or a day's set-up a crash interrupted; learn the days held."""
        with self._ddl_lock:
            conn = self._ddl_conn()
            self._recover(conn)
            held = {d for (d,) in conn.execute("SELECT day FROM record_days").fetchall()}
        with self._known_lock:
            self._known = held

    def stop(self) -> None:
        with self._ddl_lock:
            if self._ddl is not None:
                self._ddl.close()
                self._ddl = None

    @property
    def young(self) -> bool:
        """Whether a partition this process made is still waiting to be analyzed (:meth:`grew`)."""
        return bool(self._young)

    def missing(self, days: Iterable[dt.date]) -> list[dt.date]:
        """The days among ``days`` not known to have partitions, in order."""
        return sorted(set(days) - self._known)

    def _ddl_conn(self) -> psycopg.Connection:
        if self._ddl is None or not alive(self._ddl):
            if self._ddl is not None:
                self._ddl.close()
            self._ddl = None
            self._ddl = connect(self.dsn, autocommit=True)
            self._ddl.execute(f"SET lock_timeout = {int(self.lock_timeout_s * 1000)}")
        return self._ddl

    @staticmethod
    def _partitions(conn: psycopg.Connection) -> dict[str, bool | None]:
        """Every table named like a day's partition: True attached, None detach pending, False detached."""
        rows = conn.execute(
            "SELECT c.relname, i.inhdetachpending FROM pg_class c "
            "LEFT JOIN pg_inherits i ON i.inhrelid = c.oid "
            "WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace "
            "AND c.relname ~ '^(reads|passages|plates)_[0-9]{8}$'"
        ).fetchall()
        return {name: (None if pending else True) if pending is not None else False for name, pending in rows}

    # -- making -------------------------------------------------------------------------------------
    def prepare(self, days: Iterable[dt.date]) -> None:
        """Make the partitions of days that have none (outside the caller's transaction: DDL on a
        connection of its own, each day committed before it is used)."""
        wanted = self.missing(days)
        if not wanted:
            return
        with self._ddl_lock:
            conn = self._ddl_conn()
            parts = self._partitions(conn)
            for day in wanted:
                if day in self._known:
                    continue
                for table in TABLES:  # detached or pending: a leftover of an interrupted purge
                    name = partition_name(table, day)
                    if name in parts and parts[name] is not True:
                        self._drop(conn, table, name, parts[name])
                with conn.transaction():  # one commit for the day's three partitions and its row
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (DAYS_LOCK,))
                    made = self._partitions(conn)  # what another hub made meanwhile is not made again
                    for table in TABLES:
                        name = partition_name(table, day)
                        if made.get(name) is True:
                            continue
                        ident = sql.Identifier(name)
                        conn.execute(
                            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(
                                ident, sql.Identifier(table)
                            )
                        )
                        conn.execute(
                            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                                sql.Identifier(table),
                                ident,
                                sql.Literal(day),
                                sql.Literal(day + dt.timedelta(days=1)),
                            )
                        )
                    conn.execute("INSERT INTO record_days (day) VALUES (%s) ON CONFLICT DO NOTHING", (day,))
                    fresh = any(made.get(partition_name(t, day)) is not True for t in TABLES)
                with self._known_lock:
                    self._known.add(day)
                    if fresh:
                        self._young.update({(day, "reads"): 0, (day, "passages"): 0})

    def grew(self, tables_and_days: Sequence[tuple[str, dt.date]]) -> None:
        """Rows went into these partitions (``("reads", day)`` or ``("passages", day)``, one per row):
        analyze a day's new partition of reads (with its plates) or of passages once it holds
        ``ANALYZE_AT`` rows, in a thread of its own.

        The writer keeps generic plans (``connections.connect``), and the generic plan of a day's insert is
        made in the day's first seconds, when its partitions are empty and have no statistics: the lookup
        of an identity in the other table then used the ``(checkpoint, first_seen)`` index as readily as
        the unique one, and scanned every passage of the checkpoint for each read: 0.7 to 1.1 ms a row,
        growing with the day, until autovacuum analyzed the partition a minute or more later (found by
        ``cordon bench e2e --phases latency``: alert p99 of seconds). Analyzing a partition once it holds
        rows gives the planner the day's checkpoints, so the plan made again after it (the analysis
        invalidates it) looks identities up by the unique key; autovacuum keeps the statistics after that.
        Each partition is analyzed on its own rows: one analyzed while still empty (the passages come
        later than the reads) makes every plan scan it whole, as it grows."""
        counts: dict[tuple[dt.date, str], int] = {}
        for table, day in tables_and_days:
            key = (day, table)
            if key in self._young:
                counts[key] = counts.get(key, 0) + 1
        for key, n in counts.items():
            self._young[key] += n
            if self._young[key] >= ANALYZE_AT:
                del self._young[key]
                self.analyzed.append(key)
                threading.Thread(target=self._analyze, args=key, name=f"analyze {key}", daemon=True).start()

    def _analyze(self, day: dt.date, table: str) -> None:
        tables = ("reads", "plates") if table == "reads" else ("passages",)
        names = sql.SQL(", ").join(sql.Identifier(partition_name(t, day)) for t in tables)
        try:
            with connect(self.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("ANALYZE {}").format(names))
        except psycopg.Error as exc:  # autovacuum will do it later; ingest goes on either way
            log.warning("analyzing the partitions of %s failed: %s", day, exc)

    # -- dropping -----------------------------------------------------------------------------------
    def _drop(self, conn: psycopg.Connection, table: str, name: str, state: bool | None) -> None:
        """Detach (concurrently, or finish a detach left pending) and drop one partition."""
        ident = sql.Identifier(name)
        if state is True:
            conn.execute(
                sql.SQL("ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY").format(
                    sql.Identifier(table), ident
                )
            )
        elif state is None:
            conn.execute(
                sql.SQL("ALTER TABLE {} DETACH PARTITION {} FINALIZE").format(sql.Identifier(table), ident)
            )
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))

    def _recover(self, conn: psycopg.Connection) -> None:
        """At start-up: drop what an interrupted purge left (a partition detached or pending, a day whose
        partitions are partly gone)."""
        parts = self._partitions(conn)
        for name, state in parts.items():
            if state is not True:
                self._drop(conn, name.split("_")[0], name, state)
        for (day,) in conn.execute("SELECT day FROM record_days").fetchall():
            names = [partition_name(t, day) for t in TABLES]
            if all(parts.get(n) is True for n in names):
                continue
            log.warning("finishing the purge of %s that was interrupted", day)
            for table, name in zip(TABLES, names, strict=True):
                if parts.get(name) is True:
                    self._drop(conn, table, name, True)
            conn.execute(_FORGET_DAY, (day, day))

    def purge_before(self, cutoff: dt.date) -> list[dt.date]:
        """Drop every day before ``cutoff``: its partitions detached concurrently (under ``lock_timeout``)
        and dropped, then its row and its counts. Ingest goes on meanwhile; a detach that timed out is left to
        the next purge (the day is then still held and reported as not purged)."""
        done: list[dt.date] = []
        with self._ddl_lock:
            conn = self._ddl_conn()
            parts = self._partitions(conn)
            held = {
                d for (d,) in conn.execute("SELECT day FROM record_days WHERE day < %s", (cutoff,)).fetchall()
            }
            named = {
                dt.datetime.strptime(m.group(2), "%Y%m%d").date()
                for m in (_PARTITION.fullmatch(n) for n in parts)
                if m is not None
            }
            for day in sorted(d for d in held | named if d < cutoff):
                with self._known_lock:
                    self._known.discard(day)  # an insert for it now prepares it again, after this purge
                try:
                    for table in TABLES:
                        name = partition_name(table, day)
                        if name in parts:
                            self._drop(conn, table, name, parts[name])
                except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled) as exc:
                    # Left out of the known days: an insert for it prepares it again, finishing the drop.
                    log.warning("purging %s stopped (%s); the next purge finishes it", day, exc)
                    break
                conn.execute(_FORGET_DAY, (day, day))
                if day in held:
                    done.append(day)
        return done
