"""One writer thread per SQLite file, with group commit.

SQLite allows one writer at a time, and a sqlite-utils ``Database`` is bound to the thread that
made it. So each database file gets one ``SqlWriter``: a thread that owns the write connection,
takes jobs from a queue, runs every job that is already waiting inside one transaction, commits
once, and only then resolves the callers' futures. A caller that awaits ``run()`` therefore knows
its write is durable (``synchronous=FULL`` by default). Readers use their own connections.

Some statements cannot run inside a transaction (``ATTACH``, ``DETACH``), yet a job only learns
mid-transaction that it needs one (a read for a day whose partition is not attached). Such a job
raises :class:`NeedsPreparation`: its savepoint is rolled back, the rest of the group commits, the
preparation runs between transactions, and the job runs again in the next one. Work that is all
outside a transaction (detaching and removing a file) is queued with ``submit(..., transaction=False)``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from protocols.errors import CordonError

log = logging.getLogger(__name__)
T = TypeVar("T")
Job = Callable[[sqlite_utils.Database], Any]

MAX_JOBS_PER_COMMIT = 512
MAX_PREPARATIONS = 3
"""A job asking for preparation more often than this is failed (its preparation is not enough)."""


class WriterClosed(CordonError, RuntimeError):
    """The writer was stopped; nothing more will be written."""


class NeedsPreparation(Exception):  # noqa: N818 - a request, not an error
    """Raised by a job: run ``prepare`` outside any transaction, then run me again."""

    def __init__(self, prepare: Job, why: str = "") -> None:
        super().__init__(why or "job needs preparation outside a transaction")
        self.prepare = prepare


_Item = tuple[Job, "Future[Any]", bool]


#: How long a write waits for a lock another connection holds before it fails (``database is locked``).
BUSY_TIMEOUT_S = 30.0


def open_database(
    path: str | Path, *, synchronous: str = "FULL", busy_timeout_s: float = BUSY_TIMEOUT_S
) -> sqlite_utils.Database:
    """Open a SQLite file in WAL mode with the durability this project expects."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=True, timeout=busy_timeout_s)
    db = sqlite_utils.Database(conn)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    return db


class SqlWriter:
    """Owns the write connection of one SQLite file; run jobs on it with group commit."""

    def __init__(
        self,
        path: str | Path,
        *,
        name: str,
        synchronous: str = "FULL",
        setup: Job | None = None,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        self.path = Path(path)
        self.name = name
        self._synchronous = synchronous
        self._busy_timeout_s = busy_timeout_s
        self._setup = setup
        self._jobs: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.commits = 0
        self.last_error: str | None = None

    def start(self) -> None:
        """Open the database in the writer thread and run ``setup`` (schema, migrations)."""
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name=f"sqlwriter-{self.name}", daemon=True
        )
        self._thread.start()
        ready.result()

    def submit(self, job: Callable[[sqlite_utils.Database], T], *, transaction: bool = True) -> Future[T]:
        """Queue a job from any thread; the future resolves after its transaction commits.

        With ``transaction=False`` the job runs alone between two transactions (for ATTACH, DETACH,
        file housekeeping); it must not leave a transaction open.
        """
        if self._closed:
            raise WriterClosed(f"{self.name} writer is stopped")
        fut: Future[T] = Future()
        self._jobs.put((job, fut, transaction))
        return fut

    async def run(self, job: Callable[[sqlite_utils.Database], T], *, transaction: bool = True) -> T:
        """Run a job in the writer and wait, without blocking the event loop, until it committed."""
        return await asyncio.wrap_future(self.submit(job, transaction=transaction))

    def stop(self) -> None:
        """Finish the queued jobs, then close the connection."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        if self._thread is not None:
            self._thread.join()

    def _main(self, ready: Future[None]) -> None:
        try:
            db = open_database(self.path, synchronous=self._synchronous, busy_timeout_s=self._busy_timeout_s)
            if self._setup is not None:
                with db.conn:
                    self._setup(db)
        except BaseException as exc:  # the caller of start() gets it
            ready.set_exception(exc)
            return
        ready.set_result(None)
        stopping = False
        while not stopping:
            item = self._jobs.get()
            batch: list[tuple[Job, Future[Any]]] = []
            outside: _Item | None = None
            while item is not None:
                # A caller that gave up before its job started (a camera that hung up) gets nothing
                # written; once running, the job can no longer be cancelled and its caller hears the result.
                if item[1].set_running_or_notify_cancel():
                    if not item[2]:
                        outside = item  # commit what came before it, then run it alone
                        break
                    batch.append((item[0], item[1]))
                if len(batch) >= MAX_JOBS_PER_COMMIT:
                    break
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
            else:
                stopping = True
            attempt = 0
            while batch:
                batch = self._commit(db, batch, final=attempt >= MAX_PREPARATIONS)
                attempt += 1
            if outside is not None:
                self._outside(db, outside[0], outside[1])
        db.conn.close()

    def _outside(self, db: sqlite_utils.Database, job: Job, fut: Future[Any]) -> bool:
        try:
            value = job(db)
        except BaseException as exc:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            fut.set_exception(exc)
            return False
        if db.conn.in_transaction:  # the job broke its contract; do not let its writes ride along
            db.conn.execute("ROLLBACK")
            fut.set_exception(RuntimeError("a job run outside a transaction left one open"))
            return False
        fut.set_result(value)
        return True

    def _commit(
        self, db: sqlite_utils.Database, batch: list[tuple[Job, Future[Any]]], *, final: bool = False
    ) -> list[tuple[Job, Future[Any]]]:
        """Run and commit a group of jobs; return the jobs to run again after their preparation."""
        results: list[tuple[Future[Any], Any, BaseException | None]] = []
        again: list[tuple[Job, Future[Any], Job]] = []
        try:
            db.conn.execute("BEGIN IMMEDIATE")
            for job, fut in batch:
                db.conn.execute("SAVEPOINT job")
                try:
                    value = job(db)
                except NeedsPreparation as exc:
                    db.conn.execute("ROLLBACK TO job")
                    if final:
                        results.append(
                            (fut, None, RuntimeError(f"{exc} (still, after {MAX_PREPARATIONS} tries)"))
                        )
                    else:
                        again.append((job, fut, exc.prepare))
                except Exception as exc:  # one failing job must not undo the others
                    db.conn.execute("ROLLBACK TO job")
                    results.append((fut, None, exc))
                else:
                    results.append((fut, value, None))
                db.conn.execute("RELEASE job")
            db.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # The whole transaction is lost (disk full, database locked by another process...):
            # every caller hears it, so nothing is acknowledged that was not committed.
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("%s writer: commit failed: %s", self.name, exc)
            for _, fut in batch:
                fut.set_exception(exc)
            return []
        self.commits += 1
        self.last_error = None
        for fut, value, error in results:
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(value)
        retry: list[tuple[Job, Future[Any]]] = []
        for job, fut, prepare in again:
            try:
                prepare(db)
            except Exception as exc:
                if db.conn.in_transaction:
                    db.conn.execute("ROLLBACK")
                fut.set_exception(exc)
            else:
                retry.append((job, fut))
        return retry
