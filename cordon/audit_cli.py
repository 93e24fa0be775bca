"""``cordon audit verify|head``: check the hub's hash-chained audit trail where it lies on disk."""

from __future__ import annotations

import json
from pathlib import Path

from central.people.audit import GENESIS
from central.record.sqlite import audit
from protocols.errors import CordonError
from runtime.sqlwriter import open_database


class AuditCliError(CordonError, RuntimeError):
    """Something to report in one line."""


def database_path(db: str | None, data: str | None) -> Path:
    path = Path(db) if db else Path(data or "./data/hub") / "hub.db"
    if not path.is_file():
        raise AuditCliError(f"no hub database at {path}")
    return path


def parse_head(text: str | None) -> tuple[int, str] | None:
    if not text:
        return None
    try:
        id_text, digest = text.split(":", 1)
        return int(id_text), digest.strip().lower()
    except ValueError:
        raise AuditCliError("--head is ID:HASH, as `cordon audit head` prints it") from None


def verify(path: Path, head: tuple[int, str] | None) -> tuple[bool, str]:
    """Return (ok, one JSON line)."""
    db = open_database(path, synchronous="NORMAL")
    try:
        verdict = audit.verify(db, head)
    finally:
        db.conn.close()
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


def head(path: Path) -> str:
    db = open_database(path, synchronous="NORMAL")
    try:
        last = audit.head(db)
    finally:
        db.conn.close()
    return f"{last[0]}:{last[1]}" if last else f"0:{GENESIS}"
