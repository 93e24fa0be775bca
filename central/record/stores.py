"""The hub's storage seam: what the rest of ``central/`` needs of its stores, as typing Protocols over
domain types (msgspec structs and dataclasses, never rows or connections).

Everything above ``record/`` is written against these; ``central.record.sqlite`` implements them on
hub.db and the day files (the default, and what ``cordon demo`` runs), ``central.record.postgresql``
implements the read store, and ``central.record.factory`` picks the implementations from the settings.

Writes run inside one transaction of the store: ``IngestStore.ingest`` (an edge batch: validate,
store, match, fold, route, count, all or nothing) and ``run``/``submit`` for any other change; the
job gets a :class:`~central.record.tx.Tx`, an opaque handle it only passes back to the store's
methods. Reads take a handle from ``read``. A store method may raise
:class:`~central.record.tx.RunAgain` inside a job; the job lets it through and runs again.

What a hub keeps in memory beside its stores (and another hub would need) is listed in
docs/architecture.md ("State a hub keeps in memory").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec

from central.people.audit import Record, Verdict
from central.people.users import User
from central.record.alerts import PendingHit
from central.record.reads import ReadStore, RecordCounts
from central.record.stats import Hidden
from central.record.tx import Tx
from central.record.watchlists import Applied, ListIndex, LoggedChange
from protocols.feed import FeedChange
from protocols.matching import Entry, PermitRule, Watchlist
from protocols.messages import (
    Alert,
    AlertReceipt,
    CheckpointStatus,
    Event,
    OfficerAccounts,
    Passage,
    PlateRead,
)
from runtime.web import LoginLimits

__all__ = [
    "AlertStore",
    "AuditStore",
    "BackupCut",
    "Counts",
    "DutyStore",
    "EvidenceStore",
    "HubStores",
    "ImportJobStore",
    "IngestStore",
    "KitResultStore",
    "LoginLimitStore",
    "Outcome",
    "ReadStore",
    "StatsStore",
    "StoredRun",
    "UserStore",
    "WatchlistStore",
    "WebhookStore",
]

T = TypeVar("T")


class Outcome(msgspec.Struct):
    """What happened to one event of a batch."""

    inserted: bool
    dead_letter: str | None = None
    seen_before: bool = False
    """A resend of a read already in its day file: matching runs again (crash safety, see readstore)."""


@dataclass(frozen=True, slots=True)
class StoredRun:
    """What ``AlertStore.insert_reads`` did with a run of reads and passages."""

    outcomes: list[Outcome]
    """One per event, in order."""
    hit_reads: set[int]
    """The sequence numbers of the run's reads that edge hits name (alerted or not)."""


@dataclass(frozen=True, slots=True)
class Counts:
    reads: int
    passages: int
    alerts: int
    dead_letters: int


@dataclass(frozen=True, slots=True)
class BackupCut:
    """What one backup holds: files relative to its folder, what is in them, and the writer's pause."""

    files: list[str]
    reads: int
    passages: int
    alerts: int
    audit_records: int
    audit_head: str
    """``ID:HASH`` of the last audit record in the cut (``cordon audit verify --head``)."""
    migrations: list[int]
    paused_s: float
    """How long hub.db's write lock was held: the longest a commit of the hub's writer waited for it (a
    PostgreSQL base backup holds no lock: 0)."""
    store: str = "sqlite"
    """``sqlite``: the files are the cut. ``postgresql``: a base backup in ``pgdata/``, whose counts and
    audit head were read just before it began, so the backup holds at least them."""
    details: dict[str, Any] = field(default_factory=dict)
    """What the store adds to the manifest (PostgreSQL: the WAL range, the oldest day held, archiving)."""


class IngestStore(Protocol):
    """One transaction for a whole batch: the job inserts, matches, folds and routes through the store's
    methods with the handle it gets, and all of it commits together (or none of it, and nothing is
    acknowledged). On SQLite the job runs in the writer thread, grouped with the jobs already waiting.
    When the store itself fails (``transient``) the job's future raises; on PostgreSQL it raises
    :class:`~central.record.tx.StoreUnavailable` and the store connects again for the next job."""

    def submit(self, job: Callable[[Tx], T]) -> Future[T]:
        """Run ``job`` in one write transaction (from any thread); the future resolves after the commit."""
        ...

    def submit_aside(self, job: Callable[[Tx], T]) -> Future[T]:
        """Like ``submit``, but in a transaction of its own beside the writer's groups (PostgreSQL): for
        what every hub on the store writes alike, a checkpoint's status, so that one hub waiting for the
        row another hub's group holds never holds up its own ingest. Alone on SQLite: ``submit``."""
        ...

    async def run(self, job: Callable[[Tx], T]) -> T:
        """``submit`` for the event loop."""
        ...

    def read(self, fn: Callable[[Tx], T]) -> T:
        """Run a read-only ``fn`` on a handle of its own (blocking: call it from a thread)."""
        ...

    def transient(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised inside a job, is the store failing rather than the job (``StoreUnavailable``,
        or the driver's own error for a lost connection, a lock, a deadlock, a full disk): a job must let
        it through, to fail and be sent again, and never keep it as a dead letter."""
        ...


class AlertStore(Protocol):
    """Events from the edges (hits, gaps, outcomes, kit results, audit events), alerts and their folding,
    outcomes, alarm receipts, checkpoints, dead letters, escalations; retention of the hits."""

    def insert_event(
        self, tx: Tx, checkpoint: str, epoch: int, event: Event, edge_sent_at: float, received_at: float
    ) -> Outcome: ...

    def insert_reads(
        self,
        tx: Tx,
        checkpoint: str,
        epoch: int,
        events: Sequence[PlateRead | Passage],
        edge_sent_at: float,
        received_at: float,
    ) -> StoredRun:
        """A run of reads and passages of one batch: what ``insert_event`` on each in turn gives, and which
        of its reads edge hits name (the reads worth reconciling), in as few round trips as the store can."""
        ...

    def insert_alert(self, tx: Tx, alert: Alert) -> bool: ...

    def add_thumbnail(self, tx: Tx, alert_id: str, thumbnail: str) -> Alert | None: ...

    def update_checkpoint(self, tx: Tx, checkpoint: str, **fields: Any) -> None: ...

    def checkpoint_seen(self, tx: Tx, checkpoint: str, last_seen: float, epoch: int) -> None:
        """A fresh batch from the checkpoint: when it was last seen and its epoch. Hubs sharing the store
        all say so at once: one that finds the row being written by another leaves it to that one."""
        ...

    def fold(self, tx: Tx, alert: Alert, window_s: float) -> Alert | None: ...

    def folded_or_raised(self, tx: Tx, alert_id: str) -> bool: ...

    def folded_into(self, tx: Tx, alert_id: str) -> str | None: ...

    def hit_thumbnail(
        self, tx: Tx, checkpoint: str, epoch: int, read_seq: int, alert_id: str
    ) -> str | None: ...

    def unalerted_edge_hits(self, tx: Tx, checkpoint: str, epoch: int, read_seq: int) -> list[PendingHit]: ...

    def insert_receipt(self, tx: Tx, receipt: AlertReceipt, received_at: float) -> dict[str, Any]: ...

    def dead_letter(
        self,
        tx: Tx,
        source: str,
        reason: str,
        raw: bytes,
        checkpoint: str | None = None,
        received_at: float | None = None,
    ) -> int: ...

    def escalate_due(self, tx: Tx, after_s: float, now: float | None = None) -> list[dict[str, Any]]: ...

    def escalated_among(self, tx: Tx, alert_ids: list[str], after_s: float) -> list[dict[str, Any]]: ...

    def alerts_naming(self, tx: Tx, checkpoint: str, epoch: int, seq: int) -> list[Alert]: ...

    async def mark_dispatched(self, alert_ids: list[str]) -> None: ...

    def undispatched_alerts(self) -> list[Alert]:
        """The alerts not dispatched yet that are this hub's to dispatch (it raised them or took them
        over; an alert stored before hubs were named is anybody's), oldest first: sent again at start-up."""
        ...

    def clone_sightings(
        self, tx: Tx, plates: Sequence[str], since: float, besides: tuple[str, int, Sequence[int]]
    ) -> list[tuple[Any, str | None, str | None]]:
        """Inside the ingest job, before the clone check: the latest reads of ``plates`` captured since
        ``since`` that other hubs committed (with this hub's own; but for ``besides``: the batch's
        checkpoint, epoch and seqs), oldest first, each with its vehicle colour and make, for the check to
        learn (``CloneCheck.learn``); a transaction that checks a plate after another's waits for it. Alone
        on SQLite: none (the check saw every read)."""
        ...

    def share_rates(self, rates: dict[str, int], now: float, fresh_s: float) -> dict[str, int]:
        """Say this hub's reads per minute per checkpoint (its ``ReadRates``); the other hubs' that said
        theirs within ``fresh_s``, summed per checkpoint (blocking; alone on SQLite: none)."""
        ...

    def claim_orphans(self, tx: Tx, older_than: float, limit: int = 500) -> list[Alert]:
        """Inside a write job: take over the alerts raised before ``older_than`` and not dispatched yet
        whose dispatching hub is gone (PostgreSQL: its life lock is free, ``central.record.duties.life``;
        SQLite: any other hub, since one hub keeps a hub.db), oldest first; they are this hub's to dispatch
        from the commit on. A hub that lives keeps its own."""
        ...

    def recent_alerts(self, limit: int = 100, include_covert: bool = True) -> list[Alert]: ...

    def alerts_after(self, position: int, limit: int = 500) -> list[tuple[int, Alert]]:
        """Alerts after ``position``, oldest first, with their positions. Positions follow commits (one
        writer on SQLite; a lock held to the commit on PostgreSQL, where every hub shares them): a console
        or a hub paging by position skips none."""
        ...

    def alert_position(self) -> int:
        """The newest alert's position (0: none yet)."""
        ...

    def announce_news(self) -> None:
        """Tell the other hubs on the store that this hub committed alerts or news of alerts, so their
        relays read the store now rather than at their next poll: a wake-up after the commit, never inside
        it (from any thread, without blocking; alone on SQLite: nothing)."""
        ...

    def listen_news(self, on_news: Callable[[], None]) -> None:
        """Call ``on_news`` (from another thread) whenever another hub on the store announces news, and once
        on each (re)connect of the listener, until the store stops (alone on SQLite: never)."""
        ...

    def touched_since(self, since: float, limit: int = 500) -> list[tuple[float, Alert]]:
        """The alerts that had news stored at ``since`` or later (a hit folded into them, an outcome, an
        alarm receipt, an escalation; by the time the hub that stored it gave it), each as it is now,
        with the time of its latest news, oldest first. A folded hit's news is its open alert's."""
        ...

    def outcomes(self, alert_ids: list[str]) -> dict[str, list[dict[str, Any]]]: ...

    def receipts(self, alert_ids: list[str]) -> dict[str, list[dict[str, Any]]]: ...

    def gaps(self, checkpoint: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...

    def dead_letters(self, limit: int = 100, before_id: int | None = None) -> list[Any]:
        """Newest first (``runtime.deadletters.DeadLetter`` records)."""
        ...

    def checkpoints(self) -> list[dict[str, Any]]: ...

    def counts(self) -> Counts: ...

    def purge_hits_before(self, cutoff: float) -> dict[str, int]: ...


class KitResultStore(Protocol):
    """Quick-test results (written by ``AlertStore.insert_event`` with their batch)."""

    def kit_results(
        self,
        checkpoint: str | None = None,
        since: float | None = None,
        until: float | None = None,
        result: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]: ...


class WatchlistStore(Protocol):
    """Lists, entries, permit rules and the field feed's versions; a change applied with its audit record
    in the caller's transaction (the hub's index moves after the commit, by ``Applied.index_ops``)."""

    def feed_version(self, tx: Tx) -> int: ...

    def get_list(self, tx: Tx, list_id: str) -> Watchlist | None: ...

    def get_entry(self, tx: Tx, entry_id: str) -> Entry | None: ...

    def list_entries(self, tx: Tx, list_id: str) -> list[Entry]: ...

    def entries_with_plate(self, tx: Tx, plate: str) -> list[Entry]: ...

    def permit_rules(self, tx: Tx) -> list[PermitRule]: ...

    def load_all(self, tx: Tx) -> tuple[list[Watchlist], list[Entry], int, list[PermitRule]]: ...

    def list_summaries(self, tx: Tx) -> list[tuple[Watchlist, int]]: ...

    def search_entries(
        self, tx: Tx, list_id: str, plate_part: str, limit: int, offset: int
    ) -> tuple[list[Entry], int]: ...

    def apply_changes(
        self,
        tx: Tx,
        changes: Iterable[FeedChange],
        watchlists: ListIndex,
        actor: str,
        now: float | None = None,
        role: str = "",
        reason: str = "",
    ) -> Applied: ...

    def versioned_snapshot(self, tx: Tx) -> tuple[int, bytes]: ...

    def field_feed(self, tx: Tx) -> tuple[int, list[Watchlist], list[Entry], list[PermitRule]]: ...

    def unfiled(self, tx: Tx, since: int) -> tuple[int, bool, float | None]: ...

    def deltas_since(self, tx: Tx, since: int, limit: int) -> tuple[int, list[bytes]] | None: ...

    def change_position(self, tx: Tx) -> int:
        """The newest position in the log of list changes (every change, covert lists too; 0: none)."""
        ...

    def changes_after(self, tx: Tx, position: int, limit: int) -> list[tuple[int, LoggedChange]] | None:
        """The logged changes after ``position``, oldest first (at most ``limit``); None when the log no
        longer holds them all: the hub loads its index anew."""
        ...


class UserStore(Protocol):
    """Accounts (sessions are signed cookies checked against each account's generation; API tokens are
    kept hashed on the account)."""

    def add(
        self,
        tx: Tx,
        username: str,
        role: str,
        password_hash: str,
        *,
        display_name: str = "",
        checkpoint: str | None = None,
        now: float | None = None,
    ) -> User: ...

    def get(self, tx: Tx, username: str) -> User: ...

    def all_users(self, tx: Tx) -> list[User]: ...

    def set_disabled(self, tx: Tx, username: str, disabled: bool) -> User: ...

    def set_password(self, tx: Tx, username: str, password_hash: str) -> User: ...

    def new_token(self, tx: Tx, username: str) -> str: ...

    def officer_checkpoints(self, tx: Tx) -> list[str]: ...

    def officer_accounts(self, tx: Tx, checkpoint: str) -> OfficerAccounts: ...

    def directory(self, tx: Tx) -> list[tuple[User, tuple[str, str | None]]]: ...

    def signature(self, tx: Tx) -> tuple[int, float | None, float]: ...


class AuditStore(Protocol):
    """The hash-chained audit trail (the chain's rule: ``central.people.audit``)."""

    def append(
        self,
        tx: Tx,
        actor: str,
        role: str,
        action: str,
        target: str = "",
        reason: str = "",
        detail: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> Record: ...

    def head(self, tx: Tx) -> tuple[int, str] | None: ...

    def records(
        self,
        tx: Tx,
        *,
        since: float | None = None,
        until: float | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int | None = None,
        before_id: int | None = None,
    ) -> list[Record]: ...

    def verify(self, tx: Tx, head: tuple[int, str] | None = None) -> Verdict: ...


class WebhookStore(Protocol):
    """What each webhook was sent, and what it still lacks after a restart."""

    def record_delivery(self, tx: Tx, hook: str, key: str, outcome: str, detail: str, at: float) -> None: ...

    def undelivered_alerts(self, tx: Tx, hook: str, since: float) -> list[bytes]: ...

    def unsent_escalations(self, tx: Tx, hook: str, since: float) -> list[dict[str, object]]: ...


class StatsStore(Protocol):
    """Counters kept at ingest and the command center's summaries read from them."""

    def add_daily_counts(self, tx: Tx, counts: dict[tuple[str, str], list[int]]) -> None: ...

    def sample_status(self, tx: Tx, status: CheckpointStatus, at: float, tz: dt.timezone) -> None: ...

    def summary(
        self,
        tx: Tx,
        group: str,
        first: dt.date,
        last: dt.date,
        tz: dt.timezone,
        ring: Iterable[dict[str, Any]] = (),
        hidden: Hidden = None,
    ) -> dict[str, Any]: ...

    def misreads(
        self, tx: Tx, first: dt.date, last: dt.date, tz: dt.timezone, hidden: Hidden = None
    ) -> dict[str, Any]: ...


class LoginLimitStore(LoginLimits, Protocol):
    """Failed logins per account and address in a sliding window (the methods: ``runtime.web.LoginLimits``,
    which the edge's login uses too). In memory per process (``runtime.web.LoginLimiter``, built by
    ``factory.open_login_limits``): behind a load balancer each hub counts its own failures."""


class ImportJobStore(Protocol):
    """Watchlist imports in progress and their outcome, by job id (``central.web.lists.ImportJob``: a job
    says whether it has ``finished``). In memory (``central.record.memory.MemoryImportJobs``): another
    hub cannot answer for a job; on PostgreSQL its status is saved as it moves, so every hub answers for it,
    and a job whose hub is gone says it failed."""

    def get(self, job_id: str, /) -> Any:
        """The job, or None when there is none by this id (or it was forgotten)."""
        ...

    def add(self, job_id: str, job: Any, /) -> None:
        """Keep a job; past the store's limit the oldest finished jobs are forgotten first."""
        ...

    def save(self, job_id: str, job: Any, /) -> None:
        """The job's status changed (blocking): another hub answering for it sees this status."""
        ...

    def jobs(self) -> list[Any]:
        """Every job kept, oldest first."""
        ...

    def __len__(self) -> int: ...


class EvidenceStore(Protocol):
    """Pictures fetched from the edges, kept by (checkpoint, epoch, seq, kind) under a quota, and the
    requests for them not answered yet. Files under ``<data_dir>/evidence`` and the requests in memory, of
    one hub (``central.record.evidencefiles.EvidenceFiles``), or rows every hub on PostgreSQL shares."""

    def cached(self, key: tuple[str, int, int, str]) -> bytes | None:
        """The picture, or None when it is not kept (a key that names no valid read raises ValueError)."""
        ...

    def keep(self, key: tuple[str, int, int, str], data: bytes) -> None: ...

    def ask(self, request_id: str, checkpoint: str, epoch: int, seq: int, deferred: bool = False) -> None:
        """Record a request for a read's pictures (``deferred``: the checkpoint was offline or silent, ask
        again when it is online); requests older than ``REQUEST_KEEP_S`` are forgotten."""
        ...

    def request_of(self, request_id: str) -> tuple[str, int, int] | None:
        """The read a request (by any hub sharing the store) asked for, or None."""
        ...

    def defer(self, checkpoint: str, epoch: int, seq: int) -> None:
        """Ask for this read again when its checkpoint is online."""
        ...

    def take_deferred(self, checkpoints: Iterable[str]) -> list[tuple[str, int, int]]:
        """The deferred reads of these checkpoints, no longer deferred (the caller asks for them now)."""
        ...

    def answered(self, checkpoint: str, epoch: int, seq: int) -> None:
        """A reply for this read came: it is no longer deferred (its requests are still known, so the copies
        of the reply that reach the other hubs are recognised, until they age out)."""
        ...


class DutyStore(Protocol):
    """Which hub holds each duty: the work that must run on one hub of those sharing the store (retention,
    escalation, webhook deliveries, the feed's publication, each upstream source; docs/architecture.md,
    "Work that runs once"). ``central.record.duties.DutyKeeper`` calls ``claim`` every beat, from one
    thread of its own, and runs each duty while the last beat proves it this hub's.

    Alone on SQLite (``SoleDuties``: one hub per hub.db) this hub holds every duty, always; on PostgreSQL
    (``central.record.postgresql.duties``) a duty is a session-level advisory lock on a connection of the
    hub's own, which the server frees when the hub's session ends."""

    hub: str
    """This hub's name (``cluster.name``)."""
    lease_s: float
    """How long after a beat was sent the duties it proved stay this hub's (``math.inf``: nobody else can
    take them)."""
    shared: bool
    """Other hubs may hold duties on this store (False alone on SQLite): work another hub started is found
    in the store, not in this hub's memory."""
    others: bool
    """Another hub's duty session was alive at the last beat (True until a beat answers: not knowing, a hub
    assumes company). Work that only several hubs need (the clone check learning the reads other hubs took)
    is skipped while a hub is alone on a shared store (and has been for long enough: ``company_at``)."""
    company_at: float
    """When (``time.monotonic()``) a beat last found another hub's duty session; ``-math.inf`` while none
    has (and alone on SQLite). What a hub that died committed stays in the store after it: the clone check
    goes on learning it for a while (``central.intel.clones.learns_from_others``)."""

    def claim(self, duties: Iterable[str]) -> frozenset[str]:
        """Keep the duties this hub holds and take those of ``duties`` nobody holds; the ones it holds now
        (blocking). Raises when the store cannot be reached; this hub then holds none until a claim answers."""
        ...

    def fence(self, tx: Tx, duty: str) -> None:
        """Inside a write job: wait until every other job fenced on ``duty`` has ended, then raise
        ``central.record.duties.DutyLost`` unless this hub still holds the duty, so that a job of a hub that
        lost its duty a moment ago neither commits nor runs beside the job of the hub that took it."""
        ...

    def release(self) -> None:
        """Give up every duty (at shutdown): another hub takes them at its next beat (blocking)."""
        ...


class HubStores(IngestStore, AlertStore, KitResultStore, Protocol):
    """Everything the hub is given at start-up (``central.record.factory.open_store``): the batch and
    alert store itself, and the other stores as its parts."""

    hub: str
    """This hub's name (``cluster.name``): the alerts it raises are its to dispatch."""
    record: ReadStore
    audit: AuditStore
    users: UserStore
    watchlists: WatchlistStore
    webhooks: WebhookStore
    stats: StatsStore

    @property
    def writer_error(self) -> str | None:
        """The last commit failure, for the health route (None while commits succeed)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def record_counts(self) -> RecordCounts: ...

    def purge_before(self, cutoff: dt.date) -> list[dt.date]: ...

    def backup(self, dest: Path, *, lock_timeout_s: float = ...) -> BackupCut: ...
