"""The record at scale: 20 million reads in day files; search latency, purge time, ingest during purge.

``run()`` fills ``<data>/record`` with a week of reads from 60 checkpoints (a population of ~3M
vehicles with skewed repeat travel), then measures through the hub's own code:

* ``exact_search_p99_ms``: :meth:`SqliteReadStore.search_exact` for plates that exist, whole range;
* ``partial_search_p99_ms``: ``search_pattern`` with patterns shaped like ``鲁A*23?5`` made from plates
  that exist, over one day; ``partial_leading_wildcard_p99_ms`` the same for ``*23?5``;
* ``purge_day_s``: :meth:`HubStore.purge_before` dropping the oldest day while
* ``ingest_p99_ms_during_purge``: a thread commits small batches through ``Ingest.handle`` (the real
  writer path, ``synchronous=FULL``) back to back and records each commit's latency.

The fill is a bulk path (``fill_method`` in the JSON): worker processes write the day files directly
with the store's own table and index statements (``readstore.TABLES`` then ``INDEXES``), with no
journal, indexes built after the load, and real content digests. Everything after the fill goes
through the hub's code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from central.ingest.listener import Recorder
from central.ingest.pipeline import Ingest
from central.record.days import day_bounds, day_of, digest
from central.record.sqlite.dayfiles import INDEXES, READ_COLUMNS, TABLES, SqliteReadStore, file_name
from central.record.sqlite.store import HubStore
from central.watchlists.index import HubWatchlists
from protocols import topics
from protocols.messages import SCHEMA_VERSION, Event, EventBatch, PlateRead, encode

from .match import _plate

BARS = {
    "exact_search_p99_ms": 20.0,
    "partial_search_p99_ms": 300.0,
    "purge_day_s": 2.0,
    "ingest_p99_ms_during_purge": 100.0,
}
UTC_OFFSET = "+08:00"
SKEW = 3.0
"""Vehicle i of N is drawn as floor(N * u**SKEW): the lowest 1% of ids make ~21% of the traffic."""
CHUNK = 100_000
INGEST_BATCH = 10

_population: list[str] = []  # inherited by the fill workers (fork)


def _percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values), q)), 3) if values else float("nan")


def _population_of(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        plate = _plate(rng)
        if plate not in seen:
            seen.add(plate)
            out.append(plate)
    return out


def _fill_day(job: tuple[str, str, int, int, int, int]) -> dict[str, Any]:
    """One day file, written directly (bulk path): tables, rows sorted by time, then indexes."""
    root, day_text, n, seq_base, checkpoints, seed = job
    day = dt.date.fromisoformat(day_text)
    tz = SqliteReadStore(root, utc_offset=UTC_OFFSET).tz
    start, _ = day_bounds(day, tz)
    rng = np.random.default_rng(seed)
    pop = _population
    ids = np.floor(len(pop) * rng.random(n) ** SKEW).astype(np.int64)
    times = start + np.sort(rng.random(n) * 86400.0)
    cps = rng.integers(0, checkpoints, n)
    lanes = rng.integers(1, 5, n)
    confidence = np.round(rng.uniform(70, 99.9, n), 1)
    distinct = np.unique(ids)
    plate_ids = np.searchsorted(distinct, ids) + 1
    path = Path(root) / file_name(day)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-200000")
    for statement in TABLES:
        conn.execute(statement)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO plates (plate_id, plate, rplate) VALUES (?,?,?)",
        ((i + 1, pop[v], pop[v][::-1]) for i, v in enumerate(distinct.tolist())),
    )
    conn.execute("COMMIT")
    cp_names = [f"SD-R{c // 10:02d}-{c % 10 + 1:03d}" for c in range(checkpoints)]

    def rows() -> Iterator[tuple[Any, ...]]:
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            for i, v, t, c, lane, conf, pid in zip(
                range(lo, hi),
                ids[lo:hi].tolist(),
                times[lo:hi].tolist(),
                cps[lo:hi].tolist(),
                lanes[lo:hi].tolist(),
                confidence[lo:hi].tolist(),
                plate_ids[lo:hi].tolist(),
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
                yield (
                    cp_names[c],
                    1,
                    seq_base + i,
                    digest(read),
                    pid,
                    camera,
                    None,
                    t,
                    t + 0.5,
                    t + 0.7,
                    plate,
                    True,
                    None,
                    False,
                    "blue",
                    None,
                    conf,
                    lane,
                    None,
                )

    conn.execute("BEGIN")
    conn.executemany(
        f"INSERT INTO reads ({', '.join(READ_COLUMNS)}) VALUES ({', '.join('?' * len(READ_COLUMNS))})", rows()
    )
    conn.execute("COMMIT")
    for statement in INDEXES:
        conn.execute(statement)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return {"day": day_text, "reads": n, "distinct_plates": int(len(distinct))}


def _fill(
    root: Path, reads: int, days: int, checkpoints: int, workers: int, seed: int, tz: dt.timezone
) -> tuple[list[dt.date], list[dict[str, Any]]]:
    today = day_of(time.time(), tz)
    day_list = [today - dt.timedelta(days=days - 1 - i) for i in range(days)]
    per_day = [reads // days + (1 if i < reads % days else 0) for i in range(days)]
    jobs = [
        (str(root), d.isoformat(), n, 10_000_000 * (i + 1), checkpoints, seed + i)
        for i, (d, n) in enumerate(zip(day_list, per_day, strict=True))
    ]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        filled = pool.map(_fill_day, jobs, chunksize=1)
    return day_list, filled


def _sample_plates(
    root: Path, day_list: list[dt.date], n: int, rng: random.Random, home_only: bool = False
) -> list[tuple[dt.date, str]]:
    out: list[tuple[dt.date, str]] = []
    while len(out) < n:
        day = rng.choice(day_list)
        with sqlite3.connect(root / file_name(day)) as conn:
            (top,) = conn.execute("SELECT max(plate_id) FROM plates").fetchone()
            (plate,) = conn.execute(
                "SELECT plate FROM plates WHERE plate_id=?", (rng.randint(1, top),)
            ).fetchone()
        if home_only and not (plate.startswith("鲁") and len(plate) == 7):
            continue
        out.append((day, plate))
    return out


def _timed(fn: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn(*args)
    return (time.perf_counter() - started) * 1000, value


Sampler = Callable[[list[dt.date], int, random.Random, bool], list[tuple[dt.date, str]]]


def _searches(
    record: Any, day_list: list[dt.date], queries: int, rng: random.Random, sample: Sampler
) -> dict[str, Any]:
    """The search figures through ``record``'s own methods (either store), for plates ``sample`` draws."""
    tz = record.tz
    week = (day_bounds(day_list[0], tz)[0], day_bounds(day_list[-1], tz)[1] - 0.001)
    exact, exact_day, exact_rows = [], [], []
    for day, plate in sample(day_list, queries, rng, False):
        ms, found = _timed(record.search_exact, plate, *week)
        assert found.reads, f"{plate} exists but was not found"
        exact.append(ms)
        exact_rows.append(len(found.reads))
        lo, hi = day_bounds(day, tz)
        ms, found = _timed(record.search_exact, plate, lo, hi - 0.001)
        assert found.reads, f"{plate} exists on {day} but was not found"
        exact_day.append(ms)
    partial, leading, partial_rows, leading_rows = [], [], [], []
    for day, plate in sample(day_list, queries, rng, True):
        lo, hi = day_bounds(day, tz)
        shaped = f"{plate[:2]}*{plate[-4:-2]}?{plate[-1]}"  # 鲁A12345 -> 鲁A*23?5
        ms, found = _timed(record.search_pattern, shaped, lo, hi - 0.001, 500)
        assert any(r.plate == plate for r in found.reads) or found.truncated, f"{shaped} missed {plate}"
        partial.append(ms)
        partial_rows.append(len(found.reads))
        ms, found = _timed(record.search_pattern, f"*{plate[-4:-2]}?{plate[-1]}", lo, hi - 0.001, 500)
        leading.append(ms)
        leading_rows.append(len(found.reads))
    return {
        "exact_search_p99_ms": _percentile(exact, 99),
        "exact_search_p50_ms": _percentile(exact, 50),
        "exact_search_range_days": len(day_list),
        "exact_search_rows_mean": round(float(np.mean(exact_rows)), 1),
        "exact_search_1day_p99_ms": _percentile(exact_day, 99),
        "partial_search_p99_ms": _percentile(partial, 99),
        "partial_search_p50_ms": _percentile(partial, 50),
        "partial_search_rows_mean": round(float(np.mean(partial_rows)), 1),
        "partial_leading_wildcard_p99_ms": _percentile(leading, 99),
        "partial_leading_wildcard_p50_ms": _percentile(leading, 50),
        "partial_leading_wildcard_rows_mean": round(float(np.mean(leading_rows)), 1),
        "queries_each": queries,
    }


def _purge_under_ingest(data: Path, day_list: list[dt.date], settle_s: float = 2.0) -> dict[str, Any]:
    store = HubStore(data / "hub.db", record_dir=data / "record", utc_offset=UTC_OFFSET)
    store.start()
    ingest = Ingest(store, HubWatchlists(), publish=lambda t, p: None, listener=Recorder())
    topic = topics.events("SD-BENCH-001")
    samples: list[tuple[float, float]] = []  # (started, latency ms)
    stop = threading.Event()
    errors: list[str] = []

    def feed() -> None:
        seq = 0
        while not stop.is_set():
            now = time.time()
            events: list[Event] = []
            for _ in range(INGEST_BATCH):
                seq += 1
                events.append(
                    PlateRead(
                        seq=seq,
                        camera_id="lane1",
                        captured_at=now,
                        plate=f"鲁Z{seq % 100000:05d}",
                        plate_raw=f"鲁Z{seq % 100000:05d}",
                        plate_valid=True,
                    )
                )
            payload = encode(
                EventBatch(v=SCHEMA_VERSION, checkpoint="SD-BENCH-001", epoch=1, sent_at=now, events=events)
            )
            started = time.perf_counter()
            try:
                ingest.handle(topic, payload, now).result(60)
            except Exception as exc:
                errors.append(repr(exc))
            samples.append((started, (time.perf_counter() - started) * 1000))

    thread = threading.Thread(target=feed, name="bench-ingest")
    thread.start()
    try:
        time.sleep(settle_s)
        oldest = day_list[0]
        purge_started = time.perf_counter()
        purged = store.purge_before(oldest + dt.timedelta(days=1))
        purge_ended = time.perf_counter()
        time.sleep(settle_s)
    finally:
        stop.set()
        thread.join()
        store.stop()
    during = [
        ms for at, ms in samples if purge_started <= at <= purge_ended or at <= purge_started < at + ms / 1000
    ]
    before = [ms for at, ms in samples if at + ms / 1000 < purge_started]
    near = [ms for at, ms in samples if purge_started - 1 <= at <= purge_ended + 1]
    assert purged == [oldest], f"purge dropped {purged}, expected [{oldest}]"
    assert not (data / "record" / file_name(oldest)).exists()
    return {
        "purge_day_s": round(purge_ended - purge_started, 4),
        "purged_day": oldest.isoformat(),
        "ingest_p99_ms_during_purge": max(during) if len(during) < 100 else _percentile(during, 99),
        "ingest_commits_during_purge": len(during),
        "ingest_p99_ms_purge_pm_1s": _percentile(near, 99),
        "ingest_commits_purge_pm_1s": len(near),
        "ingest_p99_ms_before_purge": _percentile(before, 99),
        "ingest_p50_ms_before_purge": _percentile(before, 50),
        "ingest_reads_per_commit": INGEST_BATCH,
        "ingest_errors": len(errors),
    }


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(
    reads: int = 20_000_000,
    days: int = 7,
    data: str | None = None,
    keep: bool = False,
    checkpoints: int = 60,
    vehicles: int | None = None,
    queries: int = 300,
    workers: int = 2,
    seed: int = 7,
) -> dict[str, Any]:
    """Fill, measure, clean up; return the figures as one JSON-able dict."""
    if days < 2:
        raise ValueError("--days must be at least 2 (one day is purged)")
    vehicles = vehicles or max(1000, reads * 3 // 20)
    root_dir = Path(data) if data else Path(tempfile.mkdtemp(prefix="cordon-bench-store-", dir="/tmp"))
    record_dir = root_dir / "record"
    if record_dir.exists() and any(record_dir.iterdir()):
        raise ValueError(f"{record_dir} is not empty")
    record_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    try:
        started = time.perf_counter()
        global _population
        _population = _population_of(vehicles, seed)
        population_s = time.perf_counter() - started
        started = time.perf_counter()
        record = SqliteReadStore(record_dir, utc_offset=UTC_OFFSET)
        day_list, filled = _fill(record_dir, reads, days, checkpoints, workers, seed, record.tz)
        fill_s = time.perf_counter() - started
        _population = []
        fill_bytes = _du(record_dir)
        counted = record.counts()
        assert counted.reads == reads, f"filled {counted.reads} reads, expected {reads}"
        figures = _searches(
            record, day_list, queries, rng, lambda d, n, r, home: _sample_plates(record_dir, d, n, r, home)
        )
        figures |= _purge_under_ingest(root_dir, day_list)
    finally:
        if not keep:
            shutil.rmtree(root_dir, ignore_errors=True)
    passed = {name: bool(figures[name] <= bar) for name, bar in BARS.items()}
    return {
        "benchmark": "store",
        **{name: figures[name] for name in BARS},
        "bars": BARS,
        "pass": passed,
        "all_pass": all(passed.values()),
        **{k: v for k, v in figures.items() if k not in BARS},
        "reads": reads,
        "days": days,
        "checkpoints": checkpoints,
        "vehicles": vehicles,
        "distinct_plates_per_day_mean": round(sum(f["distinct_plates"] for f in filled) / len(filled)),
        "fill_method": "bulk: worker processes write day files directly with readstore.TABLES and INDEXES "
        "(no journal, indexes after load, real digests); searches, purge and ingest use the hub's code",
        "fill_workers": workers,
        "fill_s": round(fill_s, 1),
        "population_s": round(population_s, 1),
        "fill_bytes": fill_bytes,
        "utc_offset": UTC_OFFSET,
        "data_dir": str(root_dir),
        "kept": keep,
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=20_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--data")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run(args.reads, args.days, args.data, args.keep), ensure_ascii=False))


if __name__ == "__main__":
    main()
