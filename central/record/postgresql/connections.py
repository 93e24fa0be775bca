"""Connections to the hub's PostgreSQL database (psycopg 3, called from plain threads as SQLite is).

The hub calls its store from a writer thread and, for searches, from ``asyncio.to_thread``; psycopg's
blocking API fits both as they are (``cordon bench pgdriver`` measured it against asyncpg, which would
need an event loop of its own beside the writer: docs/architecture.md). ``Pool`` lends autocommit
connections for reads, so every search statement has its own short snapshot and never holds back a
``DETACH PARTITION ... CONCURRENTLY``; a connection that broke (the server restarted) is dropped,
not returned.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg.conninfo

from protocols.errors import CordonError


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


def connect(dsn: str, *, autocommit: bool) -> psycopg.Connection:
    """One connection; a statement run twice on it is prepared on the server, and planned anew each time.

    ``plan_cache_mode = force_custom_plan``: a generic plan of a statement over a partitioned table holds
    every partition, and PostgreSQL 15 locks all of them before it runs one; when a purge's ``DETACH ...
    CONCURRENTLY`` queues for its ACCESS EXCLUSIVE lock on an old day, that statement would queue behind
    it. A custom plan is pruned to the days its parameters name, and never holds a day being detached."""
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, options="-c plan_cache_mode=force_custom_plan")
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        raise StoreUnreachable(
            f"cannot connect to PostgreSQL ({describe(dsn)}): {' '.join(str(exc).split())}"
        ) from exc
    conn.prepare_threshold = 2
    return conn


class Pool:
    """At most ``size`` idle autocommit connections kept for reuse; more are opened when all are busy."""

    def __init__(self, dsn: str, size: int = 4) -> None:
        self.dsn = dsn
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue(maxsize=size)
        self._closed = False
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = connect(self.dsn, autocommit=True)
        try:
            yield conn
        except BaseException:
            conn.close()  # it may be broken or mid-statement: never lend it again
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

    def close(self) -> None:
        with self._lock:
            self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
