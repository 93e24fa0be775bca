"""The ``cordon`` command: a thin layer over the edge, hub and demo libraries."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

log = logging.getLogger("cordon")


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def serve_apps(sites: list[tuple[web.Application, str, int]], ready: asyncio.Event | None = None,
                     stop: asyncio.Event | None = None) -> None:
    """Run aiohttp apps until SIGINT/SIGTERM (or ``stop``), then shut them down cleanly, last first."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        log.info("%s: shutting down", sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
    runners: list[web.AppRunner] = []
    try:
        for app, host, port in sites:
            runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, host, port, shutdown_timeout=5).start()
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        for runner in reversed(runners):
            log.debug("stopping %s", runner.app)
            await runner.cleanup()


def cmd_hub(args: argparse.Namespace) -> int:
    from central.app import create_app
    from central.settings import load_settings

    settings = load_settings(args.config)
    log.info("hub listening on http://%s:%d", settings.http.host, settings.http.port)
    asyncio.run(serve_apps([(create_app(settings), settings.http.host, settings.http.port)]))
    return 0


def cmd_edge(args: argparse.Namespace) -> int:
    from edge.app import create_app
    from edge.settings import load_settings

    settings = load_settings(args.config)
    log.info("edge %s listening on http://%s:%d", settings.checkpoint, settings.http.host, settings.http.port)
    asyncio.run(serve_apps([(create_app(settings), settings.http.host, settings.http.port)]))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoOptions, run_demo

    options = DemoOptions(port=args.port, checkpoints=args.checkpoints, broker=args.broker, data=os.path.abspath(args.data),
                          vehicles_per_minute=args.vehicles_per_minute, duration_s=args.duration)
    asyncio.run(run_demo(options))
    return 0


def cmd_watchlist_import(args: argparse.Namespace) -> int:
    from central.importer import ImportRejected

    from .watchlist_cli import CliError, _code, import_file

    try:
        answer = asyncio.run(import_file(args.file, args.list, hub=args.hub, code=_code(args.code, args.code_file),
                                         fmt=args.format, merge=args.merge, skip_invalid=args.skip_invalid,
                                         create=args.create))
    except ImportRejected as exc:
        print(f"cordon: {args.file}: import refused, nothing was changed:", file=sys.stderr)
        for problem in exc.problems[:200]:
            print(f"  line {problem.line}: {problem.reason}", file=sys.stderr)
        if len(exc.problems) > 200:
            print(f"  ... and {len(exc.problems) - 200} more", file=sys.stderr)
        return 1
    except CliError as exc:
        print(f"cordon: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, ensure_ascii=False))
    return 0


def cmd_watchlist_export(args: argparse.Namespace) -> int:
    from .watchlist_cli import CliError, _code, export_list

    try:
        body = asyncio.run(export_list(args.list, hub=args.hub, code=_code(args.code, args.code_file),
                                       fmt=args.format))
    except CliError as exc:
        print(f"cordon: {exc}", file=sys.stderr)
        return 1
    if args.output:
        with open(args.output, "wb") as f:
            f.write(body)
    else:
        sys.stdout.buffer.write(body)
    return 0


def cmd_bench_match(args: argparse.Namespace) -> int:
    from .bench.match import run

    result = run(args.entries, reads=args.reads, seed=args.seed)
    print(json.dumps(result, ensure_ascii=False, indent=None if args.json else 2))
    return 0


def cmd_bench_sync(args: argparse.Namespace) -> int:
    from .bench.sync import run

    result = run(snapshot_entries=args.snapshot_entries, edges=args.edges, feed_entries=args.feed_entries,
                 additions=args.additions)
    print(json.dumps(result, ensure_ascii=False, indent=None if args.json else 2))
    return 0


def cmd_bench_e2e(args: argparse.Namespace) -> int:
    from .bench.e2e import run

    result = run(args.reads, args.hits, args.backlog, entries=args.entries, keep=args.keep)
    print(json.dumps(result, ensure_ascii=False, indent=None if args.json else 2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cordon", description="Cordon checkpoint interdiction event system")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("hub", help="run the central hub")
    p.add_argument("--config", required=True, help="hub.toml")
    p.set_defaults(func=cmd_hub)

    p = sub.add_parser("edge", help="run one checkpoint's edge agent")
    p.add_argument("--config", required=True, help="edge.toml")
    p.set_defaults(func=cmd_edge)

    p = sub.add_parser("demo", help="run broker, hub and simulated checkpoints on this machine")
    p.add_argument("--port", type=int, default=8080, help="console port (a free one is picked if taken)")
    p.add_argument("--checkpoints", type=int, default=3, help="number of simulated checkpoints")
    p.add_argument("--broker", default=None, help="use this broker (mqtt://host:port) instead of the embedded one")
    p.add_argument("--data", default="./demo-data", help="folder for the demo's databases")
    p.add_argument("--vehicles-per-minute", type=float, default=30.0, help="simulated traffic per checkpoint")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(func=cmd_demo)

    wl = sub.add_parser("watchlist", help="import and export watchlists through the hub's API")
    wsub = wl.add_subparsers(dest="watchlist", required=True)
    for name, func in (("import", cmd_watchlist_import), ("export", cmd_watchlist_export)):
        p = wsub.add_parser(name, help=f"{name} a watchlist (CSV or JSON)")
        if name == "import":
            p.add_argument("file", help="CSV or JSON (array or JSON Lines) file")
            p.add_argument("--merge", action="store_true", help="add and update only (default: the list becomes the file)")
            p.add_argument("--skip-invalid", action="store_true", help="apply the good rows, report the bad ones")
            p.add_argument("--create", action="store_true", help="create the list if it does not exist")
        else:
            p.add_argument("-o", "--output", help="file to write (default: standard output)")
        p.add_argument("--list", required=True, help="list id")
        p.add_argument("--format", choices=["csv", "json"], default=None if name == "import" else "csv")
        p.add_argument("--hub", default="http://127.0.0.1:8080", help="the hub's address")
        p.add_argument("--code", help="console access code")
        p.add_argument("--code-file", help="file holding the console access code")
        p.set_defaults(func=func)

    bench = sub.add_parser("bench", help="benchmarks (print JSON)")
    bsub = bench.add_subparsers(dest="bench", required=True)
    p = bsub.add_parser("match", help="watchlist matching at scale")
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--reads", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true", help="one JSON object on one line")
    p.set_defaults(func=cmd_bench_match)
    p = bsub.add_parser("sync", help="watchlist sync: snapshot to a fresh edge, delta latency to many edges")
    p.add_argument("--snapshot-entries", type=int, default=1_000_000)
    p.add_argument("--edges", type=int, default=50)
    p.add_argument("--feed-entries", type=int, default=100_000)
    p.add_argument("--additions", type=int, default=100)
    p.add_argument("--json", action="store_true", help="one JSON object on one line")
    p.set_defaults(func=cmd_bench_sync)
    p = bsub.add_parser("e2e", help="load and latency end to end: raw drain vs hub ingest, alert latency, replay")
    p.add_argument("--reads", type=int, default=600_000, help="reads in the ingest phase (>= 20 s of load)")
    p.add_argument("--hits", type=int, default=1000, help="listed reads timed to the console alert")
    p.add_argument("--backlog", type=int, default=200_000, help="events in the edge's outbox for the replay")
    p.add_argument("--entries", type=int, default=1_000_000, help="watchlist entries loaded in the hub")
    p.add_argument("--keep", default=None, help="work in this folder and keep it (logs, databases)")
    p.add_argument("--json", action="store_true", help="one JSON object on one line")
    p.set_defaults(func=cmd_bench_e2e)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    # `kill -USR1 <pid>` prints every thread's stack: how to see where a stuck process is.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # settings errors and the like: one clear line, no traceback
        from runtime.config import SettingsError

        if isinstance(exc, SettingsError):
            print(f"cordon: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
