"""One writer thread per SQLite file, with group commit.

SQLite allows one writer at a time, and a sqlite-utils ``Database`` is bound to the thread that
made it. So each database file gets one ``SqlWriter``: a thread that owns the write connection,
takes jobs from a queue, runs every job that is already waiting inside one transaction, commits
once, and only then resolves the callers' futures. A caller that awaits ``run()`` therefore knows
its write is durable (``synchronous=FULL`` by default). Readers use their own connections.
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

log = logging.getLogger(__name__)
T = TypeVar("T")
Job = Callable[[sqlite_utils.Database], Any]

MAX_JOBS_PER_COMMIT = 512


class WriterClosed(RuntimeError):
    """The writer was stopped; nothing more will be written."""


#: How long a write waits for a lock another connection holds before it fails (``database is locked``).
BUSY_TIMEOUT_S = 30.0


def open_database(path: str | Path, *, synchronous: str = "FULL",
                  busy_timeout_s: float = BUSY_TIMEOUT_S) -> sqlite_utils.Database:
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

    def __init__(self, path: str | Path, *, name: str, synchronous: str = "FULL",
                 setup: Job | None = None, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.name = name
        self._synchronous = synchronous
        self._busy_timeout_s = busy_timeout_s
        self._setup = setup
        self._jobs: queue.SimpleQueue[tuple[Job, Future[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.commits = 0
        self.last_error: str | None = None

    def start(self) -> None:
        """Open the database in the writer thread and run ``setup`` (schema, migrations)."""
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._main, args=(ready,), name=f"sqlwriter-{self.name}",
                                        daemon=True)
        self._thread.start()
        ready.result()

    def submit(self, job: Callable[[sqlite_utils.Database], T]) -> Future[T]:
        """Queue a job from any thread; the future resolves after its transaction commits."""
        if self._closed:
            raise WriterClosed(f"{self.name} writer is stopped")
        fut: Future[T] = Future()
        self._jobs.put((job, fut))
        return fut

    async def run(self, job: Callable[[sqlite_utils.Database], T]) -> T:
        """Run a job in the writer and wait, without blocking the event loop, until it committed."""
        return await asyncio.wrap_future(self.submit(job))

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
            while item is not None:
                # A caller that gave up before its job started (a camera that hung up) gets nothing
                # written; once running, the job can no longer be cancelled and its caller hears the result.
                if item[1].set_running_or_notify_cancel():
                    batch.append(item)
                if len(batch) >= MAX_JOBS_PER_COMMIT:
                    break
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
            else:
                stopping = True
            if batch:
                self._commit(db, batch)
        db.conn.close()

    def _commit(self, db: sqlite_utils.Database, batch: list[tuple[Job, Future[Any]]]) -> None:
        results: list[tuple[Future[Any], Any, BaseException | None]] = []
        try:
            db.conn.execute("BEGIN IMMEDIATE")
            for job, fut in batch:
                db.conn.execute("SAVEPOINT job")
                try:
                    value = job(db)
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
            return
        self.commits += 1
        self.last_error = None
        for fut, value, error in results:
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(value)
