"""Base backups of the hub's PostgreSQL cluster, their restore and the WAL archive's cleanup: PostgreSQL's
own programs (``pg_basebackup``, ``pg_verifybackup``, ``pg_archivecleanup``), driven by ``cordon backup`` and
``cordon restore`` through ``central.record.backups`` (the folder layout, the manifest and the rotation).

**The backup** (``base_backup``) is ``pg_basebackup`` in plain format into ``<backup>/pgdata``: a copy of
the whole cluster's data folder, its WAL from the backup's start to its end streamed beside it
(``--wal-method=stream``), so the copy can be started alone even when the WAL archive is lost, and a
``backup_manifest`` with every file's SHA-256, which ``pg_verifybackup`` checks file by file (and the WAL
with ``pg_waldump``) before a restore. ``--checkpoint=fast`` starts it at once rather than after a
spread checkpoint. Nothing is locked: the hubs go on committing while it copies, and the copy is made
consistent by replaying its WAL up to the backup's end point. The audit head and the counts are read
*before* it begins, so the backup holds at least them, and the audit records committed while it ran.

**Restore** (``restore_into``) copies ``pgdata`` into an empty folder and writes the recovery settings:
with the WAL archive, ``restore_command`` and ``recovery.signal`` (replay up to the backup's end, a time,
or all the archive holds); without it, the copy's own WAL takes it to the backup's end. Archiving is
turned off in the copy, so a restore drill never writes into the live server's archive (a later restore
would follow the drill's timeline).

**The WAL archive** is filled by the database server's ``archive_command`` (``deploy/postgresql/
archive-wal.sh``); ``clean_archive`` deletes the segments older than the oldest kept backup's start.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo

from central.people.audit import GENESIS
from central.record.backups import BackupError
from central.record.postgresql.audit import PgAuditStore
from central.record.postgresql.schema import DAY_COUNTS
from central.record.stores import BackupCut
from protocols.times import TimeError, parse_time

#: The folder of a backup holding the base backup (a PostgreSQL data folder).
PGDATA = "pgdata"
#: Where Debian keeps each major version's programs.
DEBIAN_BIN = "/usr/lib/postgresql/{major}/bin"
_START_WAL = re.compile(r"^START WAL LOCATION: (\S+) \(file ([0-9A-F]{24})\)$", re.M)
_WAL_NAME = re.compile(r"^[0-9A-F]{24}(\.partial|\.[0-9A-F]{8}\.backup)?$")


def tool(name: str, pg_bin: str = "", major: int | None = None) -> str:
    """The path of one of PostgreSQL's programs: in ``pg_bin`` when named, else Debian's folder for the
    server's major version, else the PATH."""
    if pg_bin:
        path = Path(pg_bin) / name
        if not path.is_file():
            raise BackupError(f"{path} is missing (backup.pg_bin)")
        return str(path)
    if major is not None:
        path = Path(DEBIAN_BIN.format(major=major)) / name
        if path.is_file():
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed: Debian's postgresql-{major or 15} package has it (or set backup.pg_bin)"
        )
    return found


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise BackupError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    return done.stdout


def _facts(conn: psycopg.Connection) -> dict[str, Any]:
    """What the manifest records of the database, read in one snapshot."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,):
            raise BackupError("the database holds no Cordon schema (start a hub on it first)")
        migrations = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        head = PgAuditStore.head(conn)
        reads, passages, oldest = conn.execute(
            "SELECT coalesce(sum(reads), 0), coalesce(sum(passages), 0), (SELECT min(day) FROM record_days) "
            f"FROM {DAY_COUNTS} c"
        ).fetchone()  # type: ignore[misc]
        (alerts,) = conn.execute("SELECT count(*) FROM alerts").fetchone()  # type: ignore[misc]
        major, version = conn.execute(
            "SELECT current_setting('server_version_num')::int / 10000, current_setting('server_version')"
        ).fetchone()  # type: ignore[misc]
    return {
        "migrations": migrations,
        "head": head,
        "reads": int(reads),
        "passages": int(passages),
        "alerts": int(alerts),
        "oldest_day": oldest,
        "major": int(major),
        "version": str(version),
    }


def _archiving(conn: psycopg.Connection) -> dict[str, Any]:
    row = conn.execute(
        "SELECT current_setting('archive_mode'), last_archived_wal, failed_count, last_failed_wal "
        "FROM pg_stat_archiver"
    ).fetchone()
    assert row is not None
    return {"mode": row[0], "last_archived_wal": row[1], "failed_count": row[2], "last_failed_wal": row[3]}


def _password_apart(dsn: str) -> tuple[str, dict[str, str] | None]:
    """The connection string without its password, and the environment that gives it to the program
    (so it is never on a command line, which every user of the box can read)."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    password = params.pop("password", None)
    conninfo = psycopg.conninfo.make_conninfo("", **params)  # type: ignore[arg-type]
    return conninfo, ({**os.environ, "PGPASSWORD": str(password)} if password else None)


def base_backup(dsn: str, dest: Path, *, pg_bin: str = "", hold_from: dt.date | None = None) -> BackupCut:
    """``pg_basebackup`` of the cluster holding ``dsn``'s database into ``dest/pgdata``.

    ``hold_from``: refuse (before copying anything) when the record holds a day before it; the rotation
    would delete such a backup at once, since a base backup cannot be pruned."""
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.Error as exc:
        raise BackupError(f"cannot connect to the hub's database: {exc}") from None
    try:
        facts = _facts(conn)
        oldest: dt.date | None = facts["oldest_day"]
        if hold_from is not None and oldest is not None and oldest < hold_from:
            raise BackupError(
                f"the record holds {oldest}, which leaves the backups' window before the next nightly run "
                f"(it must not be held before {hold_from}): a base backup cannot be pruned, so it would be "
                "deleted at once. Keeping N nightly backups needs backup.retention_days (the longest a read "
                "may be kept in a backup) N days above record.retention_days (docs/deploy.md)"
            )
        dest.mkdir(parents=True, exist_ok=True)
        conninfo, env = _password_apart(dsn)
        started = time.monotonic()
        _run(
            [
                tool("pg_basebackup", pg_bin, facts["major"]),
                f"--pgdata={dest / PGDATA}",
                f"--dbname={conninfo}",
                "--no-password",
                "--format=plain",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--manifest-checksums=SHA256",
                f"--label=cordon {dest.name}",
            ],
            "pg_basebackup (the role needs REPLICATION, and pg_hba.conf a `host replication` line for it)",
            env,
        )
        seconds = time.monotonic() - started
        archive = _archiving(conn)
        (after,) = conn.execute("SELECT min(day) FROM record_days").fetchone()  # type: ignore[misc]
    except psycopg.Error as exc:
        raise BackupError(f"the hub's database: {exc}") from None
    finally:
        conn.close()
    if after is not None and (oldest is None or after < oldest):
        oldest = after  # a read for an older day came while the backup ran: the backup may hold it
    label = (dest / PGDATA / "backup_label").read_text(encoding="utf-8")
    start = _START_WAL.search(label)
    if start is None:
        raise BackupError(f"{dest / PGDATA / 'backup_label'} names no start WAL file")
    manifest = json.loads((dest / PGDATA / "backup_manifest").read_text(encoding="utf-8"))
    head = facts["head"]
    return BackupCut(
        files=[f"{PGDATA}/backup_manifest"],
        reads=facts["reads"],
        passages=facts["passages"],
        alerts=facts["alerts"],
        audit_records=head[0] if head else 0,
        audit_head=f"{head[0]}:{head[1]}" if head else f"0:{GENESIS}",
        migrations=facts["migrations"],
        paused_s=0.0,
        store="postgresql",
        details={
            "server_version": facts["version"],
            "server_major": facts["major"],
            "counts_at": "start",
            "oldest_day": oldest.isoformat() if oldest else None,
            "start_wal_file": start.group(2),
            "wal_ranges": manifest["WAL-Ranges"],
            "seconds": round(seconds, 3),
            "bytes": sum(p.stat().st_size for p in (dest / PGDATA).rglob("*") if p.is_file()),
            "archive": archive,
        },
    )


def verify(pgdata: Path, pg_bin: str = "", major: int | None = None) -> str:
    """``pg_verifybackup``: every file against the backup's manifest, and the WAL it needs; its verdict."""
    return _run([tool("pg_verifybackup", pg_bin, major), str(pgdata)], "pg_verifybackup").strip()


def recovery_target(until: str | None) -> tuple[str, str]:
    """(what the restore replays to, the settings line that says it) for ``--until``: ``backup`` (the
    backup's end), ``latest`` or nothing (all of the archive), or a time (unix seconds or ISO 8601)."""
    if until in (None, "", "latest"):
        return "latest", ""
    if until == "backup":
        return "backup", "recovery_target = 'immediate'"
    try:
        at = parse_time(until)
    except TimeError as exc:
        raise BackupError(f"--until: {exc} (or backup, latest)") from None
    text = dt.datetime.fromtimestamp(at, dt.UTC).isoformat(sep=" ")
    return text, f"recovery_target_time = '{text}'"


def _conf_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def restore_into(
    pgdata: Path,
    data_dir: Path,
    *,
    wal_archive: Path | None = None,
    until: str | None = None,
    pg_bin: str = "",
    major: int | None = None,
) -> dict[str, Any]:
    """Check a base backup and make an empty folder a PostgreSQL data folder that starts from it."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty: restore into an empty data folder")
    target, line = recovery_target(until)
    if wal_archive is None and target not in ("latest", "backup"):
        raise BackupError("--until a time needs the WAL archive (backup.wal_archive or --wal-archive)")
    if wal_archive is not None and not wal_archive.is_dir():
        raise BackupError(f"the WAL archive {wal_archive} is not a folder")
    verdict = verify(pgdata, pg_bin, major)
    shutil.copytree(pgdata, data_dir, symlinks=True, dirs_exist_ok=True)
    data_dir.chmod(0o700)
    (data_dir / "backup_manifest").unlink()
    settings = [
        f"# cordon restore of {pgdata.parent.name}: the copy never archives into the live server's archive;",
        "# turn archive_mode on again once this is the live server, and take a new base backup then.",
        "archive_mode = 'off'",
    ]
    if wal_archive is not None:
        # A % in the archive's path is doubled: PostgreSQL would take it for one of its escapes (%f, %p).
        folder = shlex.quote(str(wal_archive.resolve()) + "/").replace("%", "%%")
        settings += [
            "restore_command = " + _conf_text("cp " + folder + '%f "%p"'),
            *([line] if line else []),
            "recovery_target_action = 'promote'",
        ]
        (data_dir / "recovery.signal").touch()
        target = "the backup's end" if target == "backup" else target
    else:
        target = "the backup's end"  # the copy's own WAL (streamed while the backup ran) ends there
    with (data_dir / "postgresql.auto.conf").open("a", encoding="utf-8") as f:
        f.write("\n" + "\n".join(settings) + "\n")
    return {
        "verified": verdict,
        "until": target,
        "wal_archive": str(wal_archive) if wal_archive else None,
        "archive_mode": "off",
    }


def clean_archive(archive: Path, oldest_needed: str, pg_bin: str = "", major: int | None = None) -> int:
    """Delete the archive's WAL from before ``oldest_needed`` (the oldest kept backup's start WAL file);
    returns how many files went."""
    if not archive.is_dir():
        raise BackupError(f"the WAL archive {archive} (backup.wal_archive) is not a folder")

    def count() -> int:
        return sum(1 for p in archive.iterdir() if _WAL_NAME.match(p.name))

    before = count()
    _run([tool("pg_archivecleanup", pg_bin, major), str(archive), oldest_needed], "pg_archivecleanup")
    return before - count()
