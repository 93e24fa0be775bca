"""Connections to the hub's PostgreSQL database (psycopg 3, called from plain threads as SQLite is).

The hub calls its store from a writer thread and, for searches, from ``asyncio.to_thread``; psycopg's
blocking API fits both as they are (``cordon bench pgdriver`` measured it against asyncpg, which would
need an event loop of its own beside the writer: docs/architecture.md). ``Pool`` lends autocommit
connections for reads, so every search statement has its own short snapshot and never holds back a
``DETACH PARTITION ... CONCURRENTLY``.

**When the server goes away** (a crash, a restart, a failover) every connection open to it is dead, though
psycopg learns it only when one is used. A connection kept idle is looked at before it is used again
(``alive``: the server closed it, or wrote to it unasked, as it does when it terminates a session), and a
dead one is replaced by a new connection. ``transient`` tells a failure of the server (and its own ones:
a deadlock, a lock timeout, a cancelled statement, a full disk) from an error of the statement; the pool
raises those as ``StoreUnavailable`` and drops the connection that met one, so the pool is whole again
as soon as the server takes connections.
"""

from __future__ import annotations

import queue
import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg.conninfo

from central.record.tx import StoreUnavailable
from protocols.errors import CordonError

#: SQLSTATE classes of a failure of the server rather than of the statement: connection exceptions (08),
#: transaction rollback (40: serialization failure, deadlock), insufficient resources (53: disk full, out of
#: memory, too many connections), operator intervention (57: cancelled, shut down, crashed, starting up) and
#: system errors (58: I/O).
TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
#: And single SQLSTATEs of that kind in other classes: a lock not granted within ``lock_timeout``.
TRANSIENT_STATES = frozenset({"55P03"})


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the database failing (see ``TRANSIENT_CLASSES``) or a connection lost or refused
    (psycopg's ``OperationalError`` without a SQLSTATE), not an error of the statement or its data."""
    if isinstance(exc, StoreUnavailable):
        return True
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state[:2] in TRANSIENT_CLASSES or state in TRANSIENT_STATES


def unavailable(exc: BaseException, what: str) -> StoreUnavailable:
    """``exc`` (``transient``) as the store's error, in one line."""
    if isinstance(exc, StoreUnavailable):
        return exc
    return StoreUnavailable(f"{what}: {' '.join(str(exc).split()) or type(exc).__name__}")


class StoreUnreachable(CordonError, psycopg.OperationalError):
    """No connection to the PostgreSQL store (a wrong address, database, user or password, a server that
    is down): one line naming the database (never its password) and what the server or libpq said. It is
    an ``OperationalError`` still, as the failure it stands for."""


def describe(dsn: str) -> str:
    """The connection string without its password, to name the database in a message."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "an unreadable connection string"
    params.pop("password", None)
    return psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]


def with_password(dsn: str, password: str) -> str:
    """The connection string with the password added (kept out of the settings file: a secret file or the
    environment gives it); unchanged when there is none."""
    return psycopg.conninfo.make_conninfo(dsn, password=password) if password else dsn


def connect(dsn: str, *, autocommit: bool, generic_plans: bool = False) -> psycopg.Connection:
    """One connection; a statement run twice on it is prepared on the server.

    By default every statement is planned anew each time (``plan_cache_mode = force_custom_plan``): a
    generic plan of a statement over a partitioned table holds every partition, and PostgreSQL 15 locks
    all of them before it runs one; when a purge's ``DETACH ... CONCURRENTLY`` queues for its ACCESS
    EXCLUSIVE lock on an old day, that statement would queue behind it. A custom plan is pruned to the
    days its parameters name, and never holds a day being detached.

    ``generic_plans`` (the writers' connections): PostgreSQL's own choice (``auto``): a prepared
    statement gets five custom plans, then keeps a generic one unless it costs more. Planning was half of
    PostgreSQL's work for a small ingest job, which runs a dozen short statements. Safe there because no
    statement on a partitioned table is ever prepared on it: the batch insert names the day's partitions
    (``reads.insert_statement``) and the writer's other statements on ``reads``, ``passages`` or
    ``plates`` are sent with ``prepare=False``, and an unprepared statement is parsed anew each time, so
    ``auto`` gives it a custom plan (``test_the_writer_prepares_no_statement_on_a_partitioned_table``)."""
    mode = "auto" if generic_plans else "force_custom_plan"
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, options=f"-c plan_cache_mode={mode}")
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        raise StoreUnreachable(
            f"cannot connect to PostgreSQL ({describe(dsn)}): {' '.join(str(exc).split())}"
        ) from exc
    conn.prepare_threshold = 2
    return conn


def alive(conn: psycopg.Connection) -> bool:
    """Whether an idle connection may be used: open, not broken, and with nothing to read. The server
    sends an idle session nothing unasked but its end (a closed socket, or the notice before it when the
    session is terminated), so anything readable means the server is gone or restarted. No round trip."""
    if conn.closed or conn.broken:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class Pool:
    """At most ``size`` idle autocommit connections kept for reuse; more are opened when all are busy."""

    def __init__(self, dsn: str, size: int = 4) -> None:
        self.dsn = dsn
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue(maxsize=size)
        self._closed = False
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A connection for the ``with`` block; a failure of the database (``transient``) in it, or in
        connecting, raises ``StoreUnavailable``."""
        conn = self._idle_one()
        if conn is None:
            try:
                conn = connect(self.dsn, autocommit=True)
            except psycopg.Error as exc:
                if transient(exc):
                    raise unavailable(exc, "PostgreSQL") from exc
                raise
        try:
            yield conn
        except BaseException as exc:
            conn.close()  # it may be broken or mid-statement: never lend it again
            if transient(exc):
                raise unavailable(exc, "PostgreSQL") from exc
            raise
        with self._lock:
            keep = not self._closed and not conn.closed and not conn.broken
        if keep:
            try:
                self._idle.put_nowait(conn)
                return
            except queue.Full:
                pass
        conn.close()

    def _idle_one(self) -> psycopg.Connection | None:
        """An idle connection that is still alive (the dead are closed on the way), or None."""
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return None
            if alive(conn):
                return conn
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
