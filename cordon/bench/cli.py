"""``cordon bench ...``: the benchmark commands. Each runs one benchmark module and prints its result,
one JSON object (on one line with ``--json``). The modules are imported only when their command runs:
some pull in heavy dependencies (OpenCV for the kit reader)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from edge.kits.catalogue import SHIPPED_CATALOGUE as KITS_CATALOGUE


def _emit(result: dict[str, Any], args: argparse.Namespace) -> int:
    print(json.dumps(result, ensure_ascii=False, indent=None if args.json else 2))
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    from .match import run

    return _emit(run(args.entries, reads=args.reads, seed=args.seed), args)


def cmd_sync(args: argparse.Namespace) -> int:
    from .sync import run

    return _emit(
        run(
            snapshot_entries=args.snapshot_entries,
            edges=args.edges,
            feed_entries=args.feed_entries,
            additions=args.additions,
        ),
        args,
    )


def cmd_kits(args: argparse.Namespace) -> int:
    from .kits import run

    return _emit(run(photos=args.photos, seed=args.seed, catalogue_path=args.catalogue), args)


def cmd_store(args: argparse.Namespace) -> int:
    if args.backend == "postgresql":
        from .store_pg import run as run_pg

        if args.data:
            raise SystemExit("--data is for the SQLite run; the PostgreSQL run makes a cluster of its own")
        return _emit(
            run_pg(
                args.reads,
                days=args.days,
                keep=args.keep,
                queries=args.queries,
                workers=args.workers,
                fill_only=args.fill_only,
                reuse=args.reuse,
            ),
            args,
        )
    if args.fill_only or args.reuse:
        raise SystemExit("--fill-only and --reuse are for the PostgreSQL run (--backend postgresql)")
    from .store import run

    return _emit(
        run(
            args.reads,
            days=args.days,
            data=args.data,
            keep=args.keep,
            queries=args.queries,
            workers=args.workers,
        ),
        args,
    )


def cmd_pgdriver(args: argparse.Namespace) -> int:
    from .pgdriver import run

    return _emit(run(args.batches, args.batch, args.lookups, args.rounds), args)


def _phases(text: str) -> list[str]:
    from .e2e import parse_phases

    try:
        return parse_phases(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cmd_pgwriter(args: argparse.Namespace) -> int:
    from .pgwriter import run

    return _emit(run(args.messages, args.reads_per_message, tuple(args.bursts)), args)


def cmd_hublocks(args: argparse.Namespace) -> int:
    from .hublocks import run

    return _emit(run(args.rounds, args.cost_batches, args.load_s), args)


def cmd_e2e(args: argparse.Namespace) -> int:
    from .e2e import run

    return _emit(
        run(
            args.reads,
            args.hits,
            args.backlog,
            entries=args.entries,
            keep=args.keep,
            store=args.store,
            warmup_s=args.warmup_s,
            window_s=args.window_s,
            phases=args.phases,
        ),
        args,
    )


def cmd_cluster(args: argparse.Namespace) -> int:
    from .cluster import run

    return _emit(
        run(
            entries=args.entries,
            warmup_s=args.warmup_s,
            window_s=args.window_s,
            kills=args.kills,
            hits=args.hits,
            keep=args.keep,
        ),
        args,
    )


def cmd_spine(args: argparse.Namespace) -> int:
    from .spine import run

    return _emit(run(args.hits, entries=args.entries, seed=args.seed, keep=args.keep), args)


def cmd_intel(args: argparse.Namespace) -> int:
    from .intel import run, week

    if args.week:
        return _emit(week(args.passages_per_day, days=args.days, seed=args.seed), args)
    if args.quick:
        return _emit(
            run(
                min(args.passages, 20_000),
                seed=args.seed,
                repeats=1,
                companion_passages=min(args.companion_passages, 200_000),
            ),
            args,
        )
    return _emit(
        run(args.passages, seed=args.seed, repeats=args.repeats, companion_passages=args.companion_passages),
        args,
    )


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``bench`` and its subcommands on the ``cordon`` command's subparsers."""
    bench = sub.add_parser("bench", help="benchmarks (print JSON)")
    bsub = bench.add_subparsers(dest="bench", required=True)
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="one JSON object on one line")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        return bsub.add_parser(name, help=help_, parents=[json_flag])  # type: ignore[no-any-return]

    p = add("match", "watchlist matching at scale")
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--reads", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_match)
    p = add("sync", "watchlist sync: snapshot to a fresh edge, delta latency to many edges")
    p.add_argument("--snapshot-entries", type=int, default=1_000_000)
    p.add_argument("--edges", type=int, default=50)
    p.add_argument("--feed-entries", type=int, default=100_000)
    p.add_argument("--additions", type=int, default=100)
    p.set_defaults(func=cmd_sync)
    p = add("kits", "cassette photo reader accuracy on generated photos")
    p.add_argument("--photos", type=int, default=2000)
    p.add_argument("--seed", type=int, default=20250101)
    p.add_argument("--catalogue", default=str(KITS_CATALOGUE))
    p.set_defaults(func=cmd_kits)
    p = add("store", "the record at scale: fill a week, search, purge a day under ingest")
    p.add_argument("--reads", type=int, default=20_000_000, help="reads to fill")
    p.add_argument("--days", type=int, default=7, help="days they span (ending today)")
    p.add_argument("--data", default=None, help="folder for the record (default: a new one under /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the folder afterwards")
    p.add_argument("--queries", type=int, default=300, help="queries of each kind")
    p.add_argument("--workers", type=int, default=2, help="processes filling day files (or days' partitions)")
    p.add_argument(
        "--backend",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the store: SQLite day files, or PostgreSQL (a cluster of its own under /tmp)",
    )
    p.add_argument(
        "--fill-only",
        action="store_true",
        help="PostgreSQL: fill a kept cluster and stop; prints the folder and the command that measures it",
    )
    p.add_argument("--reuse", default=None, help="PostgreSQL: measure a folder --fill-only made (once)")
    p.set_defaults(func=cmd_store)
    p = add("pgdriver", "PostgreSQL drivers (asyncpg, psycopg 3) on the record's batch insert and lookup")
    p.add_argument("--batches", type=int, default=300, help="batches inserted per run")
    p.add_argument("--batch", type=int, default=200, help="reads per batch (one statement, one commit)")
    p.add_argument("--lookups", type=int, default=2000, help="exact plate lookups per run")
    p.add_argument("--rounds", type=int, default=2, help="runs of each driver, alternating")
    p.set_defaults(func=cmd_pgdriver)
    p = add(
        "pgwriter", "what one ingest job costs on PostgreSQL: the real pipeline over PgStores, in process"
    )
    p.add_argument("--messages", type=int, default=2000, help="messages per burst size")
    p.add_argument("--reads-per-message", type=int, default=2, help="reads in each EventBatch")
    p.add_argument(
        "--bursts",
        type=int,
        nargs="+",
        default=[1, 8],
        help="messages queued before waiting (1: commit alone)",
    )
    p.set_defaults(func=cmd_pgwriter)
    p = add("hublocks", "two hubs on one PostgreSQL: plate-lock deadlocks, their cost, the record_days row")
    p.add_argument("--rounds", type=int, default=10, help="rounds of opposite-order batches (12 a round)")
    p.add_argument("--cost-batches", type=int, default=400, help="batches of 20 reads timed in each mode")
    p.add_argument("--load-s", type=float, default=10.0, help="seconds of saturated ingest, one hub then two")
    p.set_defaults(func=cmd_hublocks)
    p = add("e2e", "load and latency end to end: raw drain vs hub ingest, alert latency, replay")
    p.add_argument("--reads", type=int, default=600_000, help="reads in the ingest phase (>= 20 s of load)")
    p.add_argument("--hits", type=int, default=1000, help="listed reads timed to the console alert")
    p.add_argument("--backlog", type=int, default=200_000, help="events in the edge's outbox for the replay")
    p.add_argument("--entries", type=int, default=1_000_000, help="watchlist entries loaded in the hub")
    p.add_argument(
        "--store",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the hub's store; postgresql: a cluster of the benchmark's own, after a hub on SQLite runs the "
        "same ingest phases for the ratio",
    )
    p.add_argument(
        "--window-s",
        type=float,
        default=60.0,
        help="the steady window of saturated ingest (0: skip that phase)",
    )
    p.add_argument("--warmup-s", type=float, default=15.0, help="saturated ingest before the window starts")
    p.add_argument("--keep", default=None, help="work in this folder and keep it (logs, databases)")
    p.add_argument(
        "--phases",
        type=_phases,
        default="ingest,saturated,latency,replay",
        help="the phases to run, comma-separated (default: all four); e.g. --phases latency: the alert "
        "latency at the fixed load alone, with its CPU a read (no SQLite reference then)",
    )
    p.set_defaults(func=cmd_e2e)
    p = add(
        "cluster",
        "two hubs on one PostgreSQL behind HAProxy: saturated ingest with one hub and two, SIGKILLs of a hub "
        "holding unacknowledged events, alert latency",
    )
    p.add_argument("--entries", type=int, default=100_000, help="watchlist entries loaded in the hubs")
    p.add_argument("--window-s", type=float, default=60.0, help="the steady window of each saturated phase")
    p.add_argument("--warmup-s", type=float, default=15.0, help="saturated ingest before each window starts")
    p.add_argument(
        "--kills", type=int, default=5, help="SIGKILLs of a hub holding 100+ unacknowledged events"
    )
    p.add_argument(
        "--hits", type=int, default=1000, help="listed reads timed to the console behind the front"
    )
    p.add_argument("--keep", default=None, help="work in this folder and keep it (logs, databases)")
    p.set_defaults(func=cmd_cluster)
    p = add(
        "spine", "alert latency on the idle spine: camera push at an edge to the console alert, one at a time"
    )
    p.add_argument("--hits", type=int, default=100, help="listed reads, each timed to its console alert")
    p.add_argument("--entries", type=int, default=1000, help="watchlist entries loaded in the hub")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--keep", default=None, help="work in this folder and keep it (logs, databases)")
    p.set_defaults(func=cmd_spine)
    p = add("intel", "cloned plates: recall, false alerts from misreads, cost added to ingest")
    p.add_argument(
        "--passages",
        type=int,
        default=1_000_000,
        help="simulated passages in the measured day (the warm-up day has as many; about 2 GB of memory "
        "per million)",
    )
    p.add_argument("--seed", type=int, default=8)
    p.add_argument(
        "--repeats", type=int, default=5, help="ingest runs with the check off and on, alternating"
    )
    p.add_argument(
        "--companion-passages",
        type=int,
        default=20_000_000,
        help="passages in the simulated week for the companion query (60 checkpoints)",
    )
    p.add_argument(
        "--quick", action="store_true", help="small sizes (20k passages, a 200k-passage week): for tests"
    )
    p.add_argument(
        "--week",
        action="store_true",
        help="instead: the clone check alone over a simulated week (--days, --passages-per-day)",
    )
    p.add_argument(
        "--days", type=int, default=7, help="with --week: days, the first one warming the index up"
    )
    p.add_argument("--passages-per-day", type=int, default=2_860_000, help="with --week (7 x 2.86M = 20M)")
    p.set_defaults(func=cmd_intel)
