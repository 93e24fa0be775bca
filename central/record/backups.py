"""Backups of the hub's record: one consistent cut, a manifest, rotation within the retention, restore.

A backup is a folder ``hub-YYYYMMDDTHHMMSSZ`` under the backup directory (``backup.dir``)::

    hub.db  record/reads-YYYY-MM-DD.db ...   the cut (HubStore.backup: hub.db and every day file together)
    manifest.json                            each file's size and SHA-256, the counts, the writer's pause
    audit-head.txt                           ID:HASH of the audit chain's last record in the cut

It is written as ``<name>.partial`` and renamed when complete, so a folder without the suffix is whole.
The CA's key is never in it (it stays on the CA's machine, see docs/deploy.md), nor the TLS keys and
configuration of /etc/cordon, which are backed up apart.

**Rotation** (after every backup): the newest ``backup.keep`` backups stay, the others are deleted; in
those that stay, the retention is applied as the live hub applies it, one day ahead (the nightly
timer runs again only then): a day file the live record will have purged before the next run is
deleted from every backup now, and so are hub.db's hit rows past ``record.hits_retention_days``. So a
backup never holds a read longer than ``record.retention_days`` allows. The audit trail is never pruned,
so the recorded head stays provable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from central.record.days import day_of, parse_offset
from central.record.sqlite.store import HubStore
from central.settings import RecordSettings
from protocols.errors import CordonError

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


def take(
    store: HubStore,
    directory: Path,
    record: RecordSettings,
    *,
    keep: int,
    now: float | None = None,
    version: str = "",
) -> Taken:
    """Back the store up into a new folder of ``directory``, then rotate ``directory``."""
    now = time.time() if now is None else now
    directory.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    final = directory / f"{PREFIX}{stamp}"
    if final.exists():
        raise BackupError(f"{final} exists already (one backup a second)")
    partial = final.with_name(final.name + PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)
    cut = store.backup(partial)
    manifest = {
        "created_at": now,
        "cordon": version,
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
    }
    (partial / AUDIT_HEAD).write_text(cut.audit_head + "\n", encoding="utf-8")
    _write_manifest(partial, manifest)
    partial.rename(final)
    rotation = rotate(directory, record, keep=keep, now=now)
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


def rotate(directory: Path, record: RecordSettings, *, keep: int, now: float) -> dict[str, Any]:
    """Keep the newest ``keep`` backups, and apply the retention to them as of ``now`` + one day."""
    if keep < 1:
        raise BackupError("keep at least one backup")
    for stale in directory.glob(f"{PREFIX}*{PARTIAL}"):  # a backup that died half-way
        shutil.rmtree(stale, ignore_errors=True)
    held = backups(directory)
    deleted = [p.name for p in held[:-keep]]
    for p in held[:-keep]:
        shutil.rmtree(p)
    ahead = now + HORIZON_S
    days_before = day_of(ahead, parse_offset(record.utc_offset)) - dt.timedelta(
        days=record.retention_days - 1
    )
    hits_before = ahead - record.hits_retention_days * 86400
    pruned: dict[str, Any] = {}
    for folder in held[-keep:]:
        done = HubStore.prune_backup(folder, days_before, hits_before)
        if done["removed"] or done["hit_rows"]:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            files = [f for f in manifest["files"] if f not in done["removed"]]
            manifest["files"] = _describe(folder, files)
            manifest["pruned"] = [*manifest.get("pruned", []), {"at": now, **done}]
            _write_manifest(folder, manifest)
            pruned[folder.name] = done
    return {
        "kept": [p.name for p in held[-keep:]],
        "deleted": deleted,
        "days_before": days_before.isoformat(),
        "pruned": pruned,
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def restore(folder: Path, data_dir: Path) -> Restored:
    """Check a backup and copy it into an empty data folder; the caller then verifies the audit chain
    against ``audit_head`` (``cordon restore`` does)."""
    manifest = check(folder)
    try:
        HubStore.restore_backup(folder, list(manifest["files"]), data_dir)
    except FileExistsError as exc:
        raise BackupError(str(exc)) from None
    return Restored(str(data_dir), str(folder), len(manifest["files"]), manifest["audit_head"])
