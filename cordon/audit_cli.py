"""``cordon audit verify|head``: check the hub's hash-chained audit trail where it is kept: hub.db (``--data``,
``--db``, or ``--config`` on SQLite) or the PostgreSQL store (``--config`` with ``[store] backend =
"postgresql"``), through the store's ``AuditStore``."""

from __future__ import annotations

import json
from pathlib import Path

from central.people.audit import GENESIS
from central.record.factory import open_store as open_hub_store
from central.record.sqlite.store import HubStore
from central.record.stores import HubStores
from protocols.errors import CordonError

from .store_cli import hub_settings


class AuditCliError(CordonError, RuntimeError):
    """Something to report in one line."""


def database_path(db: str | None, data: str | None) -> Path:
    path = Path(db) if db else Path(data or "./data/hub") / "hub.db"
    if not path.is_file():
        raise AuditCliError(f"no hub database at {path}")
    return path


def open_store(config: str | None, data: str | None, db: str | None) -> HubStores:
    """The store holding the trail, not started on SQLite (only read; hub.db must exist), started on
    PostgreSQL (connected, its schema checked)."""
    if db or not config:
        return HubStore(database_path(db, data))
    settings = hub_settings(config, data)
    if settings.store.backend == "sqlite":
        database_path(None, str(settings.data_path))
        return open_hub_store(settings)
    store = open_hub_store(settings)
    store.start()
    return store


def parse_head(text: str | None) -> tuple[int, str] | None:
    if not text:
        return None
    try:
        id_text, digest = text.split(":", 1)
        return int(id_text), digest.strip().lower()
    except ValueError:
        raise AuditCliError("--head is ID:HASH, as `cordon audit head` prints it") from None


def verify_store(store: HubStores, head: tuple[int, str] | None) -> tuple[bool, str]:
    """Walk the store's chain; return (ok, one JSON line). The store is stopped after."""
    try:
        verdict = store.read(lambda tx: store.audit.verify(tx, head))
    finally:
        store.stop()
    return verdict.ok, json.dumps(
        {
            "ok": verdict.ok,
            "records": verdict.records,
            "head_id": verdict.head_id,
            "head_hash": verdict.head_hash,
            "problem": verdict.problem,
        },
        ensure_ascii=False,
    )


def verify(path: Path, head: tuple[int, str] | None) -> tuple[bool, str]:
    """``verify_store`` on a hub.db file (a restored backup's)."""
    return verify_store(HubStore(path), head)


def head(store: HubStores) -> str:
    """The last record's ``ID:HASH`` (the store is stopped after)."""
    try:
        last = store.read(store.audit.head)
    finally:
        store.stop()
    return f"{last[0]}:{last[1]}" if last else f"0:{GENESIS}"
