"""What one ingest job costs on PostgreSQL: the hub's real ingest pipeline over ``PgStores``, in process.

``run()`` starts a cluster of its own (:class:`cordon.testing.PostgresCluster`: fsync, synchronous_commit
and full_page_writes on), loads a small watchlist, and hands ``Ingest.handle`` EventBatch messages of
``reads_per_message`` reads, one read in 25 messages of a listed plate (an alert). Messages go in bursts:
a burst of 1 waits for each commit before the next message (each job commits alone, as at a light load);
a burst of 8 queues eight before waiting (they share a commit, as when the writer is busy). For each burst
size it reports per message: the CPU time of this process (the hub's side: the writer thread and the
callers), of the writer thread alone, and of PostgreSQL's process tree, and the wall time. No broker, no
edge, no HTTP: what is left is the store and the pipeline, so a change to either is measured without the
rest of the machine in the way (``cordon bench e2e`` measures the whole path, and on a shared host its
latency is set by what else runs there).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from cordon.testing import PostgresCluster

CHECKPOINT = "SD-BENCH-PG-001"
LISTED = 200
HIT_EVERY = 25
WARMUP_MESSAGES = 300


def run(
    messages: int = 2000,
    reads_per_message: int = 2,
    bursts: tuple[int, ...] = (1, 8),
    warmup: int = WARMUP_MESSAGES,
) -> dict[str, Any]:
    """Measure (see the module doc) and return one JSON-ready dict."""
    from central.ingest.listener import Recorder
    from central.ingest.pipeline import Ingest
    from central.record.postgresql.store import PgStores
    from central.watchlists.index import HubWatchlists, changes_for, parse_csv
    from central.watchlists.lists import ListService
    from protocols import topics
    from protocols.messages import SCHEMA_VERSION, EventBatch, PlateRead, encode

    load_before = os.getloadavg()
    cluster = PostgresCluster(settings={"shared_buffers": "256MB"}).start()
    try:
        stores = PgStores(cluster.create_database("pgwriter"))
        stores.start()
        writer_cpu = [0.0]
        drain = stores._drain
        draining = threading.Lock()

        def timed_drain() -> None:  # the writer thread's CPU time, job by job
            with draining:
                t = time.thread_time()
                drain()
                writer_cpu[0] += time.thread_time() - t

        def settled() -> None:
            """Wait for a drain still counting its CPU: its futures resolve before it ends."""
            with draining:
                pass

        stores._drain = timed_drain  # type: ignore[method-assign]
        try:
            watchlists = HubWatchlists()
            ListService(stores, watchlists, lambda *a, **k: None).load()
            listed = [f"鲁Q{n:05d}" for n in range(LISTED)]
            loaded = parse_csv(
                "plate,list,action,priority,reason\n" + "".join(f"{p},bench,intercept,90,x\n" for p in listed)
            )
            stores.submit(
                lambda tx: [
                    op()
                    for op in stores.watchlists.apply_changes(
                        tx, changes_for(loaded, {}), watchlists, "bench"
                    ).index_ops
                ]
            ).result(60)
            ingest = Ingest(stores, watchlists, publish=lambda t, p: None, listener=Recorder())
            topic = topics.events(CHECKPOINT)
            seq = 0
            lock = threading.Lock()

            def message(n: int) -> tuple[bytes, float]:
                nonlocal seq
                now = time.time()
                events = []
                with lock:
                    for k in range(reads_per_message):
                        seq += 1
                        hit = n % HIT_EVERY == 0 and k == 0
                        plate = listed[(n // HIT_EVERY) % LISTED] if hit else f"鲁B{seq % 99_999:05d}"
                        events.append(
                            PlateRead(
                                seq=seq,
                                camera_id="cam",
                                captured_at=now,
                                plate=plate,
                                plate_raw=plate,
                                plate_valid=True,
                            )
                        )
                batch = EventBatch(
                    v=SCHEMA_VERSION, checkpoint=CHECKPOINT, epoch=1, sent_at=now, events=events
                )
                return encode(batch), now

            for n in range(warmup):  # the day's partitions made, the statements prepared
                ingest.handle(topic, *message(n + 1)).result(60)
            out: dict[str, Any] = {}
            for burst in bursts:
                settled()
                writer_cpu[0] = 0.0
                hub0, pg0, wall0 = time.process_time(), cluster.cpu_s(), time.perf_counter()
                for n in range(0, messages, burst):
                    futures = [ingest.handle(topic, *message(n + j)) for j in range(min(burst, messages - n))]
                    for future in futures:
                        future.result(60)
                settled()
                hub1, pg1, wall1 = time.process_time(), cluster.cpu_s(), time.perf_counter()
                out[f"burst_{burst}"] = {
                    "hub_cpu_us_per_message": round((hub1 - hub0) / messages * 1e6),
                    "writer_cpu_us_per_message": round(writer_cpu[0] / messages * 1e6),
                    "postgresql_cpu_us_per_message": round((pg1 - pg0) / messages * 1e6)
                    if pg0 is not None and pg1 is not None
                    else None,
                    "wall_ms_per_message": round((wall1 - wall0) / messages * 1e3, 3),
                }
            alerts, committed = ingest.metrics.alerts, ingest.metrics.reads
        finally:
            stores.stop()
    finally:
        cluster.destroy()
    return {
        **out,
        "alerts": alerts,
        "reads_committed": committed,
        "parameters": {
            "messages": messages,
            "reads_per_message": reads_per_message,
            "bursts": list(bursts),
            "listed_read_every_messages": HIT_EVERY,
            "warmup_messages": warmup,
        },
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "cpu_count": os.cpu_count(),
        "note": NOTE,
    }


NOTE = (
    "The hub's ingest pipeline (central.ingest.pipeline.Ingest) over its PostgreSQL stores, in this process, "
    "against a cluster of the benchmark's own (fsync, synchronous_commit, full_page_writes on). Per message: "
    "hub_cpu_us_per_message is this process's CPU (user + system), writer_cpu_us_per_message the store's "
    "writer thread's alone, postgresql_cpu_us_per_message PostgreSQL's whole process tree (the postmaster, "
    "its children and the children they reaped), wall_ms_per_message the elapsed time. burst_N: N messages "
    "queued before waiting for them (1: each commits alone; 8: they share a commit). CPU figures are less "
    "disturbed by a busy host than wall times; load_average says how busy it was."
)
