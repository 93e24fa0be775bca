"""Backups of the hub's record: one consistent cut, a manifest, rotation within the retention, restore.

A backup is a folder ``hub-YYYYMMDDTHHMMSSZ`` under the backup directory (``backup.dir``)::

    hub.db  record/reads-YYYY-MM-DD.db ...   on SQLite: the cut (HubStore.backup: hub.db and every day file)
    pgdata/                                  on PostgreSQL: a base backup (central.record.postgresql.backup)
    manifest.json                            each file's size and SHA-256, the counts, the writer's pause
    audit-head.txt                           ID:HASH of an audit record the backup holds (see below)

It is written as ``<name>.partial`` and renamed when complete, so a folder without the suffix is whole.
The CA's key is never in it (it stays on the CA's machine, see docs/deploy.md), nor the TLS keys and
configuration of /etc/cordon, which are backed up apart. On SQLite the counts and the head are the cut's;
on PostgreSQL they were read just before the base backup began, so the backup holds at least them (the
manifest lists ``pgdata/backup_manifest``, PostgreSQL's own manifest of every file's SHA-256, which
``pg_verifybackup`` checks before a restore).

**Rotation** (after every backup): the newest ``backup.keep`` backups stay, the others are deleted. In
those that stay, the retention is applied as the live hub applies it, one day ahead (the nightly timer
runs again only then), with ``backup.retention_days`` (the longest a read may be kept in a backup; by
default ``record.retention_days``). A SQLite backup is pruned: a day file the window will have left
before the next run is deleted from every backup now, and so are hub.db's hit rows past
``record.hits_retention_days``. A PostgreSQL base backup cannot be pruned, so it is deleted whole once
the oldest day it holds (recorded at the backup) leaves the window; the WAL archive then loses the WAL
that only deleted backups needed. So a backup never holds a read longer than ``backup.retention_days``
allows. The audit trail is never pruned, so the recorded head stays provable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from central.record.days import day_of, parse_offset
from central.record.sqlite.store import HubStore
from central.settings import BackupSettings, RecordSettings
from protocols.errors import CordonError

if TYPE_CHECKING:
    from central.record.postgresql.store import PgStores

PREFIX = "hub-"
PARTIAL = ".partial"
MANIFEST = "manifest.json"
AUDIT_HEAD = "audit-head.txt"
#: How far ahead rotation applies the retention: the nightly timer's period.
HORIZON_S = 86400.0


class BackupError(CordonError, RuntimeError):
    """A backup or restore that cannot be done; the message says why."""


@dataclass(frozen=True, slots=True)
class Taken:
    folder: Path
    manifest: dict[str, Any]
    rotation: dict[str, Any]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _describe(folder: Path, files: list[str]) -> dict[str, dict[str, Any]]:
    return {
        name: {"bytes": (folder / name).stat().st_size, "sha256": _sha256(folder / name)} for name in files
    }


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(folder / MANIFEST)


def window_start(now: float, record: RecordSettings, backup: BackupSettings) -> dt.date:
    """The oldest record day a backup may still hold at the next nightly run: the retention one day ahead."""
    days = backup.retention_days or record.retention_days
    return day_of(now + HORIZON_S, parse_offset(record.utc_offset)) - dt.timedelta(days=days - 1)


def take(
    store: HubStore | PgStores,
    directory: Path,
    record: RecordSettings,
    *,
    keep: int,
    now: float | None = None,
    version: str = "",
    backup: BackupSettings | None = None,
) -> Taken:
    """Back the store up into a new folder of ``directory``, then rotate ``directory``."""
    now = time.time() if now is None else now
    backup = backup or BackupSettings()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    final = directory / f"{PREFIX}{stamp}"
    if final.exists():
        raise BackupError(f"{final} exists already (one backup a second)")
    partial = final.with_name(final.name + PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)
    if isinstance(store, HubStore):
        cut = store.backup(partial)
    else:  # a base backup cannot be pruned: refused if the rotation would delete it at once
        cut = store.backup(partial, pg_bin=backup.pg_bin, hold_from=window_start(now, record, backup))
    manifest = {
        "created_at": now,
        "cordon": version,
        "store": cut.store,
        "record_utc_offset": record.utc_offset,
        "migrations": cut.migrations,
        "counts": {
            "reads": cut.reads,
            "passages": cut.passages,
            "alerts": cut.alerts,
            "audit_records": cut.audit_records,
        },
        "audit_head": cut.audit_head,
        "writer_paused_ms": round(cut.paused_s * 1000, 3),
        "files": _describe(partial, cut.files),
        "pruned": [],
        **({cut.store: cut.details} if cut.details else {}),
    }
    (partial / AUDIT_HEAD).write_text(cut.audit_head + "\n", encoding="utf-8")
    _write_manifest(partial, manifest)
    partial.rename(final)
    rotation = rotate(directory, record, keep=keep, now=now, backup=backup)
    if final.name in rotation["expired"]:
        raise BackupError(
            f"{final.name} was deleted by the rotation: it holds a day past the backups' window by the "
            f"next run (oldest day allowed {rotation['days_before']}; backup.retention_days)"
        )
    return Taken(final, json.loads((final / MANIFEST).read_text(encoding="utf-8")), rotation)


def backups(directory: Path) -> list[Path]:
    """Complete backups in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX) and not p.name.endswith(PARTIAL)
    )


def _manifest_of(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def store_of(folder: Path) -> str:
    """Which store a backup holds, as its manifest says (``sqlite`` before the manifest said it)."""
    return str(_manifest_of(folder).get("store", "sqlite"))


def rotate(
    directory: Path,
    record: RecordSettings,
    *,
    keep: int,
    now: float,
    backup: BackupSettings | None = None,
) -> dict[str, Any]:
    """Keep the newest ``keep`` backups, and apply the retention to them as of ``now`` + one day."""
    if keep < 1:
        raise BackupError("keep at least one backup")
    backup = backup or BackupSettings()
    for stale in directory.glob(f"{PREFIX}*{PARTIAL}"):  # a backup that died half-way
        shutil.rmtree(stale, ignore_errors=True)
    held = backups(directory)
    deleted = [p.name for p in held[:-keep]]
    for p in held[:-keep]:
        shutil.rmtree(p)
    days_before = window_start(now, record, backup)
    hits_before = now + HORIZON_S - record.hits_retention_days * 86400
    pruned: dict[str, Any] = {}
    expired: list[str] = []
    base_backups: list[dict[str, Any]] = []  # the PostgreSQL ones kept, oldest first
    for folder in held[-keep:]:
        manifest = _manifest_of(folder)
        if manifest.get("store") == "postgresql":
            oldest = manifest["postgresql"]["oldest_day"]
            if oldest is not None and dt.date.fromisoformat(oldest) < days_before:
                shutil.rmtree(folder)  # a read in it would outlive the window: the whole backup goes
                expired.append(folder.name)
            else:
                base_backups.append(manifest["postgresql"])
            continue
        done = HubStore.prune_backup(folder, days_before, hits_before)
        if done["removed"] or done["hit_rows"]:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            files = [f for f in manifest["files"] if f not in done["removed"]]
            manifest["files"] = _describe(folder, files)
            manifest["pruned"] = [*manifest.get("pruned", []), {"at": now, **done}]
            _write_manifest(folder, manifest)
            pruned[folder.name] = done
    wal: dict[str, Any] | None = None
    if backup.wal_archive and base_backups:
        from central.record.postgresql.backup import clean_archive

        oldest_needed = base_backups[0]["start_wal_file"]
        removed = clean_archive(
            Path(backup.wal_archive), oldest_needed, backup.pg_bin, base_backups[0].get("server_major")
        )
        wal = {"archive": backup.wal_archive, "kept_from": oldest_needed, "removed": removed}
    return {
        "kept": [p.name for p in held[-keep:] if p.name not in expired],
        "deleted": deleted,
        "expired": expired,
        "days_before": days_before.isoformat(),
        "pruned": pruned,
        "wal_archive": wal,
    }


def check(folder: Path) -> dict[str, Any]:
    """The backup's manifest, after checking every file it lists against its size and SHA-256."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{folder} has no {MANIFEST}: not a complete backup") from None
    for name, want in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise BackupError(f"{folder}: {name} is missing")
        if path.stat().st_size != want["bytes"] or _sha256(path) != want["sha256"]:
            raise BackupError(f"{folder}: {name} does not match the manifest (damaged or changed)")
    return manifest


@dataclass(frozen=True, slots=True)
class Restored:
    data_dir: str
    backup: str
    files: int
    audit_head: str
    store: str = "sqlite"
    recovery: dict[str, Any] | None = None
    """PostgreSQL: what the restored folder replays to and from where (``restore_into``)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def restore(
    folder: Path,
    data_dir: Path,
    *,
    wal_archive: Path | None = None,
    until: str | None = None,
    pg_bin: str = "",
) -> Restored:
    """Check a backup and copy it into an empty data folder; the caller then verifies the audit chain
    against ``audit_head`` (``cordon restore`` does on SQLite; a PostgreSQL folder must be started first).

    A PostgreSQL backup becomes a PostgreSQL data folder that replays the WAL archive (``wal_archive``)
    up to ``until`` when it starts (``central.record.postgresql.backup.restore_into``)."""
    manifest = check(folder)
    head = manifest["audit_head"]
    if manifest.get("store") == "postgresql":
        from central.record.postgresql.backup import PGDATA, restore_into

        recovery = restore_into(
            folder / PGDATA,
            data_dir,
            wal_archive=wal_archive,
            until=until,
            pg_bin=pg_bin,
            major=manifest["postgresql"].get("server_major"),
        )
        return Restored(str(data_dir), str(folder), len(manifest["files"]), head, "postgresql", recovery)
    if wal_archive is not None or until is not None:
        raise BackupError(f"{folder} is a SQLite backup: the WAL archive and --until are PostgreSQL's")
    try:
        HubStore.restore_backup(folder, list(manifest["files"]), data_dir)
    except FileExistsError as exc:
        raise BackupError(str(exc)) from None
    return Restored(str(data_dir), str(folder), len(manifest["files"]), head)
