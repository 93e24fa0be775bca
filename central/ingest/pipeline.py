"""Hub ingest: validate, insert idempotently, match, commit, then acknowledge.

Runs where the messages arrive: the MQTT thread hands each message to the store's writer thread
as one job. The writer commits every job that is already waiting in one transaction (a batch
without a timer), and only after that commit are acknowledgements published and alerts handed
to the listener (``listener.py``). A failed commit acknowledges nothing, so the edges send those events again;
so does a job that meets a failure of the store itself (``transient``: the database gone away, locked, full),
which is never taken for bad input and kept as a dead letter.
Reads from an upstream (a 视图库, ``viid.py``) come through ``take_upstream``: the same path without the
acknowledgement.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from central.ingest.listener import IngestListener
from central.ingest.routing import Router
from central.intel import stats
from central.intel.clones import LEARN_S, CloneCheck
from central.record.stores import HubStores, Outcome
from central.record.tx import PlateJob, RunAgain, Tx
from central.watchlists.index import HubWatchlists
from protocols import signing, topics
from protocols.alerting import alert_for, kit_alert, person_alert
from protocols.kits import overall_call, raises_alert
from protocols.matching import ListKind, is_active
from protocols.messages import (
    SCHEMA_VERSION,
    Ack,
    Alert,
    AlertHit,
    AlertOutcome,
    AlertReceipt,
    AuditEvent,
    CheckpointStatus,
    DecodeError,
    EdgeHit,
    Event,
    EventBatch,
    Gap,
    KitResultEvent,
    Passage,
    PlateRead,
    decode,
    encode,
    seq_ranges,
)

log = logging.getLogger(__name__)


class _Plated(msgspec.Struct):
    """Of any event of a batch, what says which plate it locks: a read's plate (``Ingest._plates_in``)."""

    type: str = ""
    plate: str = ""
    no_plate: bool = False


class _Plates(msgspec.Struct):
    events: list[_Plated] = []


_plates_decoder = msgspec.json.Decoder(_Plates)


@dataclass(slots=True)
class BatchResult:
    checkpoint: str | None = None
    epoch: int | None = None
    committed: list[int] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    folded: list[Alert] = field(default_factory=list)
    """Open alerts that a hit of this batch was folded into (central/ingest/folding.py), as updated."""
    reads: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    gap_reads: int = 0
    outcomes: list[tuple[str, AlertOutcome]] = field(default_factory=list)
    pictures: list[Alert] = field(default_factory=list)
    """Alerts raised before their edge hit brought the picture, now with it."""
    kits: list[tuple[str, KitResultEvent]] = field(default_factory=list)
    """Quick-test results stored from this batch (first time only)."""
    receipts: list[dict[str, Any]] = field(default_factory=list)
    """Alarm receipts as stored (the consoles' frames, central/record/sqlite/store.py)."""
    acknowledge: bool = True
    """False for reads from an upstream (a 视图库): no edge waits for an acknowledgement."""
    status: CheckpointStatus | None = None
    clock_offset_s: float | None = None
    """Edge clock minus hub clock, from a live (not retained) status; None when unknown."""


@dataclass(slots=True)
class IngestMetrics:
    messages: int = 0
    events_received: int = 0
    """Edge events in the batches this hub was given (each resend again), committed or not."""
    batches_committed: int = 0
    reads: int = 0
    passages: int = 0
    duplicates: int = 0
    alerts: int = 0
    dead_letters: int = 0
    gap_reads: int = 0
    bad_signatures: int = 0
    commit_failures: int = 0
    commit_seconds_total: float = 0.0
    alerts_by_kind: dict[str, int] = field(default_factory=dict)


class _Counted(msgspec.Struct):
    """An event batch as far as counting its events goes (the events are not parsed)."""

    events: list[msgspec.Raw] = []


_counter = msgspec.json.Decoder(_Counted)


def _event_count(payload: bytes) -> int:
    """How many events a batch holds, read as it arrives (a bad payload counts none: it is dead-lettered)."""
    try:
        return len(_counter.decode(payload).events)
    except msgspec.DecodeError:
        return 0


class ReadRates:
    """Reads stored per checkpoint over the last minute, as the hub's ingest counts them (for the map),
    and as the other hubs on the store said theirs (``others``, set by ``central.lifecycle``)."""

    WINDOW_S = 60.0

    def __init__(self) -> None:
        self._seen: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()
        #: the other hubs' reads per minute per checkpoint, as they last said them
        self.others: dict[str, int] = {}

    def own(self, now: float | None = None) -> dict[str, int]:
        """This hub's reads per minute of every checkpoint it counted lately (0 for one gone quiet)."""
        now = time.time() if now is None else now
        with self._lock:
            for seen in self._seen.values():
                self._trim(seen, now)
            return {cp: sum(n for _, n in seen) for cp, seen in self._seen.items()}

    def add(self, checkpoint: str, reads: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            seen = self._seen.setdefault(checkpoint, deque())
            seen.append((now, reads))
            self._trim(seen, now)

    def per_minute(self, checkpoint: str, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            others = self.others.get(checkpoint, 0)
            seen = self._seen.get(checkpoint)
            if not seen:
                return others
            self._trim(seen, now)
            return others + sum(n for _, n in seen)

    def _trim(self, seen: deque[tuple[float, int]], now: float) -> None:
        while seen and now - seen[0][0] > self.WINDOW_S:
            seen.popleft()


class Ingest:
    def __init__(
        self,
        store: HubStores,
        watchlists: HubWatchlists,
        publish: Callable[[str, bytes], None],
        listener: IngestListener,
        max_skew_s: float = 30.0,
        edge_keys: Callable[[str], Ed25519PublicKey | None] | None = None,
        signatures_required: bool = False,
        clones: CloneCheck | None = None,
        router: Router | None = None,
        fold_window_s: float = 0.0,
        clones_shared: bool | Callable[[], bool] = False,
        plates_first: bool = True,
    ) -> None:
        self.store = store
        #: other hubs ingest their share of the reads into the same store (the clone check learns theirs):
        #: a flag, or asked of the duties at each batch (other hubs alive at the last beat)
        self._clones_shared = clones_shared
        #: with ``clones_shared``: each job says its plates before it runs (``PlateJob``), so the store
        #: locks a whole group's at once (False: each job locks its own as it reaches the check, the way
        #: before; ``cordon bench hublocks`` compares the two)
        self.plates_first = plates_first
        self.router = router or Router()
        self.fold_window_s = fold_window_s
        self.clones = clones
        self.watchlists = watchlists
        self._publish = publish
        self.listener = listener
        self._edge_keys = edge_keys
        self.signatures_required = signatures_required
        self.max_skew_s = max_skew_s
        self.metrics = IngestMetrics()
        self.rates = ReadRates()
        self._failing: tuple[str, int] | None = None
        """While commits fail: the last failure logged, and how many failed since the last commit."""
        self._unacknowledged = 0
        self._unacknowledged_lock = threading.Lock()

    @property
    def unacknowledged(self) -> int:
        """Edge events this hub has received and not settled yet (queued, being stored, or committed and
        not yet acknowledged): what an edge must send again if this hub dies now."""
        return self._unacknowledged

    def _hold(self, n: int) -> None:
        with self._unacknowledged_lock:
            self._unacknowledged += n

    # -- MQTT thread ----------------------------------------------------------------------------
    def handle(
        self, topic: str, payload: bytes, received_at: float, retained: bool = False
    ) -> Future[BatchResult]:
        """Queue one MQTT message for the writer; the returned future resolves after the commit."""
        self.metrics.messages += 1
        started = time.perf_counter()
        held = _event_count(payload) if topics.is_events(topic) else 0
        self.metrics.events_received += held
        self._hold(held)
        job: Callable[[Tx], BatchResult] = lambda tx: self._job(tx, topic, payload, received_at, retained)  # noqa: E731
        if topics.is_status(topic):
            # Every hub on the store gets each status and writes the same rows: beside the writer's groups,
            # so a wait for another hub's row holds up no reads or alerts (``HubStores.submit_aside``).
            future = self.store.submit_aside(job)
        else:
            if self._locks_plates():
                job = PlateJob(job, self._plates_in(topic, payload))
            future = self.store.submit(job)
        future.add_done_callback(lambda fut: self._after_commit(fut, started, held))
        return future

    @property
    def clones_shared(self) -> bool:
        shared = self._clones_shared
        return shared() if callable(shared) else shared

    @clones_shared.setter
    def clones_shared(self, value: bool | Callable[[], bool]) -> None:
        self._clones_shared = value

    def _locks_plates(self) -> bool:
        return self.clones is not None and self.clones_shared and self.plates_first

    @staticmethod
    def _plates_in(topic: str, payload: bytes) -> list[str]:
        """The plates a message's job may lock for the clone check: its reads' (decoded here, in the MQTT
        thread, only for that; unverified, which costs at worst a lock too many). None for what is no
        batch of events or cannot be decoded: the job deals with that."""
        try:
            if topics.parse(topic).kind is not topics.TopicKind.EVENTS:
                return []
            batch = _plates_decoder.decode(signing.split(payload)[0])
        except (topics.TopicError, msgspec.DecodeError):
            return []
        return [e.plate for e in batch.events if e.type == "read" and e.plate and not e.no_plate]

    def take_upstream(
        self, source: str, checkpoint: str, epoch: int, reads: list[PlateRead], received_at: float
    ) -> Future[BatchResult]:
        """Queue reads that an upstream (a 视图库) delivered for ``checkpoint`` under its own ``epoch``:
        stored, matched and alerted on exactly like an edge's, idempotent by the same identity, but not
        acknowledged over MQTT and saying nothing about the checkpoint's edge being online."""
        self.metrics.messages += 1
        started = time.perf_counter()

        def job(tx: Tx) -> BatchResult:
            result = BatchResult(acknowledge=False)
            try:
                return self._store_events(
                    tx, result, source, checkpoint, epoch, reads, received_at, received_at
                )
            except RunAgain:
                raise
            except Exception as exc:  # a bug must cost one dead letter, not the ingest loop
                if self.store.transient(exc):
                    raise  # the store failed, not the reads: not committed, the upstream sends them again
                log.exception("ingest failed on reads from %s", source)
                raw = msgspec.json.encode(reads)
                return self._dead(
                    tx,
                    BatchResult(acknowledge=False),
                    source,
                    f"internal error: {exc}",
                    raw,
                    checkpoint,
                    received_at,
                )

        plates = [r.plate for r in reads if r.plate and not r.no_plate]
        future = self.store.submit(PlateJob(job, plates) if self._locks_plates() else job)
        future.add_done_callback(lambda fut: self._after_commit(fut, started))
        return future

    def _after_commit(self, future: Future[BatchResult], started: float, held: int = 0) -> None:
        try:
            self._after(future, started)
        finally:
            self._hold(-held)  # acknowledged now, or failed (the edge sends it again)

    def _after(self, future: Future[BatchResult], started: float) -> None:
        try:
            result = future.result()
        except Exception as exc:
            self.metrics.commit_failures += 1
            # An outage fails every job until it ends: each new reason is logged once, not each job.
            said, failed = self._failing or ("", 0)
            if str(exc) != said:
                log.error("ingest commit failed (edges will resend): %s", exc)
                said = str(exc)
            self._failing = (said, failed + 1)
            return
        m = self.metrics
        m.batches_committed += 1
        m.commit_seconds_total += time.perf_counter() - started
        m.reads += result.reads
        if result.checkpoint is not None and result.reads:
            self.rates.add(result.checkpoint, result.reads)
        m.duplicates += result.duplicates
        m.dead_letters += result.dead_letters
        m.gap_reads += result.gap_reads
        m.alerts += len(result.alerts)
        for alert in result.alerts:
            m.alerts_by_kind[alert.hit.kind] = m.alerts_by_kind.get(alert.hit.kind, 0) + 1
        if (
            result.acknowledge
            and result.checkpoint is not None
            and result.epoch is not None
            and result.committed
        ):
            ack = Ack(v=SCHEMA_VERSION, epoch=result.epoch, ranges=seq_ranges(result.committed))
            self._publish(topics.ack(result.checkpoint), encode(ack))
        events = self.listener
        if result.alerts:
            events.alerts_raised(result.alerts)
        if result.folded:
            events.alerts_folded(result.folded)
        if result.status is not None:
            events.status_changed(result.status, result.clock_offset_s)
        if result.outcomes:
            events.outcomes_recorded(result.outcomes)
        if result.pictures:
            events.pictures_arrived(result.pictures)
        if result.kits:
            events.kits_recorded(result.kits)
        if result.receipts:
            events.receipts_recorded(result.receipts)
        if self._failing is not None:  # last: the acknowledgement and the alerts go first
            log.warning("ingest commits again, after %d failed", self._failing[1])
            self._failing = None

    # -- writer thread ----------------------------------------------------------------------------
    def _job(self, tx: Tx, topic: str, payload: bytes, received_at: float, retained: bool) -> BatchResult:
        result = BatchResult()
        try:
            parsed = topics.parse(topic)
        except topics.TopicError as exc:
            return self._dead(tx, result, f"mqtt:{topic[:200]}", str(exc), payload, None, received_at)
        source = f"mqtt:{topic}"
        if (
            payload
            and parsed.checkpoint is not None
            and parsed.kind in (topics.TopicKind.EVENTS, topics.TopicKind.STATUS, topics.TopicKind.RECEIPT)
        ):
            key = self._edge_keys(parsed.checkpoint) if self._edge_keys is not None else None
            try:
                payload = signing.open_signed(payload, key, required=self.signatures_required)
            except signing.SignatureError as exc:
                # Not acknowledged: the checkpoint never sent this (or sent it unsigned against the rules).
                self.metrics.bad_signatures += 1
                return self._dead(
                    tx, result, source, f"signature: {exc}", payload, parsed.checkpoint, received_at
                )
        try:
            if parsed.kind is topics.TopicKind.EVENTS:
                return self._events(tx, result, source, parsed.checkpoint or "", payload, received_at)
            if parsed.kind is topics.TopicKind.STATUS:
                return self._status(
                    tx, result, source, parsed.checkpoint or "", payload, received_at, retained
                )
            if parsed.kind is topics.TopicKind.RECEIPT:
                return self._receipt(tx, result, source, parsed.checkpoint or "", payload, received_at)
        except RunAgain:
            raise  # the writer attaches a day file of the record and runs this message again
        except Exception as exc:  # a bug must cost one dead letter, not the ingest loop
            if self.store.transient(exc):
                raise  # an outage is not bad input: the job fails, nothing is acknowledged, the edge resends
            log.exception("ingest failed on a message from %s", topic)
            return self._dead(
                tx,
                BatchResult(),
                source,
                f"internal error: {type(exc).__name__}: {exc}",
                payload,
                parsed.checkpoint,
                received_at,
            )
        return self._dead(
            tx,
            result,
            source,
            f"the hub does not take {parsed.kind} messages",
            payload,
            parsed.checkpoint,
            received_at,
        )

    def _dead(
        self,
        tx: Tx,
        result: BatchResult,
        source: str,
        reason: str,
        payload: bytes,
        checkpoint: str | None,
        received_at: float,
    ) -> BatchResult:
        self.store.dead_letter(tx, source, reason, payload, checkpoint, received_at)
        result.dead_letters += 1
        log.warning("dead letter from %s: %s", source, reason)
        return result

    def _events(
        self,
        tx: Tx,
        result: BatchResult,
        source: str,
        checkpoint: str,
        payload: bytes,
        received_at: float,
    ) -> BatchResult:
        try:
            batch = decode(EventBatch, payload)
        except DecodeError as exc:
            return self._dead(tx, result, source, exc.reason, payload, checkpoint, received_at)
        if batch.checkpoint != checkpoint:
            return self._dead(
                tx,
                result,
                source,
                f"checkpoint {batch.checkpoint!r} in the payload differs from the topic's {checkpoint!r}",
                payload,
                checkpoint,
                received_at,
            )
        self._store_events(
            tx, result, source, checkpoint, batch.epoch, batch.events, batch.sent_at, received_at
        )
        if abs(received_at - batch.sent_at) <= 5:
            # Only fresh batches say anything about the edge's clock (replays are old by design).
            self.store.checkpoint_seen(tx, checkpoint, received_at, batch.epoch)
        return result

    def _store_events(
        self,
        tx: Tx,
        result: BatchResult,
        source: str,
        checkpoint: str,
        epoch: int,
        events: Sequence[Event],
        sent_at: float,
        received_at: float,
    ) -> BatchResult:
        """Insert, match and reconcile one checkpoint's events (inside the writer's transaction)."""
        result.checkpoint, result.epoch = checkpoint, epoch
        stored_reads: list[PlateRead] = []
        first_alert = len(result.alerts)
        tally = stats.Tally(self.store.record.tz)
        # A run of reads and passages is stored in one go and its edge hits looked up in one go: what one
        # of them does next (match, reconcile) reads none of the others, so this is as event by event.
        run_start = run_end = 0
        run_outcomes: list[Outcome] = []
        hit_reads: set[int] = set()
        for i, event in enumerate(events):
            if isinstance(event, PlateRead | Passage):
                if i >= run_end:
                    run_start = run_end = i
                    while run_end < len(events) and isinstance(events[run_end], PlateRead | Passage):
                        run_end += 1
                    run = cast("list[PlateRead | Passage]", events[run_start:run_end])
                    stored = self.store.insert_reads(tx, checkpoint, epoch, run, sent_at, received_at)
                    run_outcomes, hit_reads = stored.outcomes, stored.hit_reads
                outcome = run_outcomes[i - run_start]
            else:
                outcome = self.store.insert_event(tx, checkpoint, epoch, event, sent_at, received_at)
            # Committed either way (stored now, stored before, or kept as a dead letter): acknowledge.
            result.committed.append(event.seq)
            if outcome.dead_letter:
                self._dead(
                    tx,
                    result,
                    source,
                    outcome.dead_letter,
                    msgspec.json.encode(event),
                    checkpoint,
                    received_at,
                )
                continue
            if not outcome.inserted:
                result.duplicates += 1
                if not (outcome.seen_before and isinstance(event, PlateRead)):
                    continue
                # The read's day file may have committed without hub.db (see central/record/sqlite/dayfiles.py):
                # match again; alerts are idempotent by id, so only a lost one is raised.
            else:
                tally.add(checkpoint, event)
                if isinstance(event, PlateRead):
                    result.reads += 1
            if isinstance(event, PlateRead):
                self._match(tx, result, checkpoint, epoch, event, received_at)
                stored_reads.append(event)
                if event.seq in hit_reads:  # almost no read has an edge hit: most need no reconciling
                    self._reconcile(tx, result, checkpoint, epoch, event.seq, received_at, event.captured_at)
            elif isinstance(event, EdgeHit):
                self._reconcile(tx, result, checkpoint, epoch, event.read_seq, received_at, event.raised_at)
            elif isinstance(event, AlertOutcome):
                # An outcome for a hit folded into an open alert is that alert's outcome on the console.
                into = self.store.folded_into(tx, event.alert_id)
                result.outcomes.append(
                    (checkpoint, msgspec.structs.replace(event, alert_id=into) if into else event)
                )
                self.store.audit.append(
                    tx,
                    event.officer,
                    "officer",
                    "alert.outcome",
                    target=event.alert_id,
                    reason=event.note,
                    detail={"checkpoint": checkpoint, "outcome": event.outcome},
                    at=received_at,
                )
            elif isinstance(event, KitResultEvent):
                result.kits.append((checkpoint, event))
                self._match_person(tx, result, checkpoint, epoch, event, received_at)
                r = event.result
                self.store.audit.append(
                    tx,
                    event.checkpoint_officer,
                    "officer",
                    "kit.result",
                    target=r.result_id,
                    detail={
                        "checkpoint": checkpoint,
                        "kit_model": r.kit_model,
                        "result": overall_call(r.panels),
                        "id_last4": r.subject.id_last4,
                        "person_hits": event.person_hits,
                    },
                    at=received_at,
                )
            elif isinstance(event, AuditEvent):
                try:
                    detail = msgspec.json.decode(event.detail.encode())
                except msgspec.DecodeError:
                    detail = {"raw": event.detail[:1000]}
                detail = {
                    **(detail if isinstance(detail, dict) else {"value": detail}),
                    "checkpoint": checkpoint,
                    "received_at": received_at,
                }
                self.store.audit.append(
                    tx, event.actor, event.role, event.action, target=event.target, detail=detail, at=event.at
                )
            elif isinstance(event, Gap):
                result.gap_reads += event.count
                log.warning(
                    "%s dropped %d plain reads at its outbox quota (%d in all): %s",
                    checkpoint,
                    event.count,
                    event.dropped_total,
                    event.reason,
                )
        self._thumbnails(tx, result, first_alert, events)
        self.store.stats.add_daily_counts(tx, tally.counts)
        if self.clones is not None and stored_reads:
            # Last: a job the writer runs again after attaching a day file never got here.
            if self.clones_shared:
                # Other hubs ingest other batches of these plates: their committed reads first.
                since = min(r.captured_at for r in stored_reads) - LEARN_S
                plates = sorted({r.plate for r in stored_reads if r.plate and not r.no_plate})
                seqs = [r.seq for r in stored_reads]
                self.clones.learn(self.store.clone_sightings(tx, plates, since, (checkpoint, epoch, seqs)))
            for finding in self.clones.batch(checkpoint, epoch, stored_reads):
                alert = self.clones.alert(finding, raised_at=received_at)
                self._raise(tx, result, alert)
        return result

    def _thumbnails(self, tx: Tx, result: BatchResult, first_alert: int, events: list[Event]) -> None:
        """The picture an edge hit carried goes on its alert, however the hit and its read were batched:
        a hit in this batch (its alert made now from the read, or stored from an earlier batch), or a
        hit stored earlier for an alert made now (hits replay before reads)."""
        thumbs = {e.alert_id: e.thumbnail for e in events if isinstance(e, EdgeHit) and e.thumbnail}
        for i in range(first_alert, len(result.alerts)):
            alert = result.alerts[i]
            thumb = thumbs.pop(alert.alert_id, None)
            if thumb is None:
                thumb = self.store.hit_thumbnail(tx, alert.checkpoint, alert.epoch, alert.seq, alert.alert_id)
            if thumb is not None and alert.thumbnail is None:
                result.alerts[i] = msgspec.structs.replace(alert, thumbnail=thumb)
                self.store.add_thumbnail(tx, alert.alert_id, thumb)
        for alert_id, thumb in thumbs.items():  # alerts dispatched before their hit arrived: the consoles get
            updated = self.store.add_thumbnail(
                tx, alert_id, thumb
            )  # the picture (not the tablets: they had it)
            if updated is not None:
                result.pictures.append(updated)

    def _match(
        self,
        tx: Tx,
        result: BatchResult,
        checkpoint: str,
        epoch: int,
        read: PlateRead,
        received_at: float,
    ) -> None:
        if read.no_plate or not read.plate:
            return
        hits = self.watchlists.match(
            read.plate, now=read.captured_at, colour=read.colour, vehicle_type=read.vehicle_type
        )
        for hit in hits:
            wl = self.watchlists.lists.get(hit.list_id)
            entry = self.store.watchlists.get_entry(tx, hit.entry_id)
            alert = alert_for(
                checkpoint,
                epoch,
                read,
                hit,
                list_name=wl.name if wl else hit.list_id,
                reason=entry.reason if entry else "",
                raised_at=received_at,
            )
            self._raise(tx, result, alert)

    def _raise(self, tx: Tx, result: BatchResult, alert: Alert) -> None:
        """Fold ``alert`` into its entry's open alert, or route and store it as a new one (idempotent by id)."""
        folded = self.store.fold(tx, alert, self.fold_window_s)
        if folded is not None:
            result.folded = [a for a in result.folded if a.alert_id != folded.alert_id] + [folded]
            return
        if self.store.folded_or_raised(tx, alert.alert_id):
            return
        routed = self.router.route(alert)
        if self.store.insert_alert(tx, routed):
            result.alerts.append(routed)

    def _match_person(
        self,
        tx: Tx,
        result: BatchResult,
        checkpoint: str,
        epoch: int,
        event: KitResultEvent,
        received_at: float,
    ) -> None:
        """A positive or invalid quick test is an alert (the same one the edge raised: one id); and the hub
        checks the subject again against every person list (covert ones included,
        which never reach an edge); a hit is an alert like a plate hit, routed by the same rules."""
        r = event.result
        if raises_alert(r):
            self._raise_unfolded(
                tx, result, kit_alert(checkpoint, epoch, event.seq, r, raised_at=received_at)
            )
        for entry in self.store.watchlists.entries_with_plate(tx, r.subject.id_hash):
            wl = self.watchlists.lists.get(entry.list_id)
            if (
                wl is None
                or wl.kind != ListKind.PERSON
                or not is_active(wl.valid_from, wl.valid_until, r.sampled_at)
                or not is_active(entry.valid_from, entry.valid_until, r.sampled_at)
            ):
                continue
            self._raise_unfolded(
                tx, result, person_alert(checkpoint, epoch, event.seq, r, entry, wl, raised_at=received_at)
            )

    def _raise_unfolded(self, tx: Tx, result: BatchResult, alert: Alert) -> None:
        """A quick test's alert: each test is its own event (never folded), routed like any alert."""
        routed = self.router.route(alert)
        if self.store.insert_alert(tx, routed):
            result.alerts.append(routed)

    def _reconcile(
        self,
        tx: Tx,
        result: BatchResult,
        checkpoint: str,
        epoch: int,
        read_seq: int,
        received_at: float,
        near: float,
    ) -> None:
        """Edge and hub hits on one read are one alert (same id). An edge hit the hub did not make
        itself (its lists differed at that moment) still becomes an alert: the officers saw it.
        ``near`` is about when the read was captured (it tells the record which day to look in)."""
        # Edge hits first: almost every read has none, and then the read need not be looked up at all.
        missing = self.store.unalerted_edge_hits(tx, checkpoint, epoch, read_seq)
        if not missing:
            return
        stored = self.store.record.lookup_read(tx, checkpoint, epoch, read_seq, near)
        if stored is None:
            return  # the read comes later (hits replay first); this runs again then
        camera_id, captured_at, plate, lane, colour, vehicle_type = (
            stored.camera_id,
            stored.captured_at,
            stored.plate,
            stored.lane,
            stored.colour,
            stored.vehicle_type,
        )
        for aid, entry_id, list_id, kind, score, explanation, feed_version, matcher_version in missing:
            wl = self.watchlists.lists.get(list_id)
            entry = self.store.watchlists.get_entry(tx, entry_id)
            alert = Alert(
                v=SCHEMA_VERSION,
                alert_id=aid,
                checkpoint=checkpoint,
                epoch=epoch,
                seq=read_seq,
                raised_at=received_at,
                captured_at=captured_at,
                camera_id=camera_id,
                plate_read=plate,
                lane=lane,
                colour=colour,
                vehicle_type=vehicle_type,
                direction=stored.direction if stored.direction in ("in", "out") else None,  # type: ignore[arg-type]
                hit=AlertHit(
                    entry_id=entry_id,
                    entry_plate=entry.plate if entry else "",
                    list_id=list_id,
                    list_name=wl.name if wl else list_id,
                    action=wl.action.value if wl else "intercept",
                    priority=wl.priority if wl else 50,
                    kind=kind,
                    score=score,
                    explanation=f"{explanation} (matched at the checkpoint, feed version {feed_version})"[
                        :500
                    ],
                    reason=(entry.reason if entry else "")[:500],
                    feed_version=feed_version,
                    matcher_version=matcher_version,
                ),
            )
            self._raise(tx, result, alert)

    def _receipt(
        self,
        tx: Tx,
        result: BatchResult,
        source: str,
        checkpoint: str,
        payload: bytes,
        received_at: float,
    ) -> BatchResult:
        """An alarm receipt: a tablet at ``checkpoint`` showed an alert, or an officer acknowledged it."""
        try:
            receipt = decode(AlertReceipt, payload)
        except DecodeError as exc:
            return self._dead(tx, result, source, exc.reason, payload, checkpoint, received_at)
        if receipt.checkpoint != checkpoint:
            return self._dead(
                tx,
                result,
                source,
                f"checkpoint {receipt.checkpoint!r} in the payload differs from the topic's {checkpoint!r}",
                payload,
                checkpoint,
                received_at,
            )
        result.receipts.append(self.store.insert_receipt(tx, receipt, received_at))
        return result

    def _status(
        self,
        tx: Tx,
        result: BatchResult,
        source: str,
        checkpoint: str,
        payload: bytes,
        received_at: float,
        retained: bool,
    ) -> BatchResult:
        if not payload:
            return result  # a retained status being cleared
        try:
            status = decode(CheckpointStatus, payload)
        except DecodeError as exc:
            return self._dead(tx, result, source, exc.reason, payload, checkpoint, received_at)
        if status.checkpoint != checkpoint:
            return self._dead(
                tx,
                result,
                source,
                f"checkpoint {status.checkpoint!r} in the payload differs from the topic's {checkpoint!r}",
                payload,
                checkpoint,
                received_at,
            )
        fields: dict[str, object] = {
            "online": status.online,
            "status": encode(status).decode(),
            "epoch": status.epoch,
            "feed_version": status.feed_version,
        }
        if not retained:
            fields["last_seen"] = received_at
            if status.online:
                fields["clock_offset_s"] = result.clock_offset_s = status.sent_at - received_at
                self.store.stats.sample_status(tx, status, received_at, self.store.record.tz)
        self.store.update_checkpoint(tx, checkpoint, **fields)
        result.status = status
        return result
