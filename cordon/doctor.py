"""``cordon doctor``: check a hub or an edge where it runs, and say in plain words what is wrong.

Each check ends ``ok``, ``warn`` or ``FAIL`` with one line; the exit status is the worst of them as
monitoring plugins count it: 0 all well, 1 a warning, 2 a failure. It only reads: it opens the store
read-only, connects to the broker under a client id of its own (never the service's, which would throw
the running service off), and asks the service's health route on its own port.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import email.utils
import errno
import os
import shutil
import socket
import sqlite3
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import serialization

OK, WARN, FAIL = "ok", "warn", "FAIL"
EXIT = {OK: 0, WARN: 1, FAIL: 2}
#: A certificate or CRL closer to its end than this is a warning.
EXPIRY_WARN_DAYS = 30
#: An edge clock this far from the hub's is a warning (the hub flags it past clock.max_skew_s, 30 s).
CLOCK_WARN_S = 2.0
CLOCK_FAIL_S = 30.0


@dataclass(frozen=True, slots=True)
class Check:
    level: str
    what: str
    message: str


class Doctor:
    def __init__(self, side: str, config: str, *, now: float | None = None, timeout_s: float = 5.0) -> None:
        self.side = side
        self.config = config
        self.now = time.time() if now is None else now
        self.timeout_s = timeout_s
        self.checks: list[Check] = []

    def add(self, level: str, what: str, message: str) -> None:
        self.checks.append(Check(level, what, message))

    @property
    def status(self) -> int:
        return max((EXIT[c.level] for c in self.checks), default=0)

    def run(self) -> list[Check]:
        from runtime.config import SettingsError

        try:
            if self.side == "hub":
                from central.settings import load_settings
            else:
                from edge.settings import load_settings  # type: ignore[assignment]
            settings: Any = load_settings(self.config)
        except (SettingsError, OSError) as exc:
            self.add(FAIL, "config", f"{self.config}: {exc}")
            return self.checks
        self.add(OK, "config", f"{self.config} is a valid {self.side} configuration")
        store = self.hub_store if self.side == "hub" else self.edge_store
        for what, check in (
            ("files", self.files),
            ("certificates", self.certificates),
            ("broker", self.broker),
            ("store", store),
            *((("backup", self.backup),) if self.side == "hub" else ()),
            ("disk", self.disk),
            ("clock", self.clock),
            ("port", self.port),
        ):
            try:
                check(settings)
            except Exception as exc:  # one check that cannot run is a failure to report, not a traceback
                self.add(FAIL, what, f"could not be checked: {type(exc).__name__}: {exc}")
        return self.checks

    # -- files and certificates ---------------------------------------------------------------------
    def files(self, settings: Any) -> None:
        missing = []
        named = 0
        for key, value in _file_keys(settings):
            named += 1
            path = Path(value)
            if not (path.is_dir() if key.endswith("keys_dir") else path.is_file()):
                missing.append(f"{key} = {value}")
            else:
                try:
                    with path.open("rb") if path.is_file() else _nothing():
                        pass
                except OSError as exc:
                    missing.append(f"{key} = {value} ({exc.strerror})")
        if missing:
            self.add(FAIL, "files", "missing or unreadable: " + "; ".join(missing))
        else:
            self.add(OK, "files", f"the {named} files the configuration names are there and readable")

    def certificates(self, settings: Any) -> None:
        sections = [("http", settings.http), ("mqtt", settings.mqtt)]
        if self.side == "edge":
            sections.append(("hub", settings.hub))
        seen: set[str] = set()
        for name, section in sections:
            ca = _load_cert(getattr(section, "ca_file", None))
            cert_file, key_file = getattr(section, "cert_file", None), getattr(section, "key_file", None)
            if cert_file and cert_file not in seen and Path(cert_file).is_file():
                seen.add(cert_file)
                self.certificate(name, cert_file, key_file, ca)
            ca_file = getattr(section, "ca_file", None)
            if ca_file and ca_file not in seen and ca is not None:
                seen.add(ca_file)
                self.expiry(f"{name}.ca_file", ca.not_valid_after_utc, ca_file)
        crl_file = getattr(settings.http, "crl_file", None)
        if crl_file and Path(crl_file).is_file():
            try:
                crl = x509.load_pem_x509_crl(Path(crl_file).read_bytes())
            except ValueError as exc:
                self.add(FAIL, "http.crl_file", f"{crl_file} is not a PEM CRL: {exc}")
            else:
                if crl.next_update_utc is not None:
                    self.expiry("http.crl_file", crl.next_update_utc, crl_file, "re-sign it: cordon pki crl")

    def certificate(
        self, section: str, cert_file: str, key_file: str | None, ca: x509.Certificate | None
    ) -> None:
        what = f"{section}.cert_file"
        cert = _load_cert(cert_file)
        if cert is None:
            self.add(FAIL, what, f"{cert_file} is not a PEM certificate")
            return
        if key_file and Path(key_file).is_file():
            try:
                key = serialization.load_pem_private_key(Path(key_file).read_bytes(), None)
            except (ValueError, TypeError) as exc:
                self.add(FAIL, f"{section}.key_file", f"{key_file} cannot be read as a private key: {exc}")
                return
            if key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ) != cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ):
                self.add(FAIL, what, f"{cert_file} and {key_file} are not a pair")
                return
        if ca is not None:
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, Exception) as exc:  # InvalidSignature is not a ValueError
                self.add(
                    FAIL, what, f"{cert_file} was not issued by the configured CA ({type(exc).__name__})"
                )
                return
        cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        self.expiry(what, cert.not_valid_after_utc, f"{cert_file} (CN {cn[0].value if cn else '?'})")

    def expiry(
        self, what: str, end: dt.datetime, name: str, todo: str = "renew it: cordon pki issue"
    ) -> None:
        days = (end.timestamp() - self.now) / 86400
        if days < 0:
            self.add(FAIL, what, f"{name} expired {-days:.0f} days ago ({end:%Y-%m-%d}): {todo}")
        elif days < EXPIRY_WARN_DAYS:
            self.add(WARN, what, f"{name} ends in {days:.0f} days ({end:%Y-%m-%d}): {todo}")
        else:
            self.add(OK, what, f"{name} valid until {end:%Y-%m-%d} ({days:.0f} days)")

    # -- the broker ---------------------------------------------------------------------------------
    def broker(self, settings: Any) -> None:
        from runtime.config import SettingsError
        from runtime.tls import mqtt_endpoint

        m = settings.mqtt
        try:
            host, port, context = mqtt_endpoint(m.url, m.ca_file, m.cert_file, m.key_file)
        except (SettingsError, OSError, ssl.SSLError) as exc:
            self.add(FAIL, "broker", f"cannot build the connection to {m.url}: {exc}")
            return
        username = m.username or getattr(settings, "checkpoint", None)
        code = _mqtt_connect(host, port, context, username, m.password, self.timeout_s)
        if code == 0:
            self.add(OK, "broker", f"{m.url} took an MQTT connection as {username or 'its certificate'}")
        else:
            self.add(FAIL, "broker", f"{m.url}: {code}")

    # -- the store ----------------------------------------------------------------------------------
    def hub_store(self, settings: Any) -> None:
        if settings.store.backend == "postgresql":
            self.hub_store_postgresql(settings)
            return
        from central.record.sqlite.schema import MIGRATIONS
        from central.record.sqlite.store import RECORD_MIGRATION

        db = settings.data_path / "hub.db"
        if not db.exists():
            self.add(WARN, "store", f"no {db} yet: the hub makes it at its first start")
            return
        known = {*range(1, len(MIGRATIONS) + 1), RECORD_MIGRATION}
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=self.timeout_s)
            try:
                applied = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
                alerts = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.Error as exc:
            self.add(FAIL, "store", f"{db} cannot be read: {exc}")
            return
        unknown = sorted(applied - known)
        if unknown:
            self.add(
                FAIL,
                "store",
                f"{db} has schema migrations {unknown} that this release does not know: it was upgraded by a "
                "newer release; run that one, or restore the backup taken before the upgrade",
            )
        elif known - applied:
            self.add(
                WARN,
                "store",
                f"{db} will be migrated at the next start ({sorted(known - applied)}): back up first",
            )
        else:
            self.add(OK, "store", f"{db} readable, schema current, {alerts} alerts")

    def hub_store_postgresql(self, settings: Any) -> None:
        """The database ``store.dsn`` names: reachable with the password the hub would use, its schema
        as this release knows it (the same three verdicts as hub.db's)."""
        import psycopg

        from central.record.postgresql.connections import describe, with_password
        from central.record.postgresql.schema import MIGRATIONS
        from runtime.config import SettingsError

        where = f"PostgreSQL {describe(settings.store.dsn)}"
        try:
            password = settings.store.database_password()
        except SettingsError as exc:
            self.add(FAIL, "store", f"the database password cannot be read: {exc}")
            return
        try:
            with psycopg.connect(
                with_password(settings.store.dsn, password), connect_timeout=max(1, int(self.timeout_s))
            ) as conn:
                conn.read_only = True
                table = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
                if table is None or table[0] is None:
                    self.add(
                        WARN,
                        "store",
                        f"{where}: reachable, empty: the hub makes its tables at its first start",
                    )
                    return
                applied = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
                alerts = conn.execute("SELECT count(*) FROM alerts").fetchone()[0] if applied else 0
        except psycopg.Error as exc:
            self.add(FAIL, "store", f"{where} cannot be reached or read: {str(exc).strip()}")
            return
        known = set(range(1, len(MIGRATIONS) + 1))
        unknown = sorted(applied - known)
        if unknown:
            self.add(
                FAIL,
                "store",
                f"{where} has schema migrations {unknown} that this release does not know: a newer release "
                "migrated it; run that one, or restore the backup taken before the upgrade",
            )
        elif known - applied:
            self.add(
                WARN,
                "store",
                f"{where} will be migrated at the next start ({sorted(known - applied)}): back up first",
            )
        else:
            self.add(OK, "store", f"{where} reachable, schema current, {alerts} alerts")

    # -- backups ------------------------------------------------------------------------------------
    def backup(self, settings: Any) -> None:
        """The backups' retention against the record's, and on PostgreSQL the WAL archiving a base backup
        needs to be restored past its own end."""
        record_days = settings.record.retention_days
        kept_days = settings.backup.retention_days or record_days
        keep = settings.backup.keep
        if settings.store.backend != "postgresql":
            self.add(
                OK,
                "backup",
                f"{settings.backup.dir}: {keep} backups kept, each pruned so no read in it is older than "
                f"{kept_days} days (backup.retention_days), the law's limit must allow that",
            )
            return
        # A base backup cannot be pruned: the one of night n holds day n - record_days + 1, and the rotation
        # deletes it once that day leaves the window, so kept_days - record_days nightly ones stay.
        room = kept_days - record_days
        if room < 1:
            self.add(
                FAIL,
                "backup",
                f"cordon backup refuses every base backup: backup.retention_days ({kept_days}) must be above "
                f"record.retention_days ({record_days}) by the nightly backups kept (a base backup cannot be "
                f"pruned). With the law's limit L: backup.retention_days = L, record.retention_days = L - "
                f"{keep} (docs/deploy.md)",
            )
        elif room < keep:
            self.add(
                WARN,
                "backup",
                f"only {room} nightly base backups can be kept, not backup.keep = {keep}: a base backup goes "
                f"once its oldest day is {kept_days} days old (backup.retention_days), and the record keeps "
                f"{record_days} (record.retention_days)",
            )
        else:
            self.add(
                OK,
                "backup",
                f"{keep} nightly base backups kept; none holds a read older than {kept_days} days "
                "(backup.retention_days), the law's limit must allow that",
            )
        self.wal_archiving(settings)

    def wal_archiving(self, settings: Any) -> None:
        """The cluster's archiving as the hub's database reports it, and the archive folder as this box sees it."""
        import psycopg

        from central.record.postgresql.connections import describe, with_password
        from runtime.config import SettingsError

        folder = settings.backup.wal_archive
        where = f"PostgreSQL {describe(settings.store.dsn)}"
        try:
            password = settings.store.database_password()
            with psycopg.connect(
                with_password(settings.store.dsn, password),
                connect_timeout=max(1, int(self.timeout_s)),
                autocommit=True,
            ) as conn:
                row = conn.execute(
                    "SELECT current_setting('wal_level'), current_setting('archive_mode'),"
                    " current_setting('archive_command'), current_setting('archive_library'),"
                    " archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal,"
                    " last_failed_time, now(), pg_is_in_recovery(),"
                    " CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END,"
                    " (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')"
                    " FROM pg_stat_archiver"
                ).fetchone()
        except SettingsError as exc:
            self.add(FAIL, "archiving", f"the database password cannot be read: {exc}")
            return
        except psycopg.errors.InsufficientPrivilege as exc:
            self.add(
                WARN,
                "archiving",
                f"{where}: the hub's role may not read the archiving settings ({str(exc).strip()}): "
                "GRANT pg_read_all_settings, pg_read_all_stats TO it",
            )
            return
        except psycopg.Error as exc:
            self.add(FAIL, "archiving", f"{where} cannot be asked about its archiving: {str(exc).strip()}")
            return
        assert row is not None
        (wal_level, mode, command, library, archived, last_wal, last_at, failed, failed_wal, failed_at,
         now, in_recovery, current_wal, segment_size) = row  # fmt: skip
        if wal_level == "minimal":
            self.add(
                FAIL,
                "archiving",
                f"{where}: wal_level = minimal: neither WAL archiving nor pg_basebackup works; set "
                "wal_level = replica (a restart)",
            )
            return
        if mode == "off":
            if folder:
                self.add(
                    FAIL,
                    "archiving",
                    f"{where}: archive_mode is off, so no WAL reaches backup.wal_archive ({folder}): a restore "
                    "ends at its base backup's end and loses everything committed since. ALTER SYSTEM SET "
                    "archive_mode = on and an archive_command, then restart PostgreSQL (docs/deploy.md)",
                )
            else:
                self.add(
                    WARN,
                    "archiving",
                    f"{where}: no WAL archiving (archive_mode off, backup.wal_archive unset): a restore ends "
                    "at the last base backup's end (docs/deploy.md, WAL archiving)",
                )
            return
        if not (command or library):
            self.add(
                FAIL,
                "archiving",
                f"{where}: archive_mode is {mode} but archive_command is empty: nothing is archived and the "
                "WAL piles up in pg_wal until its disk is full",
            )
            return
        how = f"archive_command = {command!r}" if command else f"archive_library = {library!r}"
        if failed and failed_at is not None and (last_at is None or failed_at > last_at):
            self.add(
                FAIL,
                "archiving",
                f"{where}: WAL archiving is failing: {failed_wal} could not be archived at "
                f"{failed_at:%Y-%m-%d %H:%M:%S %Z} ({failed} failures, {archived} archived since the "
                f"statistics' reset); {how}: PostgreSQL's log says why. The WAL piles up in pg_wal meanwhile",
            )
            return
        if last_wal is None:
            self.add(
                WARN,
                "archiving",
                f"{where}: archiving is on ({how}) but no WAL has been archived yet: "
                "SELECT pg_switch_wal() sends the current file",
            )
        else:
            behind = _segments_between(last_wal, current_wal, int(segment_size)) if current_wal else 0
            age = (now - last_at).total_seconds()
            if behind > 2:
                self.add(
                    WARN,
                    "archiving",
                    f"{where}: archiving lags: {behind} full WAL files wait; the last, {last_wal}, was archived "
                    f"{_ago(age)} ago ({how})",
                )
            else:
                self.add(
                    OK,
                    "archiving",
                    f"{where}: WAL archived ({how}); the last, {last_wal}, {_ago(age)} ago, {archived} since "
                    "the statistics' reset",
                )
        if in_recovery:
            return
        if not folder:
            self.add(
                WARN,
                "backup.wal_archive",
                "not set: cordon restore cannot replay the archive, and the rotation never cleans it",
            )
            return
        path = Path(folder)
        if not path.is_dir():
            self.add(FAIL, "backup.wal_archive", f"{folder} is not a folder on this box")
        elif not os.access(path, os.W_OK | os.X_OK):
            self.add(
                FAIL,
                "backup.wal_archive",
                f"{folder} is not writable here: the rotation cannot delete the WAL no backup needs "
                "(the cordon group must have write access)",
            )
        elif last_wal is not None and not (path / last_wal).exists():
            self.add(
                FAIL,
                "backup.wal_archive",
                f"PostgreSQL archived {last_wal}, but it is not in {folder}: its archive_command writes "
                "somewhere else than backup.wal_archive names",
            )
        else:
            self.add(OK, "backup.wal_archive", f"{folder} writable, holding the newest archived WAL")

    def edge_store(self, settings: Any) -> None:
        outbox = settings.data_path / "outbox.db"
        if not outbox.exists():
            self.add(WARN, "store", f"no {outbox} yet: the edge makes it at its first start")
            return
        try:
            conn = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True, timeout=self.timeout_s)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            self.add(FAIL, "store", f"{outbox} cannot be read: {exc}")
            return
        self.add(OK, "store", f"{outbox} readable")

    # -- disk -----------------------------------------------------------------------------------------
    def disk(self, settings: Any) -> None:
        data = settings.data_path
        where = data
        while not where.exists() and where != where.parent:
            where = where.parent
        free = shutil.disk_usage(where).free
        if self.side == "hub":
            days = sorted((data / "record").glob("reads-*.db"))
            per_day = max((p.stat().st_size for p in days), default=0)
            record_more = max(0, settings.record.retention_days - len(days)) * per_day
            quotas = {"evidence.max_bytes": settings.evidence.max_bytes, "record days to come": record_more}
            used = _size(data / "evidence")
        else:
            quotas = {
                "outbox.max_bytes": settings.outbox.max_bytes,
                "evidence.max_bytes": settings.evidence.max_bytes,
                "kits.max_photo_bytes": settings.kits.max_photo_bytes,
            }
            used = _size(data / "evidence") + _size(data / "kits")
        need = max(0, sum(quotas.values()) - used)
        text = (
            f"{_gib(free)} free at {where}; the quotas may still take {_gib(need)} ("
            + ", ".join(f"{k} {_gib(v)}" for k, v in quotas.items() if v)
            + ")"
        )
        if free < need:
            self.add(FAIL, "disk", text + ": lower the quotas or add disk")
        elif free < need * 1.2 + 1024**3:
            self.add(WARN, "disk", text + ": little to spare")
        else:
            self.add(OK, "disk", text)

    # -- the clock ------------------------------------------------------------------------------------
    def clock(self, settings: Any) -> None:
        if self.side == "hub":
            synced = _kernel_clock_synchronized()
            if synced is None:
                self.add(WARN, "clock", "cannot tell whether this clock is synchronized (adjtimex failed)")
            elif synced:
                self.add(OK, "clock", "the kernel says this clock is synchronized (NTP)")
            else:
                self.add(
                    WARN,
                    "clock",
                    "the kernel says this clock is not synchronized: the hub is the ring's time, keep it on NTP",
                )
            return
        url = settings.hub.url
        if not url:
            self.add(WARN, "clock", "no hub.url: the clock cannot be compared with the hub's")
            return
        try:
            offset = _hub_offset(url.rstrip("/") + "/api/v1/health", settings.hub, self.timeout_s)
        except OSError as exc:
            self.add(FAIL, "clock", f"the hub ({url}) did not answer: {exc}")
            return
        text = f"this clock is {offset:+.1f} s from the hub's"
        level = FAIL if abs(offset) > CLOCK_FAIL_S else WARN if abs(offset) > CLOCK_WARN_S else OK
        self.add(level, "clock", text + ("" if level == OK else ": fix the time sync (chrony) of this box"))

    # -- the port -------------------------------------------------------------------------------------
    def port(self, settings: Any) -> None:
        http = settings.http
        host = "127.0.0.1" if http.host in ("0.0.0.0", "", "::") else http.host
        scheme = "https" if http.cert_file else "http"
        url = f"{scheme}://{host}:{http.port}/api/v1/health"
        context = None
        if scheme == "https":
            # Only whether the service answers is asked here; its certificate was checked above.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            client = settings.mqtt  # its client certificate, for a hub that asks edges for theirs
            if client.cert_file and client.key_file and Path(client.key_file).is_file():
                context.load_cert_chain(client.cert_file, client.key_file)
        try:
            health = msgspec.json.decode(_health_body(url, self.timeout_s, context))
        except (OSError, msgspec.DecodeError) as exc:
            if _port_free(http.host, http.port):
                self.add(
                    WARN,
                    "port",
                    f"nothing answers on {http.host}:{http.port}: cordon-{self.side} is not running",
                )
            else:
                self.add(
                    FAIL, "port", f"{http.host}:{http.port} is taken, but not by a Cordon {self.side} ({exc})"
                )
            return
        if health.get("status") == "ok":
            self.add(OK, "port", f"cordon-{self.side} answers on {http.host}:{http.port}: ok")
        else:
            self.add(
                WARN,
                "port",
                f"cordon-{self.side} on {http.port} is degraded: " + "; ".join(health.get("reasons", [])),
            )


def _segments_between(older: str, newer: str, segment_size: int) -> int:
    """Whole WAL files after ``older`` and before ``newer`` (names as pg_walfile_name gives them)."""
    per_id = 0x100000000 // segment_size

    def number(name: str) -> int:
        return int(name[8:16], 16) * per_id + int(name[16:24], 16)

    try:  # a timeline's history file (00000002.history) is archived too: no position to compare
        return max(0, number(newer) - number(older[:24]) - 1)
    except ValueError:
        return 0


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _nothing() -> Any:
    import contextlib

    return contextlib.nullcontext()


def _file_keys(settings: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every ``*_file`` (and ``keys_dir``) the settings name, with its dotted key."""
    for field in msgspec.structs.fields(type(settings)):
        value = getattr(settings, field.name)
        key = f"{prefix}{field.encode_name}"
        if isinstance(value, msgspec.Struct):
            yield from _file_keys(value, key + ".")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, msgspec.Struct):
                    yield from _file_keys(item, f"{key}[{i}].")
                elif isinstance(item, str) and field.name.endswith("_files"):
                    yield f"{key}[{i}]", item
        elif isinstance(value, str) and value and (field.name.endswith("_file") or field.name == "keys_dir"):
            yield key, value


def _load_cert(path: str | None) -> x509.Certificate | None:
    if not path or not Path(path).is_file():
        return None
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except ValueError:
        return None


def _size(folder: Path) -> int:
    if not folder.exists():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _gib(n: float) -> str:
    return f"{n / 1024**3:.1f} GiB"


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host or "0.0.0.0", port))
        except OSError as exc:
            return exc.errno != errno.EADDRINUSE
    return True


def _mqtt_connect(
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    username: str | None,
    password: str | None,
    timeout: float,
) -> int | str:
    """0 when the broker accepted an MQTT connection, else what went wrong in words."""
    import os

    import paho.mqtt.client as mqtt

    done = threading.Event()
    result: list[int | str] = ["no answer in time"]
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"cordon-doctor-{os.getpid()}", protocol=mqtt.MQTTv311
    )
    if context is not None:
        client.tls_set_context(context)
    if username:
        client.username_pw_set(username, password)

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        result[0] = 0 if not reason.is_failure else f"the broker refused the connection: {reason}"
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        return f"cannot reach {host}:{port}: {exc}"
    client.loop_start()
    try:
        if not done.wait(timeout):
            return f"{host}:{port} gave no MQTT answer in {timeout:.0f} s (TLS refused? the log of the broker says)"
        return result[0]
    finally:
        client.disconnect()
        client.loop_stop()


def _health_body(url: str, timeout: float, context: ssl.SSLContext | None) -> bytes:
    """The body of a health route: a hub answers 503 while degraded, with the same body as its 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            raise
        with exc:
            return exc.read()


def _hub_offset(url: str, hub: Any, timeout: float) -> float:
    """This clock minus the hub's, from the Date header of its health route (midpoint of the request)."""
    context = None
    if url.startswith("https"):
        context = ssl.create_default_context(cafile=hub.ca_file or None)
        if hub.cert_file and hub.key_file:
            context.load_cert_chain(hub.cert_file, hub.key_file)
    # Date has whole seconds: wait for the start of a second so the rounding costs at most the round trip.
    time.sleep(1 - time.time() % 1)
    sent = time.time()
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            got = time.time()
            date = resp.headers.get("Date")
    except urllib.error.HTTPError as exc:  # a degraded hub (503) still tells its time
        if exc.code != 503:
            raise
        got = time.time()
        date = exc.headers.get("Date")
        exc.close()
    if not date:
        raise OSError("the hub's answer has no Date header")
    hub_time = email.utils.parsedate_to_datetime(date).timestamp() + 0.5
    return (sent + got) / 2 - hub_time


class _Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint), ("rest", ctypes.c_long * 40)]


def _kernel_clock_synchronized() -> bool | None:
    """adjtimex(2): False when the kernel marks the clock unsynchronized (TIME_ERROR), None if unknown."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        state = libc.adjtimex(ctypes.byref(_Timex()))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != 5  # TIME_ERROR: the clock is not synchronized
