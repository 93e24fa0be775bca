"""The hub's stores on PostgreSQL: ``PgStores`` runs jobs in transactions (``submit``, ``run``, ``read``,
as the SQLite ``HubStore`` does) and holds the parts that are on PostgreSQL today: the record of reads
(``record``), accounts, the audit trail, webhook deliveries, statistics, failed logins, import jobs, cached
evidence, the watchlists, and the alert store (events, alerts, folding, outcomes, receipts, checkpoints,
dead letters, escalations, quick-test results).

``central.record.factory`` gives the hub these stores with ``[store] backend = "postgresql"``. Backups
are PostgreSQL's base backups (``backup``: ``central.record.postgresql.backup``).

**Transactions.** A write job runs on the store's one writer connection, in a thread of its own, inside one
transaction at READ COMMITTED, and its future resolves after the commit; a failed job rolls back and its
future raises. A read runs on a pooled connection inside a transaction of its own, so what it reads is
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
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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
from central.record.stores import BackupCut, Counts, Outcome
from protocols.messages import Alert, Event

log = logging.getLogger(__name__)
T = TypeVar("T")


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
        self._executor: ThreadPoolExecutor | None = None
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
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="pg-writer")

    def stop(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._pool.close()
        self.record.stop()

    @property
    def writer_error(self) -> str | None:
        """The last commit failure (None while commits succeed)."""
        return self._error

    def _in_transaction(self, job: Callable[[psycopg.Connection], T]) -> T:
        for attempt in range(3):
            if self._writer is None or self._writer.closed or self._writer.broken:
                self._writer = connect(self.dsn, autocommit=False)
            try:
                with self._writer.transaction():
                    self._writer.execute(f"SAVEPOINT {JOB_SAVEPOINT}")
                    result = job(self._writer)
            except DaysNotReady as exc:  # rolled back: make the days, run the whole job again
                if attempt == 2:
                    raise
                self.record.prepare(exc.days)
                continue
            except psycopg.OperationalError as exc:
                self._error = str(exc) or type(exc).__name__
                raise
            self._error = None
            return result
        raise AssertionError("unreachable")

    def submit(self, job: Callable[[psycopg.Connection], T]) -> Future[T]:
        """Run ``job`` in one write transaction (from any thread); the future resolves after the commit."""
        with self._lock:
            if self._executor is None:
                raise RuntimeError("the PostgreSQL store is not started")
            return self._executor.submit(self._in_transaction, job)

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
        """Alerts after ``position`` in commit order, with their positions (every hub shares them)."""
        return self.read(lambda tx: PgEvents.alerts_after(tx, position, limit))

    def alert_position(self) -> int:
        return self.read(PgEvents.alert_position)

    def touched_since(self, since: float, limit: int = 500) -> list[tuple[float, Alert]]:
        return self.read(lambda tx: PgEvents.touched_since(tx, since, limit))

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

    def backup(
        self,
        dest: Path,
        *,
        lock_timeout_s: float = 30.0,
        pg_bin: str = "",
        hold_from: dt.date | None = None,
    ) -> BackupCut:
        """A base backup of the cluster into ``dest/pgdata`` (``central.record.postgresql.backup``); it
        takes no lock, so ``lock_timeout_s`` has nothing to wait for. Needs no ``start()``."""
        from central.record.postgresql.backup import base_backup

        return base_backup(self.dsn, dest, pg_bin=pg_bin, hold_from=hold_from)
