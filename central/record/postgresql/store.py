"""The hub's stores on PostgreSQL: ``PgStores`` runs jobs in transactions (``submit``, ``run``, ``read``,
as the SQLite ``HubStore`` does) and holds the parts that are on PostgreSQL today: the record of reads
(``record``), accounts, the audit trail, webhook deliveries, statistics, failed logins, import jobs, cached
evidence, the watchlists, and the alert store (events, alerts, folding, outcomes, receipts, checkpoints,
dead letters, escalations, quick-test results).

``central.record.factory`` gives the hub these stores with ``[store] backend = "postgresql"``. Backups
are PostgreSQL's own (``backup`` refuses).

**Transactions.** A write job runs on the store's one writer connection, in a thread of its own, inside a
transaction at READ COMMITTED, and its future resolves after the commit. The jobs that are waiting when the
writer is free share one transaction and one commit (group commit, as the SQLite writer does: under load a
commit's WAL flush is paid once for many batches), each from a savepoint of its own: a job that fails is
rolled back to its savepoint and its future raises, the others commit. A read runs on a pooled connection inside a transaction of its own, so what it reads is
one snapshot per statement and every statement sees what committed before it. A job whose reads meet a
day the record has no partitions for yet is rolled back, the days are made, and it runs again (the
record's ``DaysNotReady``, as ``RunAgain`` on SQLite). A job starts at a savepoint: on PostgreSQL a failed
statement aborts the transaction, so a dead letter written after one (the ingest pipeline's "a bug costs
one dead letter") first rolls the job back to its start (``dead_letter``), and the dead letter commits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from central.record.postgresql.audit import PgAuditStore
from central.record.postgresql.connections import Pool, connect
from central.record.postgresql.events import JOB_SAVEPOINT, PgEvents
from central.record.postgresql.reads import DaysNotReady, PgReadStore
from central.record.postgresql.schema import migrate
from central.record.postgresql.shared import PgEvidenceStore, PgImportJobStore, PgLoginLimitStore
from central.record.postgresql.stats import PgStatsStore
from central.record.postgresql.users import PgUserStore
from central.record.postgresql.watchlists import PgWatchlistStore
from central.record.postgresql.webhooks import PgWebhookStore
from central.record.reads import RecordCounts
from central.record.stores import BackupCut, Counts, Outcome, StoredRun
from protocols.errors import CordonError
from protocols.messages import Alert, Event, Passage, PlateRead

log = logging.getLogger(__name__)
T = TypeVar("T")
_Job = tuple[Callable[[psycopg.Connection], Any], "Future[Any]"]

#: At most this many jobs share one commit (as the SQLite writer's group).
MAX_JOBS_PER_COMMIT = 512
#: A job that meets days without partitions this many times in a row fails (making them did not help).
MAX_ATTEMPTS = 3


class PgStores:
    """The transaction runner and the parts on PostgreSQL; ``start()`` connects and migrates."""

    def __init__(
        self,
        dsn: str,
        *,
        utc_offset: str = "+08:00",
        pool_size: int = 4,
        evidence_max_bytes: int = 500_000_000,
    ) -> None:
        self.dsn = dsn
        self.record = PgReadStore(dsn, utc_offset=utc_offset, pool_size=pool_size)
        self._events = PgEvents(self.record)
        self._pool = Pool(dsn, pool_size)
        self._writer: psycopg.Connection | None = None
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self.users = PgUserStore()
        self.audit = PgAuditStore()
        self.webhooks = PgWebhookStore()
        self.stats = PgStatsStore()
        self.watchlists = PgWatchlistStore()
        self.login_limits = PgLoginLimitStore(self._pool)
        self.import_jobs = PgImportJobStore(self._pool)
        self.evidence = PgEvidenceStore(self._pool, evidence_max_bytes)

    def start(self) -> None:
        conn = connect(self.dsn, autocommit=False)
        try:
            migrate(conn)
        finally:
            conn.close()
        self.record.start()
        with self._lock:
            self._jobs = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._main, name="pg-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Commit the jobs already queued, then close every connection."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._jobs.put(None)
        if thread is not None:
            thread.join()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._pool.close()
        self.record.stop()

    @property
    def writer_error(self) -> str | None:
        """The last commit failure (None while commits succeed)."""
        return self._error

    # -- the writer: group commit ---------------------------------------------------------------------
    def _main(self) -> None:
        stopping = False
        while not stopping:
            item = self._jobs.get()
            group: list[_Job] = []
            while item is not None:
                if item[1].set_running_or_notify_cancel():  # a caller that gave up gets nothing written
                    group.append(item)
                if len(group) >= MAX_JOBS_PER_COMMIT:
                    break
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
            else:
                stopping = True
            attempt = 1
            while group:
                group = self._commit(group, final=attempt >= MAX_ATTEMPTS)
                attempt += 1

    def _connection(self) -> psycopg.Connection:
        if self._writer is None or self._writer.closed or self._writer.broken:
            self._writer = connect(self.dsn, autocommit=False)
        return self._writer

    def _commit(self, group: list[_Job], *, final: bool) -> list[_Job]:
        """Run a group of jobs in one transaction, each from a savepoint of its own, and commit once; a job
        that fails is rolled back to its savepoint alone. Returns the jobs to run again once the days they
        met are made (``DaysNotReady``)."""
        done: list[tuple[Future[Any], Any, BaseException | None]] = []
        again: list[_Job] = []
        days: set[dt.date] = set()
        try:
            conn = self._connection()
            with conn.transaction():
                for n, (job, fut) in enumerate(group):
                    # One round trip between two jobs (the commit releases the last savepoint).
                    conn.execute(
                        f"RELEASE SAVEPOINT {JOB_SAVEPOINT}; SAVEPOINT {JOB_SAVEPOINT}"
                        if n
                        else f"SAVEPOINT {JOB_SAVEPOINT}"
                    )
                    try:
                        value = job(conn)
                    except Exception as exc:
                        if conn.broken or conn.closed:
                            raise  # the connection is gone, and the whole group with it
                        conn.execute(f"ROLLBACK TO SAVEPOINT {JOB_SAVEPOINT}")
                        if isinstance(exc, DaysNotReady) and not final:
                            again.append((job, fut))
                            days.update(exc.days)
                        else:
                            done.append((fut, None, exc))
                    else:
                        done.append((fut, value, None))
        except Exception as exc:
            # The transaction is lost (the server went away, the commit failed): every caller hears it,
            # so nothing is acknowledged that did not commit.
            self._error = str(exc) or type(exc).__name__
            log.error("PostgreSQL writer: commit failed: %s", self._error)
            for _, fut in group:
                fut.set_exception(exc)
            return []
        self._error = None
        for fut, value, error in done:
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(value)
        if again:
            try:
                self.record.prepare(days)
            except Exception as exc:
                for _, fut in again:
                    fut.set_exception(exc)
                return []
        return again

    def submit(self, job: Callable[[psycopg.Connection], T]) -> Future[T]:
        """Queue ``job`` for a write transaction (from any thread); the future resolves after the commit.

        The jobs waiting when the writer is free run together in one transaction (group commit), each from
        a savepoint of its own."""
        fut: Future[T] = Future()
        with self._lock:
            if self._thread is None:
                raise RuntimeError("the PostgreSQL store is not started")
            self._jobs.put((job, fut))
        return fut

    async def run(self, job: Callable[[psycopg.Connection], T]) -> T:
        return await asyncio.wrap_future(self.submit(job))

    def read(self, fn: Callable[[psycopg.Connection], T]) -> T:
        """Run a read-only ``fn`` in a transaction of its own on a pooled connection (blocking)."""
        with self._pool.connection() as conn, conn.transaction():
            return fn(conn)

    # -- the alert store (central.record.postgresql.events) -------------------------------------------
    def insert_event(
        self,
        tx: psycopg.Connection,
        checkpoint: str,
        epoch: int,
        event: Event,
        edge_sent_at: float,
        received_at: float,
    ) -> Outcome:
        return self._events.insert_event(tx, checkpoint, epoch, event, edge_sent_at, received_at)

    def insert_reads(
        self,
        tx: psycopg.Connection,
        checkpoint: str,
        epoch: int,
        events: Sequence[PlateRead | Passage],
        edge_sent_at: float,
        received_at: float,
    ) -> StoredRun:
        return self._events.insert_reads(tx, checkpoint, epoch, events, edge_sent_at, received_at)

    insert_alert = staticmethod(PgEvents.insert_alert)
    add_thumbnail = staticmethod(PgEvents.add_thumbnail)
    update_checkpoint = staticmethod(PgEvents.update_checkpoint)
    fold = staticmethod(PgEvents.fold)
    folded_or_raised = staticmethod(PgEvents.folded_or_raised)
    folded_into = staticmethod(PgEvents.folded_into)
    hit_thumbnail = staticmethod(PgEvents.hit_thumbnail)
    unalerted_edge_hits = staticmethod(PgEvents.unalerted_edge_hits)
    insert_receipt = staticmethod(PgEvents.insert_receipt)
    dead_letter = staticmethod(PgEvents.dead_letter)
    escalate_due = staticmethod(PgEvents.escalate_due)
    escalated_among = staticmethod(PgEvents.escalated_among)
    alerts_naming = staticmethod(PgEvents.alerts_naming)

    async def mark_dispatched(self, alert_ids: list[str]) -> None:
        now = time.time()
        await self.run(lambda tx: PgEvents.mark_dispatched(tx, alert_ids, now))

    def undispatched_alerts(self) -> list[Alert]:
        return self.read(PgEvents.undispatched_alerts)

    def recent_alerts(self, limit: int = 100, include_covert: bool = True) -> list[Alert]:
        return self.read(lambda tx: PgEvents.recent_alerts(tx, limit, include_covert))

    def alerts_after(self, position: int, limit: int = 500) -> list[tuple[int, Alert]]:
        """Alerts after ``position`` in commit order, with their positions (PostgreSQL only, for now)."""
        return self.read(lambda tx: PgEvents.alerts_after(tx, position, limit))

    def outcomes(self, alert_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        return self.read(lambda tx: PgEvents.outcomes(tx, alert_ids))

    def receipts(self, alert_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        return self.read(lambda tx: PgEvents.receipts(tx, alert_ids))

    def gaps(self, checkpoint: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self.read(lambda tx: PgEvents.gaps(tx, checkpoint, limit))

    def dead_letters(self, limit: int = 100, before_id: int | None = None) -> list[Any]:
        return self.read(lambda tx: PgEvents.dead_letters(tx, limit, before_id))

    def checkpoints(self) -> list[dict[str, Any]]:
        return self.read(PgEvents.checkpoints)

    def counts(self) -> Counts:
        alerts, dead = self.read(PgEvents.counts)
        record = self.record.counts()
        return Counts(record.reads, record.passages, alerts, dead)

    def purge_hits_before(self, cutoff: float) -> dict[str, int]:
        return self.submit(lambda tx: PgEvents.purge_hits_before(tx, cutoff)).result()

    def kit_results(
        self,
        checkpoint: str | None = None,
        since: float | None = None,
        until: float | None = None,
        result: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Quick-test results, newest first (``KitResultStore``)."""
        return self.read(lambda tx: PgEvents.kit_results(tx, checkpoint, since, until, result, limit))

    # -- the record ----------------------------------------------------------------------------------
    def record_counts(self) -> RecordCounts:
        return self.record.counts()

    def purge_before(self, cutoff: dt.date) -> list[dt.date]:
        """Drop every day of plain reads and passages before ``cutoff``; alerts and hits stay."""
        return self.record.purge_before(cutoff)

    def backup(self, dest: Path, *, lock_timeout_s: float = 30.0) -> BackupCut:
        """``cordon backup`` copies SQLite files; a PostgreSQL store is backed up by PostgreSQL's own tools."""
        raise BackupRefused(
            "the hub's store is on PostgreSQL: back it up with PostgreSQL's tools (pg_basebackup and WAL "
            "archiving, or pg_dump), not cordon backup"
        )


class BackupRefused(CordonError, RuntimeError):
    """``cordon backup`` asked of a store it cannot copy."""
