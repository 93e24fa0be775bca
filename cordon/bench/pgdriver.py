"""Which PostgreSQL driver for the hub's store: asyncpg or psycopg 3, measured on what the hub does.

``run()`` starts a cluster of its own (:class:`cordon.testing.PostgresCluster`: fsync and
synchronous_commit on) and, on a table shaped like the record's reads (partitioned by day, the unique
identity including the day, the plate ``COLLATE "C"`` with its index, raw strings as ``bytea``), times
for each driver and each way the hub would call it:

* ``insert``: a batch of ``batch`` reads in one statement (``INSERT ... SELECT FROM unnest(arrays) ON
  CONFLICT DO NOTHING RETURNING``), one commit per batch, a tenth of each batch a resend; per-batch
  latency p50/p99, reads per second, and the client's CPU per read (the hub's process pays it);
* ``lookup``: an exact plate lookup by the index over the whole table (p50/p99).

The hub's store is called from its writer thread (a plain thread that commits a group of batches) and,
for searches, from ``asyncio.to_thread`` in the aiohttp loop. psycopg is called directly from those
threads (``psycopg_thread``). asyncpg is a coroutine API: from the writer thread it must hop to an event
loop of its own and wait for the answer (``asyncpg_from_thread``, ``run_coroutine_threadsafe``); only code
written as coroutines in the hub's loop could call it directly (``asyncpg_loop``, shown for reference).
Searches from the aiohttp loop: ``psycopg_to_thread`` against ``asyncpg_loop``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from cordon.testing import PostgresCluster

from .match import _plate

SCHEMA = [
    """CREATE TABLE bench_reads (
        day date NOT NULL, checkpoint text NOT NULL, epoch bigint NOT NULL, seq bigint NOT NULL,
        digest bytea NOT NULL, plate text COLLATE "C" NOT NULL, camera_id bytea NOT NULL,
        captured_at double precision NOT NULL, received_at double precision NOT NULL,
        plate_raw bytea NOT NULL, plate_valid boolean NOT NULL, confidence real,
        UNIQUE (checkpoint, epoch, seq, day)) PARTITION BY RANGE (day)""",
    "CREATE INDEX bench_reads_plate ON bench_reads (plate, captured_at)",
]
COLUMNS = "day, checkpoint, epoch, seq, digest, plate, camera_id, captured_at, received_at, plate_raw, plate_valid, confidence"
INSERT_PSYCOPG = (
    f"INSERT INTO bench_reads ({COLUMNS}) SELECT * FROM unnest(%b::date[], %b::text[], %b::int8[], "
    "%b::int8[], %b::bytea[], %b::text[], %b::bytea[], %b::float8[], %b::float8[], %b::bytea[], "
    "%b::bool[], %b::float4[]) ON CONFLICT DO NOTHING RETURNING seq"
)
INSERT_ASYNCPG = (
    f"INSERT INTO bench_reads ({COLUMNS}) SELECT * FROM unnest($1::date[], $2::text[], $3::int8[], "
    "$4::int8[], $5::bytea[], $6::text[], $7::bytea[], $8::float8[], $9::float8[], $10::bytea[], "
    "$11::bool[], $12::float4[]) ON CONFLICT DO NOTHING RETURNING seq"
)
LOOKUP_PSYCOPG = (
    "SELECT checkpoint, epoch, seq, captured_at, plate, plate_raw FROM bench_reads "
    "WHERE plate = %b ORDER BY captured_at DESC LIMIT 500"
)
LOOKUP_ASYNCPG = LOOKUP_PSYCOPG.replace("%b", "$1")
TZ = dt.timezone(dt.timedelta(hours=8))


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values), q)), 3) if values else float("nan")


class Workload:
    """The same batches and lookups for every driver."""

    def __init__(self, batches: int, batch: int, lookups: int, seed: int) -> None:
        rng = random.Random(seed)
        self.plates = [_plate(rng) for _ in range(max(1000, batches * batch // 5))]
        now = time.time()
        self.days = sorted({dt.datetime.fromtimestamp(now - i, TZ).date() for i in (0, 86400)})
        self.batches: list[tuple[list[Any], ...]] = []
        seq = 0
        for _ in range(batches):
            rows = []
            for i in range(batch):
                if i < batch // 10 and seq > batch:  # a resend: an earlier identity again
                    s = seq - batch + i
                else:
                    seq += 1
                    s = seq
                plate = self.plates[(s * 7919) % len(self.plates)]
                at = now - (s % 3600)
                rows.append(
                    (
                        dt.datetime.fromtimestamp(at, TZ).date(),
                        "SD-BENCH-001",
                        1,
                        s,
                        s.to_bytes(16, "big"),
                        plate,
                        b"lane1",
                        at,
                        now,
                        plate.encode(),
                        True,
                        90.0,
                    )
                )
            self.batches.append(tuple(list(col) for col in zip(*rows, strict=True)))
        self.lookups = [rng.choice(self.plates) for _ in range(lookups)]
        self.reads = batches * batch


def _prepare(dsn: str, days: list[dt.date]) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_reads")
        for statement in SCHEMA:
            conn.execute(statement)
        for day in days:
            nxt = day + dt.timedelta(days=1)
            conn.execute(
                f"CREATE TABLE bench_reads_{day:%Y%m%d} PARTITION OF bench_reads "
                f"FOR VALUES FROM ('{day}') TO ('{nxt}')"
            )


def _insert_figures(latencies: list[float], reads: int, wall: float, cpu: float, new: int) -> dict[str, Any]:
    return {
        "batch_p50_ms": _pct(latencies, 50),
        "batch_p99_ms": _pct(latencies, 99),
        "reads_per_s": round(reads / wall),
        "client_cpu_us_per_read": round(cpu / reads * 1e6, 2),
        "new_reads_returned": new,
    }


# -- psycopg, called from plain threads (the writer; asyncio.to_thread) --------------------------------


def _psycopg_insert(dsn: str, w: Workload) -> dict[str, Any]:
    import psycopg

    out: dict[str, Any] = {}

    def work() -> None:
        with psycopg.connect(dsn) as conn:
            latencies, new = [], 0
            cpu0, t0 = time.process_time(), time.perf_counter()
            for cols in w.batches:
                started = time.perf_counter()
                with conn.transaction():
                    new += len(conn.execute(INSERT_PSYCOPG, cols, prepare=True).fetchall())
                latencies.append((time.perf_counter() - started) * 1000)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        out.update(_insert_figures(latencies, w.reads, wall, cpu, new))

    thread = threading.Thread(target=work, name="bench-writer")
    thread.start()
    thread.join()
    return out


def _psycopg_lookup(dsn: str, w: Workload, via_to_thread: bool) -> dict[str, Any]:
    import psycopg

    conn = psycopg.connect(dsn, autocommit=True)
    lock = threading.Lock()

    def one(plate: str) -> int:
        with lock:
            return len(conn.execute(LOOKUP_PSYCOPG, (plate,), prepare=True).fetchall())

    async def in_loop() -> list[float]:
        out = []
        for plate in w.lookups:
            started = time.perf_counter()
            await asyncio.to_thread(one, plate)
            out.append((time.perf_counter() - started) * 1000)
        return out

    try:
        if via_to_thread:
            latencies = asyncio.run(in_loop())
        else:
            latencies = []
            for plate in w.lookups:
                started = time.perf_counter()
                one(plate)
                latencies.append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
    return {"lookup_p50_ms": _pct(latencies, 50), "lookup_p99_ms": _pct(latencies, 99)}


# -- asyncpg: in its own loop, or reached from a thread --------------------------------------------


async def _asyncpg_batches(
    conn: Any, w: Workload, call: Callable[[Any], Any] | None = None
) -> tuple[list[float], int]:
    stmt = await conn.prepare(INSERT_ASYNCPG)
    latencies, new = [], 0
    for cols in w.batches:
        started = time.perf_counter()
        async with conn.transaction():
            new += len(await stmt.fetch(*cols))
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies, new


def _asyncpg_insert_in_loop(dsn_kw: dict[str, Any], w: Workload) -> dict[str, Any]:
    import asyncpg

    async def main() -> dict[str, Any]:
        conn = await asyncpg.connect(**dsn_kw)
        try:
            cpu0, t0 = time.process_time(), time.perf_counter()
            latencies, new = await _asyncpg_batches(conn, w)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        finally:
            await conn.close()
        return _insert_figures(latencies, w.reads, wall, cpu, new)

    return asyncio.run(main())


class _LoopThread:
    """An event loop in a thread of its own, as asyncpg would need beside the hub's writer thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-asyncpg-loop", daemon=True)
        self.thread.start()

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def _asyncpg_insert_from_thread(dsn_kw: dict[str, Any], w: Workload) -> dict[str, Any]:
    import asyncpg

    loop = _LoopThread()
    out: dict[str, Any] = {}
    try:
        conn = loop.call(asyncpg.connect(**dsn_kw))
        stmt = loop.call(conn.prepare(INSERT_ASYNCPG))

        async def batch(cols: tuple[list[Any], ...]) -> int:
            async with conn.transaction():
                return len(await stmt.fetch(*cols))

        def work() -> None:
            latencies, new = [], 0
            cpu0, t0 = time.process_time(), time.perf_counter()
            for cols in w.batches:
                started = time.perf_counter()
                new += loop.call(batch(cols))
                latencies.append((time.perf_counter() - started) * 1000)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            out.update(_insert_figures(latencies, w.reads, wall, cpu, new))

        thread = threading.Thread(target=work, name="bench-writer")
        thread.start()
        thread.join()
        loop.call(conn.close())
    finally:
        loop.close()
    return out


def _asyncpg_lookup_in_loop(dsn_kw: dict[str, Any], w: Workload) -> dict[str, Any]:
    import asyncpg

    async def main() -> list[float]:
        conn = await asyncpg.connect(**dsn_kw)
        try:
            stmt = await conn.prepare(LOOKUP_ASYNCPG)
            out = []
            for plate in w.lookups:
                started = time.perf_counter()
                await stmt.fetch(plate)
                out.append((time.perf_counter() - started) * 1000)
            return out
        finally:
            await conn.close()

    latencies = asyncio.run(main())
    return {"lookup_p50_ms": _pct(latencies, 50), "lookup_p99_ms": _pct(latencies, 99)}


def _asyncpg_lookup_from_thread(dsn_kw: dict[str, Any], w: Workload) -> dict[str, Any]:
    import asyncpg

    loop = _LoopThread()
    try:
        conn = loop.call(asyncpg.connect(**dsn_kw))
        stmt = loop.call(conn.prepare(LOOKUP_ASYNCPG))
        latencies = []
        for plate in w.lookups:
            started = time.perf_counter()
            loop.call(stmt.fetch(plate))
            latencies.append((time.perf_counter() - started) * 1000)
        loop.call(conn.close())
    finally:
        loop.close()
    return {"lookup_p50_ms": _pct(latencies, 50), "lookup_p99_ms": _pct(latencies, 99)}


def _versions() -> dict[str, str]:
    import asyncpg
    import psycopg

    return {"asyncpg": asyncpg.__version__, "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__})"}


def run(
    batches: int = 300, batch: int = 200, lookups: int = 2000, rounds: int = 2, seed: int = 5
) -> dict[str, Any]:
    """Start a cluster, run every driver and way of calling it ``rounds`` times (alternating), stop."""
    w = Workload(batches, batch, lookups, seed)
    cluster = PostgresCluster(settings={"shared_buffers": "256MB"}).start()
    try:
        dsn = cluster.create_database("bench")
        dsn_kw = {
            "host": "127.0.0.1",
            "port": cluster.port,
            "user": cluster.user,
            "password": cluster.password,
            "database": "bench",
        }
        ways: dict[str, Callable[[], dict[str, Any]]] = {
            "psycopg_thread": lambda: _psycopg_insert(dsn, w),
            "asyncpg_from_thread": lambda: _asyncpg_insert_from_thread(dsn_kw, w),
            "asyncpg_loop": lambda: _asyncpg_insert_in_loop(dsn_kw, w),
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ways}
        for r in range(rounds):
            order = list(ways) if r % 2 == 0 else list(reversed(ways))
            for name in order:
                _prepare(dsn, w.days)
                runs[name].append(ways[name]())
        # Lookups on the table the last insert run left (every plate of the workload is there).
        lookups: dict[str, list[dict[str, Any]]] = {
            "psycopg_thread": [],
            "psycopg_to_thread": [],
            "asyncpg_from_thread": [],
            "asyncpg_loop": [],
        }
        for _ in range(rounds):
            lookups["psycopg_thread"].append(_psycopg_lookup(dsn, w, via_to_thread=False))
            lookups["psycopg_to_thread"].append(_psycopg_lookup(dsn, w, via_to_thread=True))
            lookups["asyncpg_from_thread"].append(_asyncpg_lookup_from_thread(dsn_kw, w))
            lookups["asyncpg_loop"].append(_asyncpg_lookup_in_loop(dsn_kw, w))
    finally:
        cluster.destroy()

    def best(results: list[dict[str, Any]], key: str, low: bool = True) -> float:
        values = [r[key] for r in results]
        return min(values) if low else max(values)

    insert = {
        name: {
            "batch_p50_ms": best(rs, "batch_p50_ms"),
            "batch_p99_ms": best(rs, "batch_p99_ms"),
            "reads_per_s": best(rs, "reads_per_s", low=False),
            "client_cpu_us_per_read": best(rs, "client_cpu_us_per_read"),
            "runs": rs,
        }
        for name, rs in runs.items()
    }
    lookup = {
        name: {
            "lookup_p50_ms": best(rs, "lookup_p50_ms"),
            "lookup_p99_ms": best(rs, "lookup_p99_ms"),
            "runs": rs,
        }
        for name, rs in lookups.items()
    }
    return {
        "benchmark": "pgdriver",
        "insert": insert,
        "lookup": lookup,
        "batch": batch,
        "batches": batches,
        "resend_share": 0.1,
        "lookups": len(w.lookups),
        "rounds": rounds,
        "figures": "best of the rounds for each figure; every run under runs",
        "postgresql": "15, own cluster, fsync=on, synchronous_commit=on, 127.0.0.1",
        **_versions(),
        "cpus": os.cpu_count(),
    }
