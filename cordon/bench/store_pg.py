"""The record at scale on PostgreSQL (``cordon bench store --backend postgresql``): the SQLite run's bars.

``run()`` starts a cluster of its own (:class:`cordon.testing.PostgresCluster`: fsync, synchronous_commit
and full_page_writes on, as in production), migrates it with the hub's code (:class:`PgReadStore`), and
fills a week of reads from 60 checkpoints with the same vehicles, skew and times as the SQLite run
(``cordon/bench/store.py``), each read also a passage (one camera read per passage) so that companion
queries have a record to search. Then, through :class:`PgReadStore` (the code the hub runs):

* ``exact_search_p99_ms``, ``partial_search_p99_ms``, ``partial_leading_wildcard_p99_ms``: the SQLite
  run's queries (``store._searches``);
* ``purge_day_s``: :meth:`PgReadStore.purge_before` dropping the oldest day (``DETACH PARTITION ...
  CONCURRENTLY`` and ``DROP`` of its three partitions) while
* ``ingest_p99_ms_during_purge``: a thread commits batches of 10 reads back to back through
  :meth:`PgReadStore.write` (one statement and one commit each) and records each commit's latency, and
* a second thread runs 7-day companion queries (:meth:`PgReadStore.companions`) back to back
  (``companions_during_purge``, their p99).

The fill is a bulk path (``fill_method``): worker processes create each day's partitions as standalone
tables with the store's own definitions (``LIKE`` the partitioned tables), ``COPY`` the rows in (reads with
real content digests, passages with zeros: no query reads them), fill the day's plates from its reads, then ``ATTACH`` them (the indexes are built then)
and record the day's counts, as :meth:`PgReadStore.prepare` does for an empty day; then ``VACUUM
ANALYZE``, as autovacuum would have done on days that old, and a ``CHECKPOINT`` (``checkpoint_s``), as the
server would have written them back long since. Everything after the fill goes through the
hub's code.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from central.record.days import day_bounds, day_of, digest, parse_offset
from central.record.postgresql.partitions import TABLES, partition_name
from central.record.postgresql.reads import PgReadStore
from cordon.testing import PostgresCluster
from protocols.messages import PlateRead

from . import store as sqlite_bench

BARS = sqlite_bench.BARS
UTC_OFFSET = sqlite_bench.UTC_OFFSET
INGEST_BATCH = sqlite_bench.INGEST_BATCH
NO_DIGEST = bytes(16)
"""The filled passages' digest: no query reads it, and computing it doubled the fill's time."""
PASSAGE_SEQ_OFFSET = 5_000_000
"""A day's passages take seqs this far above its reads' (one identity is one event)."""
SERVER_SETTINGS = {
    "shared_buffers": "'1GB'",
    "maintenance_work_mem": "'512MB'",
    "max_wal_size": "'8GB'",
    "checkpoint_timeout": "'30min'",
    "effective_cache_size": "'8GB'",
}

_population: list[str] = []  # inherited by the fill workers (fork)


def _fill_day(job: tuple[str, str, int, int, int, int]) -> dict[str, Any]:
    """One day's three partitions, loaded standalone with COPY, then attached (bulk path)."""
    import psycopg
    from psycopg import sql

    dsn, day_text, n, seq_base, checkpoints, seed = job
    day = dt.date.fromisoformat(day_text)
    tz = parse_offset(UTC_OFFSET)
    start, _ = day_bounds(day, tz)
    rng = np.random.default_rng(seed)
    pop = _population
    ids = np.floor(len(pop) * rng.random(n) ** sqlite_bench.SKEW).astype(np.int64)
    times = start + np.sort(rng.random(n) * 86400.0)
    cps = rng.integers(0, checkpoints, n)
    lanes = rng.integers(1, 5, n)
    confidence = np.round(rng.uniform(70, 99.9, n), 1)
    cp_names = [f"SD-R{c // 10:02d}-{c % 10 + 1:03d}" for c in range(checkpoints)]
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")  # the fill only; the server's setting stays on
        for table in TABLES:
            conn.execute(
                sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(
                    sql.Identifier(partition_name(table, day)), sql.Identifier(table)
                )
            )
        reads_t, passages_t = partition_name("reads", day), partition_name("passages", day)
        with conn.cursor() as cur:
            with cur.copy(
                f"COPY {reads_t} (day, checkpoint, epoch, seq, digest, plate, camera_id, captured_at, "
                "edge_sent_at, received_at, plate_raw, plate_valid, no_plate, colour, confidence, lane) FROM STDIN"
            ) as copy:
                for i, v, t, c, lane, conf in zip(
                    range(n),
                    ids.tolist(),
                    times.tolist(),
                    cps.tolist(),
                    lanes.tolist(),
                    confidence.tolist(),
                    strict=True,
                ):
                    plate = pop[v]
                    camera = f"lane{lane}"
                    read = PlateRead(
                        seq=seq_base + i,
                        camera_id=camera,
                        captured_at=t,
                        plate=plate,
                        plate_raw=plate,
                        plate_valid=True,
                        colour="blue",
                        confidence=conf,
                        lane=lane,
                    )
                    copy.write_row(
                        (
                            day,
                            cp_names[c],
                            1,
                            seq_base + i,
                            digest(read),
                            plate,
                            camera.encode(),
                            t,
                            t + 0.5,
                            t + 0.7,
                            plate.encode(),
                            True,
                            False,
                            b"blue",
                            conf,
                            lane,
                        )
                    )
            with cur.copy(
                f"COPY {passages_t} (day, checkpoint, epoch, seq, digest, plate, no_plate, colour, first_seen, "
                "last_seen, best_seq, read_seqs, cameras, received_at) FROM STDIN"
            ) as copy:
                for i, v, t, c, lane in zip(
                    range(n), ids.tolist(), times.tolist(), cps.tolist(), lanes.tolist(), strict=True
                ):
                    plate = pop[v]
                    camera = f"lane{lane}"
                    seq = seq_base + PASSAGE_SEQ_OFFSET + i
                    copy.write_row(
                        (
                            day,
                            cp_names[c],
                            1,
                            seq,
                            NO_DIGEST,
                            plate,
                            False,
                            b"blue",
                            t,
                            t + 2.0,
                            seq_base + i,
                            [seq_base + i],
                            [camera.encode()],
                            t + 0.7,
                        )
                    )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (day, plate, rplate) SELECT DISTINCT day, plate, reverse(plate) FROM {}"
            ).format(sql.Identifier(partition_name("plates", day)), sql.Identifier(reads_t))
        )
        loaded = time.perf_counter()
        with conn.transaction():
            for table in TABLES:
                conn.execute(
                    sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                        sql.Identifier(table),
                        sql.Identifier(partition_name(table, day)),
                        sql.Literal(day),
                        sql.Literal(day + dt.timedelta(days=1)),
                    )
                )
            conn.execute("INSERT INTO record_days (day, reads, passages) VALUES (%s, %s, %s)", (day, n, n))
        distinct = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(partition_name("plates", day)))
        ).fetchone()[0]  # type: ignore[index]
    return {
        "day": day_text,
        "reads": n,
        "distinct_plates": int(distinct),
        "copy_s": round(loaded - started, 1),
        "attach_s": round(time.perf_counter() - loaded, 1),
    }


def _fill(
    dsn: str, reads: int, days: int, checkpoints: int, workers: int, seed: int, tz: dt.timezone
) -> tuple[list[dt.date], list[dict[str, Any]]]:
    today = day_of(time.time(), tz)
    day_list = [today - dt.timedelta(days=days - 1 - i) for i in range(days)]
    per_day = [reads // days + (1 if i < reads % days else 0) for i in range(days)]
    jobs = [
        (dsn, d.isoformat(), n, 10_000_000 * (i + 1), checkpoints, seed + i)
        for i, (d, n) in enumerate(zip(day_list, per_day, strict=True))
    ]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:  # leaving the block (Ctrl-C too) terminates the workers
        filled = pool.map_async(_fill_day, jobs, chunksize=1).get(timeout=7 * 86400)
    return day_list, filled


def _sampler(dsn: str, day_list: list[dt.date]) -> sqlite_bench.Sampler:
    """Plates of each day drawn once from a page sample of its plates (TABLESAMPLE SYSTEM)."""
    import psycopg
    from psycopg import sql

    pools: dict[dt.date, list[str]] = {}
    with psycopg.connect(dsn) as conn:
        for day in day_list:
            table = sql.Identifier(partition_name("plates", day))
            drawn = conn.execute(
                sql.SQL("SELECT plate FROM {} TABLESAMPLE SYSTEM (2) LIMIT 5000").format(table)
            )
            pools[day] = [p for (p,) in drawn]
            if len(pools[day]) < 500:  # a small day: a page sample may hold nothing
                drawn = conn.execute(
                    sql.SQL("SELECT plate FROM {} ORDER BY random() LIMIT 5000").format(table)
                )
                pools[day] = [p for (p,) in drawn]

    def sample(days: list[dt.date], n: int, rng: random.Random, home_only: bool) -> list[tuple[dt.date, str]]:
        out: list[tuple[dt.date, str]] = []
        while len(out) < n:
            day = rng.choice(days)
            plate = rng.choice(pools[day])
            if home_only and not (plate.startswith("鲁") and len(plate) == 7):
                continue
            out.append((day, plate))
        return out

    return sample


def _purge_under_load(
    record: PgReadStore, day_list: list[dt.date], companion_plates: list[str], settle_s: float = 2.0
) -> dict[str, Any]:
    tz = record.tz
    week = (day_bounds(day_list[0], tz)[0], day_bounds(day_list[-1], tz)[1] - 0.001)
    samples: list[tuple[float, float]] = []  # (started, latency ms)
    companion_runs: list[tuple[float, float, int]] = []  # (started, latency ms, passages of the plate)
    stop = threading.Event()
    errors: list[str] = []

    def feed() -> None:
        seq = 0
        while not stop.is_set():
            now = time.time()
            items = []
            for _ in range(INGEST_BATCH):
                seq += 1
                plate = f"鲁Z{seq % 100000:05d}"
                read = PlateRead(
                    seq=seq,
                    camera_id="lane1",
                    captured_at=now,
                    plate=plate,
                    plate_raw=plate,
                    plate_valid=True,
                )
                items.append(("SD-BENCH-001", 1, read, now, now))
            started = time.perf_counter()
            try:
                record.write(items)
            except Exception as exc:
                errors.append(repr(exc))
            samples.append((started, (time.perf_counter() - started) * 1000))

    def companions() -> None:
        i = 0
        while not stop.is_set():
            plate = companion_plates[i % len(companion_plates)]
            i += 1
            started = time.perf_counter()
            try:
                found = record.companions(plate, *week)
            except Exception as exc:
                errors.append(repr(exc))
                continue
            companion_runs.append((started, (time.perf_counter() - started) * 1000, len(found.route)))

    threads = [
        threading.Thread(target=feed, name="bench-ingest"),
        threading.Thread(target=companions, name="bench-companions"),
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(settle_s)
        oldest = day_list[0]
        purge_started = time.perf_counter()
        purged = record.purge_before(oldest + dt.timedelta(days=1))
        purge_ended = time.perf_counter()
        time.sleep(settle_s)
    finally:
        stop.set()
        for t in threads:
            t.join()

    def overlaps(at: float, ms: float) -> bool:
        return purge_started <= at <= purge_ended or at <= purge_started < at + ms / 1000

    during = [ms for at, ms in samples if overlaps(at, ms)]
    before = [ms for at, ms in samples if at + ms / 1000 < purge_started]
    near = [ms for at, ms in samples if purge_started - 1 <= at <= purge_ended + 1]
    comp_during = [ms for at, ms, _ in companion_runs if overlaps(at, ms)]
    pct = sqlite_bench._percentile
    assert purged == [oldest], f"purge dropped {purged}, expected [{oldest}]"
    assert oldest not in record.days()
    return {
        "purge_day_s": round(purge_ended - purge_started, 4),
        "purged_day": oldest.isoformat(),
        "ingest_p99_ms_during_purge": max(during) if 0 < len(during) < 100 else pct(during, 99),
        "ingest_commits_during_purge": len(during),
        "ingest_p99_ms_purge_pm_1s": pct(near, 99),
        "ingest_commits_purge_pm_1s": len(near),
        "ingest_p99_ms_before_purge": pct(before, 99),
        "ingest_p50_ms_before_purge": pct(before, 50),
        "ingest_reads_per_commit": INGEST_BATCH,
        "ingest_path": "PgReadStore.write: one INSERT ... ON CONFLICT DO NOTHING RETURNING statement and one "
        "commit per batch (the statement the hub's writer runs for a batch of reads, committed alone here; "
        "the hub's transaction also holds its alerts, counts and acknowledgements)",
        "companions_during_purge": len(comp_during),
        "companions_p99_ms_during_purge": pct(comp_during, 99),
        "companions_runs": len(companion_runs),
        "companions_p50_ms": pct([ms for _, ms, _ in companion_runs], 50),
        "companions_p99_ms": pct([ms for _, ms, _ in companion_runs], 99),
        "companions_passages_of_plate_mean": round(float(np.mean([n for *_, n in companion_runs])), 1)
        if companion_runs
        else 0,
        "errors": errors[:5],
        "ingest_errors": len(errors),
    }


STATE_FILE = "bench-state.json"


def run(
    reads: int = 20_000_000,
    days: int = 7,
    keep: bool = False,
    checkpoints: int = 60,
    vehicles: int | None = None,
    queries: int = 300,
    workers: int = 2,
    seed: int = 7,
    fill_only: bool = False,
    reuse: str | None = None,
) -> dict[str, Any]:
    """Start a cluster, fill, measure, stop it (and remove it unless ``keep``); the figures as a dict.

    The fill of 20M reads takes half an hour, the measures a few minutes: ``fill_only`` fills a kept
    cluster and stops (its folder and what the measures need written to ``bench-state.json`` in it), and
    ``reuse`` measures such a folder later (on a quieter host, say); the purge drops its oldest day, so a
    filled folder is measured once."""
    import psycopg

    if days < 2:
        raise ValueError("--days must be at least 2 (one day is purged)")
    rng = random.Random(seed)
    if reuse is not None:
        state = json.loads((Path(reuse) / STATE_FILE).read_text(encoding="utf-8"))
        if state.get("measured"):
            raise SystemExit(f"{reuse} was measured already (its oldest day is purged): fill another")
        cluster = PostgresCluster(
            settings=SERVER_SETTINGS, folder=Path(reuse), port=state["port"], password=state["password"]
        ).start()
        keep = True
    else:
        vehicles = vehicles or max(1000, reads * 3 // 20)
        cluster = PostgresCluster(settings=SERVER_SETTINGS).start()
    record: PgReadStore | None = None
    try:
        if reuse is None:
            dsn = cluster.create_database("record")
            record = PgReadStore(dsn, utc_offset=UTC_OFFSET, lock_timeout_s=2.0)
            record.start()  # its schema, which the fill's tables are made LIKE
            started = time.perf_counter()
            global _population
            _population = sqlite_bench._population_of(vehicles, seed)
            population_s = time.perf_counter() - started
            started = time.perf_counter()
            day_list, filled = _fill(dsn, reads, days, checkpoints, workers, seed, record.tz)
            fill_s = time.perf_counter() - started
            _population = []
            started = time.perf_counter()
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE) record_days, reads, passages, plates")
                size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
                vacuum_s = time.perf_counter() - started
                # The fill's gigabytes written back to the data files, as the server had long done for days
                # this old: otherwise the measurement below times the bulk load's write-back (one purge
                # measured 2.1 s at once after a fill, 0.75 s on the same data after a restart).
                started = time.perf_counter()
                conn.execute("CHECKPOINT")
                checkpoint_s = time.perf_counter() - started
            record.stop()
            record = None
            state = {
                "port": cluster.port,
                "password": cluster.password,
                "reads": reads,
                "days": days,
                "checkpoints": checkpoints,
                "vehicles": vehicles,
                "workers": workers,
                "day_list": [d.isoformat() for d in day_list],
                "filled": filled,
                "fill_s": round(fill_s, 1),
                "vacuum_analyze_s": round(vacuum_s, 1),
                "checkpoint_s": round(checkpoint_s, 1),
                "population_s": round(population_s, 1),
                "database_bytes": size,
                "measured": False,
            }
            if fill_only or keep:
                (cluster.folder / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")  # type: ignore[operator]
            if fill_only:
                keep = True
                return {
                    "benchmark": "store",
                    "backend": "postgresql",
                    "filled_only": True,
                    "data_dir": str(cluster.folder),
                    **{k: v for k, v in state.items() if k not in ("password", "filled")},
                    "next": f"cordon bench store --backend postgresql --reuse {cluster.folder} --json",
                }
        dsn = cluster.dsn("record")
        day_list = [dt.date.fromisoformat(d) for d in state["day_list"]]
        record = PgReadStore(dsn, utc_offset=UTC_OFFSET, lock_timeout_s=2.0)
        record.start()  # knows the filled days
        counted = record.counts()
        assert counted.reads == state["reads"], f"filled {counted.reads} reads, expected {state['reads']}"
        sample = _sampler(dsn, day_list)
        figures = sqlite_bench._searches(record, day_list, queries, rng, sample)
        companion_plates = [p for _, p in sample(day_list, 50, rng, False)]
        state["measured"] = True  # from here on the oldest day is purged
        if reuse is not None or keep:
            (cluster.folder / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")  # type: ignore[operator]
        figures |= _purge_under_load(record, day_list, companion_plates)
    finally:
        if record is not None:
            record.stop()
        if keep:
            cluster.stop()
        else:
            cluster.destroy()
    reads, days, filled = state["reads"], state["days"], state["filled"]
    checkpoints, vehicles, workers = state["checkpoints"], state["vehicles"], state["workers"]
    fill_s, vacuum_s, population_s, size = (
        state["fill_s"],
        state["vacuum_analyze_s"],
        state["population_s"],
        state["database_bytes"],
    )
    passed = {name: bool(figures[name] <= bar) for name, bar in BARS.items()}
    return {
        "benchmark": "store",
        "backend": "postgresql",
        **{name: figures[name] for name in BARS},
        "bars": BARS,
        "pass": passed,
        "all_pass": all(passed.values()),
        **{k: v for k, v in figures.items() if k not in BARS},
        "reads": reads,
        "passages": reads,
        "days": days,
        "checkpoints": checkpoints,
        "vehicles": vehicles,
        "distinct_plates_per_day_mean": round(sum(f["distinct_plates"] for f in filled) / len(filled)),
        "fill_method": "bulk: worker processes COPY each day into standalone tables made LIKE the partitioned "
        "ones (reads with real digests, passages with zero digests: no query reads them), fill its plates, ATTACH them (indexes built then) and record its counts; then "
        "VACUUM ANALYZE and CHECKPOINT. Searches, companions, purge and ingest use PgReadStore",
        "fill_workers": workers,
        "fill_s": round(fill_s, 1),
        "fill_days": filled,
        "vacuum_analyze_s": round(vacuum_s, 1),
        "checkpoint_s": state.get("checkpoint_s"),  # None: a folder filled before the fill checkpointed
        "population_s": round(population_s, 1),
        "database_bytes": size,
        "server_settings": {**SERVER_SETTINGS, "fsync": "on", "synchronous_commit": "on"},
        "utc_offset": UTC_OFFSET,
        "data_dir": str(cluster.folder) if keep else None,
        "kept": keep,
        "reused": reuse,
        "postgresql": 15,
        "cpus": os.cpu_count(),
    }
