"""Two hubs' ingest over one PostgreSQL, measured where they meet: the clone check's plate locks and the
day's counts (issue 23: one ``record_days`` row before PostgreSQL migration 16, a row per hub since).

``run()`` starts a cluster of its own (:class:`cordon.testing.PostgresCluster`) and, with two in-process
hubs (a ``PgStores`` and an ``Ingest`` each, the clone check learning the other's reads), measures:

* ``opposite``/``midnight``: every batch reaches both hubs (an edge's resend landing on the other hub, which the
  unique key absorbs), hub a taking the batches in one order and hub b in the opposite one, so two groups
  of jobs take the same plates in opposite orders. A job that fails is sent again, as an edge would, until
  it commits. Counted: deadlocks, other failures, the reads stored (each once) and the clone findings (one
  per cloned plate, none twice). Once with each job locking its own plates as it reaches the check (the
  way before: ``plates_first`` off) and once with the store locking a group's plates up front.
  ``midnight``: no resends; hub a takes a minute-before-midnight's reads, hub b the same plates' reads a
  minute after (other rows, other days' ``record_days`` rows: only the plates' locks meet).
* ``cost``: one hub, batches of ``batch`` fresh reads one after another (one job a commit), the time from
  ``Ingest.handle`` to the commit, p50 per read, for: no learning (one hub alone), learning with each
  job's own locks, learning with the group's locks up front. Modes alternate batch by batch.
* ``record_days``: saturated ingest of fresh reads (``inflight`` batches outstanding per hub, each hub its
  own checkpoint and plates), one hub alone then two at once: commit wait p50/p99 and reads per second.
  Every batch of reads adds to the day's counts: before migration 16 one ``record_days`` row, on which two
  hubs' transactions queued; since, a row per hub (``record_day_counts``), so the hubs share no row here.
  ``writer_time_waiting_for_a_row_share`` is the share of a writer's time spent waiting for another
  transaction's row (sampled every 10 ms).

Figures are from one 2-core machine shared with other work: noisy, and two hubs on it measure contention
more than scaling.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import psycopg

from central.ingest.listener import Recorder
from central.ingest.pipeline import BatchResult, Ingest
from central.intel.clones import CloneCheck, load_geography
from central.record.postgresql.store import PgStores
from central.record.tx import StoreUnavailable
from central.settings import CloneSettings
from central.watchlists.index import HubWatchlists
from cordon.testing import PostgresCluster
from protocols import topics
from protocols.messages import SCHEMA_VERSION, EventBatch, PlateRead, encode

from .match import _plate

#: Far apart on the ring: two minutes between them is a clone.
TANCHENG, LINQING = "SD-LY-001", "SD-LC-001"


class Hub:
    """One in-process hub on the store: its ``PgStores`` and its ``Ingest``."""

    def __init__(self, dsn: str, name: str, *, plates_first: bool = True, clones_shared: bool = True) -> None:
        self.stores = PgStores(dsn, hub=name)
        self.stores.start()
        self.ingest = Ingest(
            self.stores,
            HubWatchlists(),
            publish=lambda _t, _p: None,
            listener=Recorder(),
            clones=CloneCheck(CloneSettings(), load_geography(CloneSettings())),
            clones_shared=clones_shared,
            plates_first=plates_first,
        )
        #: this hub's batches, when a measure sends its own
        self.batches = Batches()

    def send(self, checkpoint: str, payload: bytes) -> Future[BatchResult]:
        return self.ingest.handle(topics.events(checkpoint), payload, time.time())

    def stop(self) -> None:
        self.stores.stop()


class Batches:
    """Batches of reads as edges send them: seqs per checkpoint, in order."""

    def __init__(self) -> None:
        self.seqs: dict[str, int] = {}

    def of(self, checkpoint: str, plates: list[str], captured_at: float) -> bytes:
        reads = []
        for plate in plates:
            seq = self.seqs[checkpoint] = self.seqs.get(checkpoint, 0) + 1
            reads.append(
                PlateRead(
                    seq=seq,
                    camera_id="cam1",
                    captured_at=captured_at,
                    plate=plate,
                    plate_raw=plate,
                    plate_valid=True,
                    confidence=97.0,
                    colour="blue",
                )
            )
        return encode(
            EventBatch(v=SCHEMA_VERSION, checkpoint=checkpoint, epoch=1, sent_at=time.time(), events=reads)
        )


def opposite(
    dsn: str, *, rounds: int, plates_first: bool, resends: bool = True, chunks: int = 6, batch: int = 20
) -> dict[str, Any]:
    """Two hubs taking every batch, in opposite orders (see the module): what failed, what was stored,
    what was found. ``dsn``: an empty database. ``resends`` False: no batch reaches both hubs; hub a takes
    the reads at 郯城 a minute before midnight, hub b those at 临清 a minute after (the same plates, other
    rows, and two days' ``record_days`` rows, which then order nothing)."""
    hubs = [Hub(dsn, "hub-a", plates_first=plates_first), Hub(dsn, "hub-b", plates_first=plates_first)]
    made = Batches()
    deadlocks = other_failures = sent = 0
    over: dict[str, int] = {}
    errors: list[str] = []
    plates_all: list[str] = []
    rng, taken = random.Random(23), set()
    started = time.perf_counter()
    try:
        for _ in range(rounds):
            now = time.time()
            if not resends:  # the last local midnight (the record's days are at +08:00), plus 240 s
                now = (now + 8 * 3600) // 86400 * 86400 - 8 * 3600 + 240
            order: list[tuple[str, bytes]] = []
            for _chunk in range(chunks):
                plates = []
                while len(plates) < batch:  # plates one character apart would be each other's misreads
                    plate = _plate(rng)
                    if plate not in taken:
                        taken.add(plate)
                        plates.append(plate)
                plates_all += plates
                order.append((TANCHENG, made.of(TANCHENG, plates, now - 300)))
                order.append((LINQING, made.of(LINQING, plates, now - 180)))
            pending: list[tuple[Hub, str, bytes, Future[BatchResult]]] = []
            for forward, backward in zip(order, reversed(order), strict=True):
                for hub, (cp, payload) in ((hubs[0], forward), (hubs[1], backward)):
                    if resends or cp == (TANCHENG if hub is hubs[0] else LINQING):
                        pending.append((hub, cp, payload, hub.send(cp, payload)))
                        sent += 1
            while pending:  # as an edge: what was not acknowledged is sent again, until it commits
                again = []
                for hub, cp, payload, future in pending:
                    try:
                        future.result(120)
                    except StoreUnavailable as exc:
                        if "deadlock" in str(exc).lower():
                            deadlocks += 1
                            # what the two waited for: plates' locks, or rows (a key the other inserted,
                            # the record_days row: "ShareLock on transaction")
                            kind = "plate_locks" if "advisory lock" in str(exc) else "rows"
                            over[kind] = over.get(kind, 0) + 1
                        else:
                            other_failures += 1
                            errors.append(str(exc)[:200])
                        again.append((hub, cp, payload, hub.send(cp, payload)))
                        sent += 1
                pending = again
        elapsed = time.perf_counter() - started
    finally:
        for hub in hubs:
            hub.stop()
    with psycopg.connect(dsn, autocommit=True) as conn:
        (reads,) = conn.execute("SELECT count(*) FROM reads").fetchone()  # type: ignore[misc]
        (distinct,) = conn.execute(  # type: ignore[misc]
            "SELECT count(DISTINCT (checkpoint, epoch, seq)) FROM reads"
        ).fetchone()
        found = dict(
            conn.execute(
                "SELECT convert_from(body, 'UTF8')::json->>'plate_read', count(*) FROM alerts "
                "WHERE entry_id LIKE 'rule:clone:%%' GROUP BY 1"
            ).fetchall()
        )
    batches = 2 * rounds * chunks
    return {
        "plates_first": plates_first,
        "resends": resends,
        "rounds": rounds,
        "batches": batches,
        "reads_per_batch": batch,
        "jobs_sent": sent,
        "jobs_delivered": 2 * batches if resends else batches,
        "deadlocks": deadlocks,
        "deadlocks_per_1000_jobs": round(1000 * deadlocks / sent, 2),
        "deadlocks_over": over,
        "other_failures": other_failures,
        "other_failure_samples": errors[:3],
        "reads_expected": batches * batch,
        "reads_stored": reads,
        "reads_stored_distinct": distinct,
        "clones_expected": len(plates_all),
        "clones_found": sum(1 for p in plates_all if found.get(p, 0) >= 1),
        "clones_found_twice": sum(1 for p in plates_all if found.get(p, 0) > 1),
        "elapsed_s": round(elapsed, 2),
    }


def cost(dsn: str, *, batches: int, batch: int = 20) -> dict[str, Any]:
    """One hub, one batch at a time, the three ways (see the module): p50 microseconds per read."""
    modes: dict[str, Hub] = {}
    try:
        modes = {
            "alone": Hub(dsn, "cost-alone", clones_shared=False),
            "job_locks": Hub(dsn, "cost-job", plates_first=False),
            "group_locks": Hub(dsn, "cost-group", plates_first=True),
        }
        made = Batches()
        times: dict[str, list[float]] = {m: [] for m in modes}
        now = time.time()
        for n in range(batches + 20):  # the first 20 of each warm the caches up
            for m, hub in modes.items():
                cp = f"SD-COST-{m}"
                payload = made.of(cp, [f"鲁C{m[0]}{n:05d}{i:02d}" for i in range(batch)], now - 60)
                t = time.perf_counter()
                hub.send(cp, payload).result(60)
                if n >= 20:
                    times[m].append(time.perf_counter() - t)
    finally:
        for hub in modes.values():
            hub.stop()
    p50 = {m: statistics.median(ts) / batch * 1e6 for m, ts in times.items()}
    return {
        "batches": batches,
        "reads_per_batch": batch,
        "us_per_read_p50": {m: round(v, 1) for m, v in p50.items()},
        "job_locks_added_us_per_read": round(p50["job_locks"] - p50["alone"], 1),
        "group_locks_added_us_per_read": round(p50["group_locks"] - p50["alone"], 1),
    }


def _saturate(hubs: list[Hub], seconds: float, inflight: int, batch: int) -> dict[str, Any]:
    """Each hub its own checkpoint and plates, ``inflight`` batches outstanding, for ``seconds``."""
    waits: list[float] = []
    reads = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def load(k: int, hub: Hub) -> None:
        made, cp = hub.batches, f"SD-LOAD-{hub.stores.hub}"  # seqs go on from the phase before
        live: list[tuple[float, Future[BatchResult]]] = []
        while time.monotonic() < stop or live:
            while len(live) < inflight and time.monotonic() < stop:
                n = made.seqs.get(cp, 0)
                payload = made.of(cp, [f"鲁L{k}{n + i:08d}" for i in range(batch)], time.time() - 5)
                live.append((time.perf_counter(), hub.send(cp, payload)))
            t, future = live.pop(0)
            future.result(120)
            with lock:
                waits.append(time.perf_counter() - t)
                reads[0] += batch

    samples: list[int] = []

    def sample() -> None:
        # How many writers wait for another transaction (a row it holds: before migration 16 the day's
        # record_days row, the one row the two hubs shared), sampled every 10 ms.
        with psycopg.connect(hubs[0].stores.dsn, autocommit=True) as conn:
            while time.monotonic() < stop:
                (n,) = conn.execute(  # type: ignore[misc]
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND wait_event = 'transactionid'"
                ).fetchone()
                samples.append(n)
                time.sleep(0.01)

    started = time.perf_counter()
    threads = [threading.Thread(target=load, args=(k, h)) for k, h in enumerate(hubs)]
    threads.append(threading.Thread(target=sample))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - started
    waits.sort()
    return {
        "hubs": len(hubs),
        "writer_time_waiting_for_a_row_share": round(sum(samples) / len(samples) / len(hubs), 3),
        "reads_per_s": round(reads[0] / elapsed),
        "commit_wait_ms_p50": round(waits[len(waits) // 2] * 1000, 2),
        "commit_wait_ms_p99": round(waits[int(len(waits) * 0.99)] * 1000, 2),
    }


def record_days(dsn: str, *, seconds: float, inflight: int = 8, batch: int = 20) -> dict[str, Any]:
    """Commit wait with one hub ingesting alone, then with two at once (see the module)."""
    hubs = [Hub(dsn, "load-a"), Hub(dsn, "load-b")]
    try:
        _saturate(hubs[:1], 2.0, inflight, batch)  # warm-up
        one = _saturate(hubs[:1], seconds, inflight, batch)
        two = _saturate(hubs, seconds, inflight, batch)
    finally:
        for hub in hubs:
            hub.stop()
    return {"one_hub": one, "two_hubs": two}


def run(rounds: int = 10, cost_batches: int = 400, load_s: float = 10.0) -> dict[str, Any]:
    """All three (see the module) on a cluster of the benchmark's own, each on a database of its own."""
    cluster = PostgresCluster().start()
    try:
        fresh: Callable[[str], str] = lambda name: cluster.create_database(name)  # noqa: E731
        return {
            "opposite_job_locks": opposite(fresh("opposite_job"), rounds=rounds, plates_first=False),
            "opposite_group_locks": opposite(fresh("opposite_group"), rounds=rounds, plates_first=True),
            "midnight_job_locks": opposite(
                fresh("midnight_job"), rounds=rounds, plates_first=False, resends=False
            ),
            "midnight_group_locks": opposite(
                fresh("midnight_group"), rounds=rounds, plates_first=True, resends=False
            ),
            "cost": cost(fresh("cost"), batches=cost_batches),
            "record_days": record_days(fresh("load"), seconds=load_s),
        }
    finally:
        cluster.destroy()
