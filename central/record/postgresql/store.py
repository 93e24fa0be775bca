"""The hub's stores on PostgreSQL: ``PgStores`` runs jobs in transactions (``submit``, ``run``, ``read``,
as the SQLite ``HubStore`` does) and holds the parts that are on PostgreSQL today: the record of reads
(``record``), accounts, the audit trail, webhook deliveries, statistics, failed logins, import jobs, cached
evidence, and of the alert store the edges' events (``insert_event``, every kind), alerts
(``insert_alert``) and quick-test results (``kit_results``).

What is not here yet (the rest of the alert store: folding, receipts, escalations, dead letters,
checkpoints, the console's reads of alerts; the watchlist store) keeps the hub on SQLite:
``central.record.factory`` does not offer PostgreSQL to the hub until every interface has it
(docs/architecture.md).

**Transactions.** A write job runs on the store's one writer connection, in a thread of its own, inside one
transaction at READ COMMITTED, and its future resolves after the commit; a failed job rolls back and its
future raises. A read runs on a pooled connection inside a transaction of its own, so what it reads is
one snapshot per statement and every statement sees what committed before it. A job whose reads meet a
day the record has no partitions for yet is rolled back, the days are made, and it runs again (the
record's ``DaysNotReady``, as ``RunAgain`` on SQLite).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg

from central.record.postgresql.audit import PgAuditStore
from central.record.postgresql.connections import Pool, connect
from central.record.postgresql.events import PgEvents
from central.record.postgresql.reads import DaysNotReady, PgReadStore
from central.record.postgresql.schema import migrate
from central.record.postgresql.shared import PgEvidenceStore, PgImportJobStore, PgLoginLimitStore
from central.record.postgresql.stats import PgStatsStore
from central.record.postgresql.users import PgUserStore
from central.record.postgresql.webhooks import PgWebhookStore
from central.record.stores import Outcome
from protocols.messages import Event

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

    # -- the alert store's part that is on PostgreSQL ----------------------------------------------------
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
