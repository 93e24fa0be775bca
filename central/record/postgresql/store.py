"""The hub's stores on PostgreSQL: ``PgStores`` runs jobs in transactions (``submit``, ``run``, ``read``,
as the SQLite ``HubStore`` does) and holds the parts that are on PostgreSQL today: the record of reads
(``record``), accounts, the audit trail, webhook deliveries, statistics, failed logins, import jobs, cached
evidence, the watchlists, and the alert store (events, alerts, folding, outcomes, receipts, checkpoints,
dead letters, escalations, quick-test results).

``central.record.factory`` gives the hub these stores with ``[store] backend = "postgresql"``. Backups
are PostgreSQL's base backups (``backup``: ``central.record.postgresql.backup``).

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

**When the database fails** (``connections.transient``: gone away, refused, a deadlock, a lock timeout, a
full disk) a job's future raises ``StoreUnavailable`` and ``writer_error`` says why until a commit succeeds;
the writer connection is replaced when the server ended it (``connections.alive``), so the first job once
the server is back commits. A commit the failure cut off may have committed or not: the group took its
transaction's id in its first round trip, and its jobs' futures wait until ``pg_xact_status`` says (each
job's value if it committed, ``StoreUnavailable`` if not). A job that meets a failure of the database while
the connection stays (a lock timeout, a cancelled statement) is rolled back to its savepoint and hears
``StoreUnavailable``; a lost connection fails the whole group. A job PostgreSQL picked to give way in a
deadlock (several hubs' groups each hold rows and locks to their commits: a day's counts, the audit's
lock) is no failure of the database: rolled back to its savepoint it lets the other hub's group go on,
and it runs again in the next group (``MAX_ATTEMPTS`` in all, as for a day not ready). The writer's session has ``synchronous_commit`` on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from central.record.postgresql.audit import PgAuditStore
from central.record.postgresql.connections import Pool, alive, connect, transient, unavailable
from central.record.postgresql.events import JOB_SAVEPOINT, PgEvents
from central.record.postgresql.news import NewsChannel
from central.record.postgresql.reads import DaysNotReady, PgReadStore
from central.record.postgresql.schema import hub_slot, migrate
from central.record.postgresql.shared import PgEvidenceStore, PgImportJobStore, PgLoginLimitStore
from central.record.postgresql.stats import PgStatsStore
from central.record.postgresql.users import PgUserStore
from central.record.postgresql.watchlists import PgWatchlistStore
from central.record.postgresql.webhooks import PgWebhookStore
from central.record.reads import RecordCounts
from central.record.stores import BackupCut, Counts, Outcome, StoredRun
from central.record.tx import PlateJob, StoreUnavailable
from protocols.messages import Alert, Event, Passage, PlateRead

log = logging.getLogger(__name__)
T = TypeVar("T")
_Job = tuple[Callable[[psycopg.Connection], Any], "Future[Any]"]

#: The first key of the transaction locks on plates the clone check takes (the second: the plate's hash).
CLONE_LOCKS = 0x436C6F6E  # "Clon"
#: Lock plates (``%s``: ``CLONE_LOCKS``, the plates) in key order, held to the commit; a lock held already
#: by the transaction is taken again at once.
LOCK_PLATES = (
    "SELECT pg_advisory_xact_lock(%s, k) FROM (SELECT DISTINCT hashtext(p) AS k FROM unnest(%s::text[]) p "
    "ORDER BY k) s"
)
#: At most this many jobs share one commit (as the SQLite writer's group).
MAX_JOBS_PER_COMMIT = 512
#: A job that meets days without partitions, or gives way in a deadlock, this many times in a row fails.
MAX_ATTEMPTS = 3
#: What another transaction's locks made a job give way to: run it again in the next group.
RACES = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)

#: How long a job whose commit was cut off waits for the database to say whether it committed; past it,
#: its caller hears ``StoreUnavailable`` (an edge sends its events again either way).
IN_DOUBT_MAX_S = 120.0
#: How often the database is asked about such commits while they wait (and at the start of every job).
IN_DOUBT_RETRY_S = 1.0


@dataclass(slots=True)
class Doubt:
    xid: str
    value: Any
    done: Future[Any]
    error: StoreUnavailable
    since: float


class PgStores:
    """The transaction runner and the parts on PostgreSQL; ``start()`` connects and migrates."""

    def __init__(
        self,
        dsn: str,
        *,
        utc_offset: str = "+08:00",
        pool_size: int = 4,
        evidence_max_bytes: int = 500_000_000,
        hub: str = "",
    ) -> None:
        self.dsn = dsn
        #: this hub's name (``cluster.name``): the alerts it raises are its to dispatch
        self.hub = hub
        self.record = PgReadStore(dsn, utc_offset=utc_offset, pool_size=pool_size, slot=hub_slot(hub))
        self._events = PgEvents(self.record)
        self._pool = Pool(dsn, pool_size)
        self._writer: psycopg.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._aside: psycopg.Connection | None = None
        self._aside_executor: ThreadPoolExecutor | None = None
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._error: str | None = None
        self._in_doubt: list[Doubt] = []
        """Jobs whose commit was cut off by a failure, until the database says whether it committed."""
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._plates_locked: set[str] = set()
        """The plates the writer's open transaction locked up front (``_lock_plates``)."""
        self.users = PgUserStore()
        self.audit = PgAuditStore()
        self.webhooks = PgWebhookStore()
        self.stats = PgStatsStore(hub_slot(hub))
        self.watchlists = PgWatchlistStore()
        self.login_limits = PgLoginLimitStore(self._pool)
        self.import_jobs = PgImportJobStore(self._pool)
        self.evidence = PgEvidenceStore(self._pool, evidence_max_bytes)
        self.news = NewsChannel(dsn, hub)

    def start(self) -> None:
        conn = connect(self.dsn, autocommit=False)
        try:
            migrate(conn)
        finally:
            conn.close()
        self.record.start()
        self.news.start()
        with self._lock:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="pg-writer")
            self._aside_executor = ThreadPoolExecutor(1, thread_name_prefix="pg-aside")

    def stop(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
            aside, self._aside_executor = self._aside_executor, None
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        if executor is not None:
            executor.shutdown(wait=True)
        if aside is not None:
            aside.shutdown(wait=True)
        if self._aside is not None:
            self._aside.close()
            self._aside = None
        for doubt in self._in_doubt:  # the writer is gone: nobody will ever learn more
            doubt.done.set_exception(StoreUnavailable(f"{doubt.error}; the hub stopped before it knew"))
        self._in_doubt = []
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.news.stop()
        self._pool.close()
        self.record.stop()

    @property
    def writer_error(self) -> str | None:
        """Why the last write job failed when the database did (None while commits succeed)."""
        return self._error

    transient = staticmethod(transient)

    def submit(self, job: Callable[[psycopg.Connection], T]) -> Future[T]:
        """Queue ``job`` for a write transaction (from any thread); the future resolves after the commit,
        or raises ``StoreUnavailable`` when the database failed (for a commit cut off, once the database
        said whether it committed). The jobs waiting when the writer is free share one commit."""
        done: Future[T] = Future()
        with self._lock:
            if self._executor is None:
                raise RuntimeError("the PostgreSQL store is not started")
            self._jobs.put((job, done))
            self._executor.submit(self._drain)
        return done

    def submit_aside(self, job: Callable[[psycopg.Connection], T]) -> Future[T]:
        """Queue ``job`` for a transaction of its own on a connection of its own, beside the writer's
        groups (see ``HubStores.submit_aside``). A checkpoint's status reaches every hub, and each writes
        the same rows (the checkpoint's, its uptime samples): in the writer's group, one hub's wait for
        that row held its whole group, reads and alerts, until the other hub's group committed (143 ms
        on average in ``cordon bench cluster``'s latency phase). A job whose commit is cut off is not
        resolved later as the writer's are: it fails (a status is said again within seconds)."""
        done: Future[T] = Future()
        with self._lock:
            if self._aside_executor is None:
                raise RuntimeError("the PostgreSQL store is not started")
            self._aside_executor.submit(self._run_aside, job, done)
        return done

    def _run_aside(self, job: Callable[[psycopg.Connection], T], done: Future[T]) -> None:
        if not done.set_running_or_notify_cancel():
            return
        try:
            if self._aside is None or not alive(self._aside):
                if self._aside is not None:
                    self._aside.close()
                self._aside = None
                self._aside = self._durable_connection()
            conn = self._aside
            try:
                with conn.transaction():
                    value = job(conn)
            except DaysNotReady as exc:  # a dead letter of a day not made yet: make it, then once more
                self.record.prepare(exc.days)
                with conn.transaction():
                    value = job(conn)
        except Exception as exc:
            done.set_exception(self._failed(exc) if transient(exc) else exc)
            return
        done.set_result(value)

    def _drain(self) -> None:
        """In the writer thread: the jobs queued now, as one group (a call that finds none returns)."""
        self._resolve_in_doubt()
        group: list[_Job] = []
        while len(group) < MAX_JOBS_PER_COMMIT:
            try:
                job, done = self._jobs.get_nowait()
            except queue.Empty:
                break
            if done.set_running_or_notify_cancel():  # a caller that gave up gets nothing written
                group.append((job, done))
        attempt = 1
        while group:
            group = self._commit(group, final=attempt >= MAX_ATTEMPTS)
            attempt += 1

    def _connected(self) -> psycopg.Connection:
        """The writer connection: one the server closed (a restart, a crash) is replaced by a new one, or
        this raises while the server is still away."""
        if self._writer is not None and alive(self._writer):
            return self._writer
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._writer = self._durable_connection()
        return self._writer

    def _durable_connection(self) -> psycopg.Connection:
        """A new connection for what the hub acknowledges (the writer's groups, the jobs aside). An
        acknowledged event is forgotten by its edge: the commit must be on disk before the answer (with
        synchronous_commit = off a crash loses the last commits the hub acknowledged)."""
        conn = connect(self.dsn, autocommit=False, generic_plans=True)
        try:
            if conn.execute("SHOW synchronous_commit").fetchone() == ("off",):
                log.warning("synchronous_commit is off for the hub's database: on for the hub's writes")
                conn.execute("SET synchronous_commit = on")
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    def _commit(self, group: list[_Job], *, final: bool) -> list[_Job]:
        """Run a group of jobs in one transaction, each from a savepoint of its own, and commit once; a job
        that fails is rolled back to its savepoint alone. Settles every job's future but those to run again
        once the days they met are made (``DaysNotReady``), which it returns."""
        settled: list[tuple[Future[Any], Any, BaseException | None]] = []
        again: list[_Job] = []
        days: set[dt.date] = set()
        xid: str | None = None
        committing = False
        try:
            conn = self._connected()
            with conn.transaction():
                self._lock_plates(conn, group)  # before any job of the group runs
                for n, (job, done) in enumerate(group):
                    if n == 0:
                        # The transaction's id, in the round trip that opens the group: if the commit is
                        # cut off, the database says afterwards whether it committed (``_resolve_in_doubt``).
                        cur = conn.execute(
                            f"SAVEPOINT {JOB_SAVEPOINT}; SELECT pg_current_xact_id()::text", prepare=False
                        )
                        cur.nextset()
                        xid = cur.fetchone()[0]  # type: ignore[index]
                    else:  # one round trip between two jobs (the commit releases the last savepoint)
                        conn.execute(f"RELEASE SAVEPOINT {JOB_SAVEPOINT}; SAVEPOINT {JOB_SAVEPOINT}")
                    try:
                        value = job(conn)
                    except Exception as exc:
                        if conn.broken or conn.closed:
                            raise  # the connection is gone, and the whole group with it
                        conn.execute(f"ROLLBACK TO SAVEPOINT {JOB_SAVEPOINT}")
                        if isinstance(exc, DaysNotReady) and not final:
                            again.append((job, done))
                            days.update(exc.days)
                        elif isinstance(exc, RACES) and not final:
                            # Another hub's group waited on a lock this one held while this one waited
                            # on one of its (the rows both write: a day's counts, a checkpoint's, and the
                            # audit's and alerts' locks, held to the commits). PostgreSQL picked this job
                            # to give way; rolled back to its savepoint, it let the other go on, and it
                            # runs again in the next group, once this one's commit let its locks go.
                            log.info("a job met another hub's transaction (%s): it runs again", exc.sqlstate)
                            again.append((job, done))
                        elif transient(exc):  # a deadlock, a lock timeout, a cancel: the database's
                            settled.append((done, None, self._failed(exc)))
                        else:
                            settled.append((done, None, exc))  # the job's own error; the store is well
                    else:
                        settled.append((done, value, None))
                committing = True
        except Exception as exc:
            if not transient(exc):
                for _, done in group:
                    done.set_exception(exc)
                return []
            error = self._failed(exc)
            if committing and xid is not None:  # every job ran: the commit itself was cut off
                now = time.monotonic()
                for done, value, failed in settled:
                    if failed is not None:
                        done.set_exception(failed)  # rolled back to its savepoint whatever the commit did
                    else:
                        self._in_doubt.append(Doubt(xid, value, done, error, now))
                for _, done in again:
                    done.set_exception(error)
                self._resolve_later()
            else:  # nothing of the group committed: the jobs run, the one running, those not run yet
                for _, done in group:
                    done.set_exception(error)
            return []
        if self._error is not None and not any(isinstance(f, StoreUnavailable) for _, _, f in settled):
            log.warning("PostgreSQL commits again after: %s", self._error)
            self._error = None
        for done, value, failed in settled:
            if failed is not None:
                done.set_exception(failed)
            else:
                done.set_result(value)
        if again:
            try:
                self.record.prepare(days)
            except Exception as exc:
                failure = self._failed(exc) if transient(exc) else exc
                for _, done in again:
                    done.set_exception(failure)
                return []
        return again

    def _lock_plates(self, conn: psycopg.Connection, group: list[_Job]) -> None:
        """Lock every plate the group's jobs said they may lock (``PlateJob``), in one statement in key
        order, while the transaction holds nothing else. A job locking a plate one by one as it reaches it
        could hold a plate another hub's group waits for while it waits for a plate that group holds (the
        jobs of a group run in turn: one order per job is not one order per transaction); PostgreSQL would
        break that deadlock after ``deadlock_timeout`` by failing a job. Taken up front, a transaction
        waits for plates only while it holds no lock but plates of lower keys, so plates close no cycle.
        A job that locks a plate it did not say (``clone_sightings`` locks only those) is back to the old
        way for that plate."""
        plates = {p for job, _ in group if isinstance(job, PlateJob) for p in job.plates}
        self._plates_locked = plates
        if plates:
            conn.execute(LOCK_PLATES, (CLONE_LOCKS, sorted(plates)))

    def _failed(self, exc: BaseException) -> StoreUnavailable:
        """The store failed: say so in health (``writer_error``) until a commit succeeds again."""
        error = unavailable(exc, "PostgreSQL")
        if self._error is None:
            log.error("the hub's store failed: %s", error)
        self._error = str(error)
        return error

    def _resolve_in_doubt(self) -> None:
        """In the writer thread: ask the database about the commits cut off, and settle the jobs it
        answers for (committed: their value; rolled back: ``StoreUnavailable``). Those it cannot answer for
        yet wait, at most ``IN_DOUBT_MAX_S``."""
        if not self._in_doubt:
            return
        try:
            writer = self._connected()
            with writer.transaction():
                status = dict(
                    writer.execute(
                        "SELECT x, pg_xact_status(x::xid8) FROM unnest(%s::text[]) x",
                        ([d.xid for d in self._in_doubt],),
                    ).fetchall()
                )
            self._error = None  # the database answers again
        except Exception as exc:
            if not transient(exc):
                log.exception("could not ask PostgreSQL about commits cut off")
            status = {}
        waiting: list[Doubt] = []
        for doubt in self._in_doubt:
            said = status.get(doubt.xid)
            if said == "committed":
                log.info("a commit cut off by the failure did commit (transaction %s)", doubt.xid)
                doubt.done.set_result(doubt.value)
            elif said is not None and said != "in progress":  # aborted, or too old to know
                doubt.done.set_exception(StoreUnavailable(f"{doubt.error}; it did not commit"))
            elif time.monotonic() - doubt.since > IN_DOUBT_MAX_S:
                doubt.done.set_exception(StoreUnavailable(f"{doubt.error}; not known whether it committed"))
            else:
                waiting.append(doubt)
        self._in_doubt = waiting
        if waiting:
            self._resolve_later()

    def _resolve_later(self) -> None:
        """Ask again in a while, also when no job comes to ask (an idle hub)."""
        with self._lock:
            if self._executor is None or (self._timer is not None and self._timer.is_alive()):
                return
            executor = self._executor

            def again() -> None:
                with self._lock:
                    if self._executor is executor:
                        executor.submit(self._resolve_in_doubt)

            self._timer = threading.Timer(IN_DOUBT_RETRY_S, again)
            self._timer.daemon = True
            self._timer.start()

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

    def insert_alert(self, tx: psycopg.Connection, alert: Alert) -> bool:
        return PgEvents.insert_alert(tx, alert, self.hub)

    add_thumbnail = staticmethod(PgEvents.add_thumbnail)
    update_checkpoint = staticmethod(PgEvents.update_checkpoint)
    checkpoint_seen = staticmethod(PgEvents.checkpoint_seen)
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
        return self.read(lambda tx: PgEvents.undispatched_alerts(tx, self.hub))

    def clone_sightings(
        self,
        tx: psycopg.Connection,
        plates: Sequence[str],
        since: float,
        besides: tuple[str, int, Sequence[int]],
    ) -> list[tuple[Any, str | None, str | None]]:
        """Lock the plates (in key order, held to the commit), then read their latest reads in the record,
        this hub's and the others'. A transaction that checks a plate after another hub's checked it waits
        for that commit and sees its reads; the first does not see the second's, which the second checks:
        each pair of reads is compared by one of the two. A job that said its plates (``PlateJob``) holds
        them already, taken with its whole group's before any job ran (``_lock_plates``): then two hubs'
        groups cannot deadlock over plates."""
        if not plates:
            return []
        unsaid = [p for p in plates if p not in self._plates_locked]  # (in the writer's thread, as _commit)
        if unsaid:
            tx.execute(LOCK_PLATES, (CLONE_LOCKS, unsaid))
        return self.record.latest_sightings(tx, plates, since, besides)

    def share_rates(self, rates: dict[str, int], now: float, fresh_s: float) -> dict[str, int]:
        """Say this hub's reads per minute per checkpoint; the other hubs' that said theirs within
        ``fresh_s``, summed per checkpoint."""

        def job(tx: psycopg.Connection) -> dict[str, int]:
            if rates:
                tx.execute(
                    "INSERT INTO hub_rates (hub, checkpoint, per_minute, at) "
                    "SELECT %s, c, n, %s FROM unnest(%s::text[], %s::int8[]) AS r(c, n) "
                    "ON CONFLICT (hub, checkpoint) DO UPDATE SET per_minute = excluded.per_minute, at = excluded.at",
                    (self.hub, now, list(rates), list(rates.values())),
                )
            rows = tx.execute(
                "SELECT checkpoint, sum(per_minute) FROM hub_rates WHERE hub <> %s AND at >= %s "
                "GROUP BY checkpoint",
                (self.hub, now - fresh_s),
            ).fetchall()
            return {cp: int(n) for cp, n in rows if n}

        return self.submit(job).result()

    def claim_orphans(self, tx: psycopg.Connection, older_than: float, limit: int = 500) -> list[Alert]:
        return PgEvents.claim_orphans(tx, self.hub, older_than, limit)

    def recent_alerts(self, limit: int = 100, include_covert: bool = True) -> list[Alert]:
        return self.read(lambda tx: PgEvents.recent_alerts(tx, limit, include_covert))

    def alerts_after(self, position: int, limit: int = 500) -> list[tuple[int, Alert]]:
        """Alerts after ``position`` in commit order, with their positions (every hub shares them)."""
        return self.read(lambda tx: PgEvents.alerts_after(tx, position, limit))

    def alert_position(self) -> int:
        return self.read(PgEvents.alert_position)

    def announce_news(self) -> None:
        self.news.announce()

    def listen_news(self, on_news: Callable[[], None]) -> None:
        self.news.listen(on_news)

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
