"""``cordon backup`` and ``cordon restore``: thin over :mod:`central.record.backups`."""

from __future__ import annotations

import json
from pathlib import Path

from central.record import backups
from central.record.factory import open_store
from central.record.postgresql.store import PgStores
from central.record.sqlite.store import HubStore
from central.settings import HubSettings, load_settings

from . import version
from .audit_cli import verify


def _settings(config: str | None) -> HubSettings:
    return load_settings(config) if config else HubSettings()


def backup(config: str | None, to: str | None, keep: int | None) -> dict[str, object]:
    """Back up the hub whose configuration is ``config`` (running or not); one JSON-able summary."""
    settings = _settings(config)
    store = open_store(settings)  # not started: a backup reads the files or the database on its own
    if isinstance(store, HubStore) and not store.path.is_file():
        raise backups.BackupError(f"no hub database at {store.path} (data_dir of {config or 'the defaults'})")
    assert isinstance(store, HubStore | PgStores)
    taken = backups.take(
        store,
        Path(to or settings.backup.dir),
        settings.record,
        keep=keep or settings.backup.keep,
        version=version(),
        backup=settings.backup,
    )
    m = taken.manifest
    summary = {
        "backup": str(taken.folder),
        "store": m["store"],
        "files": len(m["files"]),
        "bytes": sum(f["bytes"] for f in m["files"].values()),
        "counts": m["counts"],
        "audit_head": m["audit_head"],
        "writer_paused_ms": m["writer_paused_ms"],
        "rotation": taken.rotation,
    }
    if m["store"] == "postgresql":  # the manifest lists PostgreSQL's manifest, which lists the rest
        summary["bytes"] = m["postgresql"]["bytes"]
        summary["postgresql"] = m["postgresql"]
    return summary


def restore(
    folder: str,
    config: str | None,
    data: str | None,
    wal_archive: str | None = None,
    until: str | None = None,
) -> tuple[bool, dict[str, object]]:
    """Restore a backup into an empty data folder; a SQLite one's audit chain is then verified against the
    recorded head, a PostgreSQL one's once its server is started on the folder."""
    settings = _settings(config)
    if backups.store_of(Path(folder)) == "postgresql":
        if not data:
            raise backups.BackupError(
                "a PostgreSQL backup becomes a new PostgreSQL data folder: say which with --data DIR"
            )
        archive = wal_archive or settings.backup.wal_archive
        done = backups.restore(
            Path(folder),
            Path(data),
            wal_archive=Path(archive) if archive else None,
            until=until,
            pg_bin=settings.backup.pg_bin,
        )
        return True, {
            **done.as_dict(),
            "next": "start PostgreSQL on the folder (owned by its server's user), then check the audit "
            "chain against audit_head",
        }
    target = Path(data) if data else settings.data_path
    done = backups.restore(
        Path(folder), target, wal_archive=Path(wal_archive) if wal_archive else None, until=until
    )
    head_id, head_hash = done.audit_head.split(":", 1)
    ok, line = verify(target / "hub.db", (int(head_id), head_hash))
    return ok, {**done.as_dict(), "audit": json.loads(line)}
