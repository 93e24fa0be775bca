"""Companion vehicles at scale: a week of passages at a 60-checkpoint ring, injected scout-and-load pairs.

``run()`` writes the record's day files directly (the bulk path of ``cordon/bench/store.py``: the
store's own ``TABLES`` then ``INDEXES``, no journal, indexes built after the load) with background
traffic, a population of vehicles of skewed repeat travel (``SKEW``) passing random checkpoints at
random times, plus ``pairs`` injected convoys: a load that drives 4..9 checkpoints of the ring over a
few hours on one or more days, and its scout 20..100 s ahead of it (a lead of its own, give or take 15 s) at ~85% of those passages (a
scout is sometimes missed, or takes another lane's camera). Passage digests are not computed (no
query reads them; ``fill_method`` says so). Then, through :meth:`SqliteReadStore.companions` (the
code the HTTP route runs):

* ``companion_query_p99_s``: the query over the whole week for each load and as many plates drawn
  from the background traffic (more frequent plates are drawn more often, as they are in the data);
* ``companion_recall_top5``: loads whose scout is among the first five companions found.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import random
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from central.record.days import day_bounds, day_of
from central.record.sqlite.dayfiles import INDEXES, TABLES, SqliteReadStore, file_name

from .match import _plate

UTC_OFFSET = "+08:00"
SKEW = 1.5
"""Vehicle i of N is drawn as floor(N * u**SKEW): some vehicles pass daily, most now and then."""
WINDOW_S = 120.0
MIN_SHARED = 3
CHECKPOINTS = 60

_population: list[str] = []  # inherited by the fill workers (fork)


def _cp(c: int) -> str:
    return f"SD-R{c // 10:02d}-{c % 10 + 1:03d}"


def _convoys(pairs: int, day_list: list[dt.date], tz: dt.timezone, seed: int) -> list[dict[str, Any]]:
    """Each convoy: the load's and the scout's plates and their passages (checkpoint index, time)."""
    rng = random.Random(seed)
    taken = set(_population)
    out = []
    while len(out) < pairs:
        load, scout = _plate(rng), _plate(rng)
        if load in taken or scout in taken or load == scout:
            continue
        taken |= {load, scout}
        load_passes: list[tuple[int, float]] = []
        scout_passes: list[tuple[int, float]] = []
        lead = rng.uniform(20, 100)  # the scout keeps about this far ahead
        for day in rng.sample(day_list, rng.randint(1, min(2, len(day_list)))):
            start, _ = day_bounds(day, tz)
            at = start + rng.uniform(1, 14) * 3600
            cp = rng.randrange(CHECKPOINTS)
            for _ in range(rng.randint(4, 9)):
                load_passes.append((cp, at))
                if rng.random() < 0.85:
                    scout_passes.append((cp, at - lead + rng.uniform(-15, 15)))
                cp = (cp + rng.choice([-1, 1])) % CHECKPOINTS  # along the ring
                at += rng.uniform(15, 50) * 60
        out.append({"load": load, "scout": scout, "load_passes": load_passes, "scout_passes": scout_passes})
    return out


def _fill_day(job: tuple[str, str, int, int, list[tuple[str, int, float]]]) -> dict[str, Any]:
    """One day file of passages, written directly: tables, rows in time order, then indexes."""
    root, day_text, n, seed, injected = job
    day = dt.date.fromisoformat(day_text)
    tz = SqliteReadStore(root, utc_offset=UTC_OFFSET).tz
    start, _ = day_bounds(day, tz)
    rng = np.random.default_rng(seed)
    pop = _population
    ids = np.floor(len(pop) * rng.random(n) ** SKEW).astype(np.int64).tolist()
    times = (start + rng.random(n) * 86400.0).tolist()
    cps = rng.integers(0, CHECKPOINTS, n).tolist()
    rows = [(pop[v], c, t) for v, c, t in zip(ids, cps, times, strict=True)]
    rows.extend((plate, c, t) for plate, c, t in injected)
    rows.sort(key=lambda r: r[2])
    path = Path(root) / file_name(day)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-200000")
    for statement in TABLES:
        conn.execute(statement)
    names = [_cp(c) for c in range(CHECKPOINTS)]
    seqs = [0] * CHECKPOINTS
    conn.execute("BEGIN")

    def gen():  # type: ignore[no-untyped-def]
        for plate, c, t in rows:
            seqs[c] += 1
            yield (
                names[c],
                1,
                seqs[c],
                b"",
                plate,
                False,
                "blue",
                None,
                t,
                t + 1.5,
                seqs[c],
                "[]",
                '["lane1"]',
                t + 2.0,
            )

    conn.executemany(
        "INSERT INTO passages (checkpoint, epoch, seq, digest, plate, no_plate, colour, vehicle_type, "
        "first_seen, last_seen, best_seq, read_seqs, cameras, received_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        gen(),
    )
    conn.execute("COMMIT")
    for statement in INDEXES:
        conn.execute(statement)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return {"day": day_text, "passages": len(rows)}


def run(
    passages: int = 20_000_000,
    days: int = 7,
    pairs: int = 50,
    seed: int = 8,
    workers: int = 2,
    data: str | None = None,
) -> dict[str, Any]:
    """Fill, query, score; one JSON-able dict."""
    global _population
    root = Path(data) if data else Path(tempfile.mkdtemp(prefix="cordon-bench-companions-", dir="/tmp"))
    record_dir = root / "record"
    record_dir.mkdir(parents=True, exist_ok=True)
    try:
        store = SqliteReadStore(record_dir, utc_offset=UTC_OFFSET)
        today = day_of(time.time(), store.tz)
        day_list = [today - dt.timedelta(days=days - 1 - i) for i in range(days)]
        rng = random.Random(seed)
        n_vehicles = max(1000, passages // 7)
        seen: set[str] = set()
        population: list[str] = []
        while len(population) < n_vehicles:
            plate = _plate(rng)
            if plate not in seen:
                seen.add(plate)
                population.append(plate)
        _population = population
        convoys = _convoys(pairs, day_list, store.tz, seed + 1)
        injected: dict[dt.date, list[tuple[str, int, float]]] = {d: [] for d in day_list}
        for cv in convoys:
            for key in ("load", "scout"):
                for c, at in cv[f"{key}_passes"]:
                    day = day_of(at, store.tz)
                    if day in injected:
                        injected[day].append((cv[key], c, at))
        per_day = [passages // days + (1 if i < passages % days else 0) for i in range(days)]
        jobs = [
            (str(record_dir), d.isoformat(), n, seed + 10 + i, injected[d])
            for i, (d, n) in enumerate(zip(day_list, per_day, strict=True))
        ]
        started = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(max(1, workers)) as pool:
            filled = pool.map(_fill_day, jobs, chunksize=1)
        fill_s = time.perf_counter() - started

        since, until = day_bounds(day_list[0], store.tz)[0], day_bounds(day_list[-1], store.tz)[1] - 0.001
        qrng = random.Random(seed + 2)
        targets = [cv["load"] for cv in convoys]
        targets += [population[int(len(population) * qrng.random() ** SKEW)] for _ in range(len(convoys))]
        latencies: list[float] = []
        hits = 0
        ranks: list[int | None] = []
        answers: dict[str, list[str]] = {}
        for plate in targets:
            t0 = time.perf_counter()
            found = store.companions(plate, since, until, WINDOW_S, MIN_SHARED, limit=20)
            latencies.append(time.perf_counter() - t0)
            answers[plate] = [c.plate for c in found.found]
        for cv in convoys:
            top = answers[cv["load"]]
            rank = top.index(cv["scout"]) + 1 if cv["scout"] in top else None
            ranks.append(rank)
            hits += rank is not None and rank <= 5
        lat = np.asarray(latencies)
        return {
            "companion_query_p99_s": round(float(np.percentile(lat, 99)), 3),
            "companion_recall_top5": round(hits / len(convoys), 4),
            "companion_query_p50_s": round(float(np.percentile(lat, 50)), 3),
            "companion_queries": len(latencies),
            "companion_pairs": len(convoys),
            "companion_scouts_sharing_fewer_than_min": sum(
                1 for cv in convoys if len(cv["scout_passes"]) < MIN_SHARED
            ),
            "companion_rank_counts": {
                str(r): ranks.count(r) for r in sorted(set(ranks), key=lambda r: r or 99)
            },
            "companion_passages": sum(f["passages"] for f in filled),
            "companion_days": days,
            "companion_checkpoints": CHECKPOINTS,
            "companion_vehicles": len(population),
            "companion_window_s": WINDOW_S,
            "companion_min_shared": MIN_SHARED,
            "companion_fill_s": round(fill_s, 1),
            "companion_fill_method": "bulk: day files written directly with the store's TABLES and INDEXES "
            "(no journal, indexes after the load, passage digests left empty)",
        }
    finally:
        if not data:
            shutil.rmtree(root, ignore_errors=True)
