"""``cordon backup`` and ``cordon restore``: thin over :mod:`central.record.backups`."""

from __future__ import annotations

import json
from pathlib import Path

from central.record import backups
from central.record.sqlite.store import HubStore
from central.settings import HubSettings, load_settings

from . import version
from .audit_cli import verify


def _settings(config: str | None) -> HubSettings:
    return load_settings(config) if config else HubSettings()


def backup(config: str | None, to: str | None, keep: int | None) -> dict[str, object]:
    """Back up the hub whose configuration is ``config`` (running or not); one JSON-able summary."""
    settings = _settings(config)
    db = settings.data_path / "hub.db"
    if not db.is_file():
        raise backups.BackupError(f"no hub database at {db} (data_dir of {config or 'the defaults'})")
    store = HubStore(
        db,
        utc_offset=settings.record.utc_offset,
        attached_max=settings.record.attached_max,
        busy_timeout_s=settings.store.busy_timeout_s,
    )
    taken = backups.take(
        store,
        Path(to or settings.backup.dir),
        settings.record,
        keep=keep or settings.backup.keep,
        version=version(),
    )
    m = taken.manifest
    return {
        "backup": str(taken.folder),
        "files": len(m["files"]),
        "bytes": sum(f["bytes"] for f in m["files"].values()),
        "counts": m["counts"],
        "audit_head": m["audit_head"],
        "writer_paused_ms": m["writer_paused_ms"],
        "rotation": taken.rotation,
    }


def restore(folder: str, config: str | None, data: str | None) -> tuple[bool, dict[str, object]]:
    """Restore a backup into an empty data folder and verify its audit chain against the recorded head."""
    target = Path(data) if data else _settings(config).data_path
    done = backups.restore(Path(folder), target)
    head_id, head_hash = done.audit_head.split(":", 1)
    ok, line = verify(target / "hub.db", (int(head_id), head_hash))
    return ok, {**done.as_dict(), "audit": json.loads(line)}
