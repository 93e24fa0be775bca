"""The ``cordon`` command: a thin layer over the edge, hub and demo libraries."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import gc
import json
import logging
import os
import signal
import ssl
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from protocols.errors import ConfigError, CordonError

from .bench.cli import add_parser as add_bench_parser

log = logging.getLogger("cordon")


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


Site = (
    tuple[web.Application, str, int]
    | tuple[web.Application, str, int, ssl.SSLContext | None]
    | tuple[web.Application, str, int, ssl.SSLContext | None, list[str]]
)


def https_context(http: Any, section: str = "http") -> ssl.SSLContext | None:
    """The HTTPS context of an ``[http]`` section with ``cert_file``/``key_file``; None serves plain HTTP."""
    from runtime.config import SettingsError
    from runtime.tls import server_context

    if not http.cert_file and not http.key_file:
        if getattr(http, "ca_file", None):
            raise SettingsError(
                f"[{section}] ca_file asks for client certificates, which needs HTTPS (cert_file)"
            )
        return None
    if not http.cert_file:
        raise SettingsError(f"[{section}] key_file is set without cert_file")
    return server_context(
        http.cert_file,
        http.key_file,
        section,
        client_ca_file=getattr(http, "ca_file", None),
        crl_file=getattr(http, "crl_file", None),
    )


def settle_heap() -> None:
    """What start-up made (modules, settings, the watchlist index, the routes) lives as long as the
    process: freeze it out of the cyclic garbage collector, so that a full collection walks only what was
    made since. On the edge a full collection came every 8 s or so under load and walked some 87,000
    objects for 60 to 110 ms, all that time holding every read and alert behind it."""
    gc.collect()
    gc.freeze()


async def serve_apps(
    sites: list[Site], ready: asyncio.Event | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run aiohttp apps (each over HTTPS when given an SSL context) until SIGINT/SIGTERM (or ``stop``),
    then shut them down cleanly, last first."""
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
        for app, host, port, *tls in sites:
            runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await runner.setup()
            runners.append(runner)
            context = tls[0] if tls else None
            fronts = tls[1] if len(tls) > 1 else []  # type: ignore[misc]
            if fronts:  # behind a front door that says who the client is (runtime/proxy_protocol.py)
                from runtime.proxy_protocol import ProxyProtocolSite, networks

                await ProxyProtocolSite(runner, host, port, networks(fronts), ssl_context=context).start()
            else:
                await web.TCPSite(runner, host, port, shutdown_timeout=5, ssl_context=context).start()
        settle_heap()
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
    tls = https_context(settings.http)
    app = create_app(settings)
    log.info(
        "hub listening on %s://%s:%d", "https" if tls else "http", settings.http.host, settings.http.port
    )
    if settings.http.proxy_protocol_from:
        log.info("hub takes a PROXY protocol header from %s", ", ".join(settings.http.proxy_protocol_from))
    asyncio.run(
        serve_apps([(app, settings.http.host, settings.http.port, tls, settings.http.proxy_protocol_from)])
    )
    return 0


def cmd_edge(args: argparse.Namespace) -> int:
    from edge.app import create_app
    from edge.settings import load_settings

    settings = load_settings(args.config)
    tls = https_context(settings.http)
    app = create_app(settings)
    log.info(
        "edge %s listening on %s://%s:%d",
        settings.checkpoint,
        "https" if tls else "http",
        settings.http.host,
        settings.http.port,
    )
    asyncio.run(serve_apps([(app, settings.http.host, settings.http.port, tls)]))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoOptions, run_demo

    options = DemoOptions(
        port=args.port,
        checkpoints=args.checkpoints,
        broker=args.broker,
        data=os.path.abspath(args.data),
        vehicles_per_minute=args.vehicles_per_minute,
        duration_s=args.duration,
        hubs=args.hubs,
        store=args.store,
    )
    if options.hubs > 1 or options.store:
        from .demo_cluster import run_cluster_demo

        asyncio.run(run_cluster_demo(options))
    else:
        asyncio.run(run_demo(options))
    return 0


#: ``cordon watchlist import`` flags that set the list it creates (``--alert-kinds`` is ``alert_kinds``).
LIST_FLAGS = (
    "name",
    "action",
    "priority",
    "alert_kinds",
    "max_swaps",
    "restricted",
    "valid_from",
    "valid_until",
    "source",
    "owner",
)


def cmd_watchlist_import(args: argparse.Namespace) -> int:
    from central.watchlists.files import ImportRejected

    from .watchlist_cli import CliError, _code, import_file

    try:
        answer = asyncio.run(
            import_file(
                args.file,
                args.list,
                hub=args.hub,
                code=_code(args.code, args.code_file),
                fmt=args.format,
                merge=args.merge,
                skip_invalid=args.skip_invalid,
                create=args.create,
                list_settings={key: value for key in LIST_FLAGS if (value := getattr(args, key)) is not None},
            )
        )
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
        body = asyncio.run(
            export_list(args.list, hub=args.hub, code=_code(args.code, args.code_file), fmt=args.format)
        )
    except CliError as exc:
        print(f"cordon: {exc}", file=sys.stderr)
        return 1
    if args.output:
        with open(args.output, "wb") as f:
            f.write(body)
    else:
        sys.stdout.buffer.write(body)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit_cli import AuditCliError, head, open_store, parse_head, verify_store

    try:
        store = open_store(args.config, args.data, args.db)
        if args.audit == "head":
            print(head(store))
            return 0
        ok, line = verify_store(store, parse_head(args.head))
    except AuditCliError as exc:
        print(f"cordon: {exc}", file=sys.stderr)
        return 2
    print(line)
    return 0 if ok else 1


def cmd_user(args: argparse.Namespace) -> int:
    from . import user_cli
    from .store_cli import hub_settings

    settings = hub_settings(args.config, args.data)
    try:
        if args.user == "add":
            password = user_cli.read_password(args.password_file)
            user = user_cli.add(
                settings, args.username, args.role, password, args.checkpoint, args.display_name
            )
            print(json.dumps(user.public(), ensure_ascii=False))
        elif args.user == "list":
            for user in user_cli.listing(settings):
                print(json.dumps(user.public(), ensure_ascii=False))
        elif args.user in ("disable", "enable"):
            user = user_cli.set_disabled(settings, args.username, args.user == "disable")
            print(json.dumps(user.public(), ensure_ascii=False))
        elif args.user == "reset-password":
            password = user_cli.read_password(args.password_file)
            print(
                json.dumps(
                    user_cli.reset_password(settings, args.username, password).public(), ensure_ascii=False
                )
            )
        elif args.user == "token":
            print(user_cli.token(settings, args.username))
    except user_cli.UserCliError as exc:
        print(f"cordon: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    from .store_cli import Bar, run_migrate

    bar = Bar(sys.stderr)
    try:
        summary = run_migrate(args.config, args.data, args.dsn, args.password_file, args.batch, bar)
    except KeyboardInterrupt:
        bar.close()
        print(
            "cordon store migrate: interrupted; what was copied stays, run it again to go on from there",
            file=sys.stderr,
        )
        return 130
    finally:
        bar.close()
    print(json.dumps(summary.as_dict(), ensure_ascii=False))
    for problem in summary.problems:
        print(f"cordon store migrate: {problem}", file=sys.stderr)
    return 0 if summary.ok else 1


def _pki(args: argparse.Namespace):  # noqa: ANN202 - returns cordon.pki.Pki
    from .pki import Pki

    passphrase = None
    if getattr(args, "passphrase_file", None):
        with open(args.passphrase_file, "rb") as f:
            passphrase = f.read().strip()
    return Pki(args.dir, passphrase)


def _hosts(text: str | None) -> list[str]:
    return [h for h in (text or "").split(",") if h.strip()]


def cmd_pki(args: argparse.Namespace) -> int:
    from .pki import PkiError

    pki = _pki(args)
    try:
        if args.pki == "init":
            print(f"CA certificate: {pki.init(common_name=args.name, days=args.days)}")
        elif args.pki == "issue":
            print(f"identity of {args.node}: {pki.issue(args.node, _hosts(args.hosts), days=args.days)}")
        elif args.pki == "issue-server":
            print(
                f"server certificate of {args.node}: "
                f"{pki.issue_server(args.node, _hosts(args.hosts), days=args.days)}"
            )
        elif args.pki == "revoke":
            for record in pki.revoke(args.node):
                print(f"revoked {record.kind} certificate of {record.name}, serial {record.serial}")
            print(f"CRL: {pki.root / 'crl.pem'} (install it on the broker and restart Mosquitto)")
        elif args.pki == "crl":
            print(f"CRL: {pki.write_crl(days=args.days)}")
        elif args.pki == "list":
            records = pki.records()
            if args.json:
                from dataclasses import asdict

                print(json.dumps([asdict(r) for r in records], ensure_ascii=False))
            for r in [] if args.json else records:
                state = f"revoked {r.revoked_at}" if r.revoked_at else f"valid until {r.not_after}"
                print(f"{r.name:24} {r.kind:7} {r.serial:40} {state} {','.join(r.hosts)}")
    except (PkiError, OSError) as exc:
        print(f"cordon: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_pki_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .pki import CA_DAYS, CRL_DAYS, LEAF_DAYS

    pki = sub.add_parser("pki", help="the ring's certificate authority: CA, node identities, revocation")
    psub = pki.add_subparsers(dest="pki", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        p = psub.add_parser(name, help=help)
        p.add_argument("--dir", default="pki", help="the CA folder (default: ./pki)")
        p.add_argument("--passphrase-file", help="file holding the CA key's passphrase")
        p.set_defaults(func=cmd_pki)
        return p

    p = add("init", "create the CA (encrypted with --passphrase-file when given)")
    p.add_argument("--name", default="Cordon CA", help="the CA's common name")
    p.add_argument("--days", type=int, default=CA_DAYS)
    p = add("issue", "a node's identity: client certificate, signing key, server certificate with --hosts")
    p.add_argument(
        "node", metavar="NAME", help="checkpoint id (or cordon-hub): the certificate's CN and MQTT user"
    )
    p.add_argument(
        "--hosts", help="comma-separated host names / IPs of the node's web app (server certificate)"
    )
    p.add_argument("--days", type=int, default=LEAF_DAYS)
    p = add("issue-server", "a server certificate only (the broker)")
    p.add_argument("node", metavar="NAME")
    p.add_argument("--hosts", required=True, help="comma-separated host names / IPs the server is reached by")
    p.add_argument("--days", type=int, default=LEAF_DAYS)
    p = add("revoke", "revoke every certificate of NAME and rewrite the CRL")
    p.add_argument("node", metavar="NAME")
    p = add(
        "crl", f"re-sign the CRL (it is valid {CRL_DAYS} days; Mosquitto refuses everyone once it expires)"
    )
    p.add_argument("--days", type=int, default=CRL_DAYS)
    p = add("list", "every certificate issued, with its state")
    p.add_argument("--json", action="store_true", help="one JSON array")


def _kit_catalogue(extra: list[str] | None):  # the shipped catalogue, then a province's files on top
    from edge.kits.catalogue import SHIPPED_CATALOGUE, load_catalogue

    return load_catalogue(SHIPPED_CATALOGUE, *(extra or []))


def cmd_kits_card(args: argparse.Namespace) -> int:
    from edge.kits.card import write_card
    from protocols.kits import KitError

    try:
        catalogue = _kit_catalogue(args.catalogue)
        kits = [catalogue.get(m) for m in args.kit] if args.kit else catalogue.kits
        path = write_card(args.out, kits, px_per_mm=args.px_per_mm)
    except (KitError, ValueError, OSError) as exc:
        print(f"cordon: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}: print it at 100 % scale (the card must measure 170 x 120 mm)")
    return 0


def cmd_kits_read(args: argparse.Namespace) -> int:
    import msgspec

    from edge.kits.reader import read_photo
    from protocols.kits import KitError

    try:
        kit = _kit_catalogue(args.catalogue).get(args.kit)
        with open(args.photo, "rb") as f:
            data = f.read()
    except (KitError, OSError) as exc:
        print(f"cordon: {exc}", file=sys.stderr)
        return 1
    reading = read_photo(data, kit)
    print(msgspec.json.encode(reading).decode())
    return 0 if reading.ok else 1


def cmd_backup(args: argparse.Namespace) -> int:
    from central.record.backups import BackupError

    from .backup_cli import backup

    try:
        print(json.dumps(backup(args.config, args.to, args.keep), ensure_ascii=False))
    except BackupError as exc:
        print(f"cordon backup: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from central.record.backups import BackupError

    from .backup_cli import restore

    if not args.config and not args.data:
        print("cordon restore: say where to: --config hub.toml (its data_dir) or --data DIR", file=sys.stderr)
        return 2
    try:
        ok, summary = restore(args.backup, args.config, args.data, args.wal_archive, args.until)
    except BackupError as exc:
        print(f"cordon restore: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if ok else 1


def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .init_cli import InitError, init_edge, init_hub

    try:
        if args.init == "hub":
            written = init_hub(
                Path(args.config), Path(args.data), args.mqtt_url, Path(args.backup_dir), args.group
            )
        else:
            written = init_edge(
                Path(args.config),
                args.checkpoint,
                Path(args.data),
                args.mqtt_url,
                args.hub_url,
                Path(args.id_secret) if args.id_secret else None,
                args.group,
            )
    except (InitError, OSError) as exc:
        print(f"cordon init: {exc}", file=sys.stderr)
        return 1
    for path in written.files:
        print(f"wrote {path}")
    for note in written.notes:
        print(f"note: {note}")
    print(
        f"next: copy the certificates into {Path(args.config).parent / 'tls'}, then cordon doctor {args.init}"
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    import time

    from .doctor import Doctor

    deadline = time.monotonic() + args.wait
    while True:
        doctor = Doctor(args.side, args.config, timeout_s=args.timeout)
        checks = doctor.run()
        answering = any(c.what == "port" and c.level == "ok" for c in checks)
        if answering or time.monotonic() >= deadline:
            break
        time.sleep(1)
    if args.json:
        print(json.dumps([{"level": c.level, "what": c.what, "message": c.message} for c in checks]))
    else:
        for c in checks:
            print(f"{c.level:<4}  {c.what}: {c.message}")
        worst = {0: "all well", 1: "warnings", 2: "FAILED"}[doctor.status]
        print(f"cordon doctor {args.side}: {worst}")
    return doctor.status


def build_parser() -> argparse.ArgumentParser:
    from central.record.migrate import BATCH

    from . import version

    parser = argparse.ArgumentParser(prog="cordon", description="Cordon checkpoint interdiction event system")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--version", action="version", version=f"cordon {version()} (Python {sys.version.split()[0]})"
    )
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
    p.add_argument(
        "--broker", default=None, help="use this broker (mqtt://host:port) instead of the embedded one"
    )
    p.add_argument("--data", default="./demo-data", help="folder for the demo's databases")
    p.add_argument("--vehicles-per-minute", type=float, default=30.0, help="simulated traffic per checkpoint")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument(
        "--hubs", type=int, default=1, help="2 or more: that many hub processes over --store (several hubs)"
    )
    p.add_argument(
        "--store", default=None, metavar="DSN", help="with --hubs: the PostgreSQL database the hubs share"
    )
    p.set_defaults(func=cmd_demo)

    wl = sub.add_parser("watchlist", help="import and export watchlists through the hub's API")
    wsub = wl.add_subparsers(dest="watchlist", required=True)
    for name, func in (("import", cmd_watchlist_import), ("export", cmd_watchlist_export)):
        p = wsub.add_parser(name, help=f"{name} a watchlist (CSV or JSON)")
        if name == "import":
            p.add_argument("file", help="CSV or JSON (array or JSON Lines) file")
            p.add_argument(
                "--merge",
                action="store_true",
                help="add and update only (default: the list becomes the file)",
            )
            p.add_argument(
                "--skip-invalid", action="store_true", help="apply the good rows, report the bad ones"
            )
            p.add_argument("--create", action="store_true", help="create the list if it does not exist")
            # The new list's settings (with --create), as POST /api/v1/watchlists takes them.
            for flag, helptext in (
                ("--name", "the new list's name (default: its id)"),
                ("--action", "intercept, covert or notify (default intercept)"),
                ("--priority", "0-100 (default 50)"),
                (
                    "--alert-kinds",
                    "match kinds that alert, comma-separated (default exact,equivalent,wildcard)",
                ),
                ("--max-swaps", "look-alike characters a match may differ by (default 2)"),
                (
                    "--restricted",
                    "1: only commanders, analysts and admins see it, and it never leaves the hub",
                ),
                ("--valid-from", "ISO 8601 with an offset, or unix seconds"),
                ("--valid-until", "ISO 8601 with an offset, or unix seconds"),
                ("--source", "where the list comes from"),
                ("--owner", "who answers for it"),
            ):
                p.add_argument(flag, help=helptext)
        else:
            p.add_argument("-o", "--output", help="file to write (default: standard output)")
        p.add_argument("--list", required=True, help="list id")
        p.add_argument("--format", choices=["csv", "json"], default=None if name == "import" else "csv")
        p.add_argument("--hub", default="http://127.0.0.1:8080", help="the hub's address")
        p.add_argument("--code", help="console access code")
        p.add_argument("--code-file", help="file holding the console access code")
        p.set_defaults(func=func)

    us = sub.add_parser("user", help="accounts and roles, on the hub's store")
    usub = us.add_subparsers(dest="user", required=True)
    for name, text in (
        ("add", "add an account (password asked, or one line on standard input, or --password-file)"),
        ("list", "list the accounts"),
        ("disable", "disable an account (ends its sessions)"),
        ("enable", "enable it again"),
        ("reset-password", "set a new password (ends its sessions)"),
        ("token", "issue a new API token for the account (printed once)"),
    ):
        p = usub.add_parser(name, help=text)
        p.add_argument("--config", help="hub.toml: its store (SQLite under data_dir, or PostgreSQL)")
        p.add_argument("--data", help="the hub's data_dir (default ./data/hub)")
        if name != "list":
            p.add_argument("username")
        if name == "add":
            p.add_argument(
                "--role",
                required=True,
                choices=["officer", "commander", "analyst", "watchlist_manager", "admin", "auditor"],
            )
            p.add_argument("--checkpoint", help="the officer's checkpoint")
            p.add_argument("--display-name", default="", help="the name shown in the console")
        if name in ("add", "reset-password"):
            p.add_argument("--password-file", help="read the password from this file")
        p.set_defaults(func=cmd_user)

    au = sub.add_parser("audit", help="check the hub's hash-chained audit trail")
    asub = au.add_subparsers(dest="audit", required=True)
    for name, text in (
        ("verify", "walk the whole chain; exit 1 and say where when a record was changed or removed"),
        ("head", "print the last record's id and hash (ID:HASH), to write down elsewhere"),
    ):
        p = asub.add_parser(name, help=text)
        p.add_argument("--config", help="hub.toml: its store (SQLite under data_dir, or PostgreSQL)")
        p.add_argument("--data", help="the hub's data_dir (default ./data/hub)")
        p.add_argument("--db", help="or the hub database file itself")
        if name == "verify":
            p.add_argument(
                "--head", help="ID:HASH written down earlier: also proves nothing was cut off the end"
            )
        p.set_defaults(func=cmd_audit)
    p = sub.add_parser(
        "backup", help="back up the hub (running or not) as one consistent cut, then rotate the backups"
    )
    p.add_argument("--config", help="hub.toml (its data_dir, record and backup settings)")
    p.add_argument("--to", help="backup folder (default: backup.dir)")
    p.add_argument("--keep", type=int, help="backups kept (default: backup.keep)")
    p.set_defaults(func=cmd_backup)
    p = sub.add_parser(
        "restore", help="restore a backup into an empty data folder and verify its audit chain"
    )
    p.add_argument("backup", help="a backup folder (hub-YYYYMMDDTHHMMSSZ)")
    p.add_argument("--config", help="hub.toml: restore into its data_dir")
    p.add_argument("--data", help="or into this folder (a PostgreSQL backup: the new PostgreSQL data folder)")
    p.add_argument(
        "--wal-archive", help="PostgreSQL: the WAL archive to replay from (default: backup.wal_archive)"
    )
    p.add_argument(
        "--until",
        help="PostgreSQL: replay to `backup` (its end), `latest` (all the archive holds: the default with "
        "an archive) or a time (ISO 8601 with its offset)",
    )
    p.set_defaults(func=cmd_restore)
    st = sub.add_parser("store", help="the hub's store: move a SQLite hub onto PostgreSQL")
    ssub = st.add_subparsers(dest="store", required=True)
    p = ssub.add_parser(
        "migrate",
        help="copy a stopped SQLite hub (hub.db, the day files, the evidence) into an empty PostgreSQL store; "
        "resumable, checked at the end",
    )
    p.add_argument("--config", help="hub.toml: its data_dir, [store] dsn and password, record.utc_offset")
    p.add_argument("--data", help="the SQLite hub's data folder (instead of the config's data_dir)")
    p.add_argument("--dsn", help="the PostgreSQL database (instead of store.dsn), without the password")
    p.add_argument("--password-file", help="a file holding the database password (instead of the config's)")
    p.add_argument("--batch", type=int, default=BATCH, help=f"rows copied per transaction (default {BATCH})")
    p.set_defaults(func=cmd_store)
    ini = sub.add_parser("init", help="write a first configuration with fresh secrets (never over one)")
    isub = ini.add_subparsers(dest="init", required=True)
    for side in ("hub", "edge"):
        p = isub.add_parser(side, help=f"a commented {side}.toml with fresh tokens and keys")
        p.add_argument("--config", default=f"/etc/cordon/{side}.toml", help="the file to write")
        p.add_argument("--data", default=f"/var/lib/cordon/{side}", help="its data_dir")
        p.add_argument("--mqtt-url", default="mqtts://mqtt.ring.example", help="the broker")
        p.add_argument("--group", default="cordon", help="group given the secret files (when it exists)")
        if side == "hub":
            p.add_argument("--backup-dir", default="/var/backups/cordon", help="backup.dir")
        else:
            p.add_argument("--checkpoint", required=True, help="the checkpoint id, e.g. SD-DZ-001")
            p.add_argument("--hub-url", default="https://hub.ring.example:8443", help="the hub's address")
            p.add_argument("--id-secret", help="a copy of the hub's id-secret file (kits.id_secret_file)")
        p.set_defaults(func=cmd_init)
    doc = sub.add_parser(
        "doctor", help="check a hub or an edge where it runs; exit 0 ok, 1 warnings, 2 failures"
    )
    dsub = doc.add_subparsers(dest="side", required=True)
    for side in ("hub", "edge"):
        p = dsub.add_parser(side, help=f"check this box's {side}")
        p.add_argument("--config", default=f"/etc/cordon/{side}.toml", help=f"{side}.toml")
        p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker or the hub")
        p.add_argument("--json", action="store_true", help="the checks as one JSON array")
        p.add_argument(
            "--wait",
            type=float,
            default=0.0,
            help="check again for up to this many seconds until the service answers",
        )
        p.set_defaults(func=cmd_doctor)
    _add_pki_parser(sub)
    kits = sub.add_parser("kits", help="drug quick-test kits: the reading card, reading a photo")
    ksub = kits.add_subparsers(dest="kits", required=True)
    p = ksub.add_parser("card", help="write the printed reading card (PNG or PDF)")
    p.add_argument("--out", required=True, help="card.png or card.pdf")
    p.add_argument("--kit", action="append", help="outline only this kit model (repeatable; default: all)")
    p.add_argument("--px-per-mm", type=float, default=12.0, help="resolution of the card image")
    p.add_argument(
        "--catalogue", action="append", help="a province's catalogue file on top of the shipped one"
    )
    p.set_defaults(func=cmd_kits_card)
    p = ksub.add_parser("read", help="read a photo of a cassette on the card; prints JSON")
    p.add_argument("photo", help="JPEG or PNG")
    p.add_argument("--kit", required=True, help="kit model, e.g. SD-SAL6")
    p.add_argument(
        "--catalogue", action="append", help="a province's catalogue file on top of the shipped one"
    )
    p.set_defaults(func=cmd_kits_read)

    add_bench_parser(sub)
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
    except CordonError as exc:  # an error Cordon raised on purpose: one clear line, no traceback
        print(f"cordon: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1


if __name__ == "__main__":
    sys.exit(main())
