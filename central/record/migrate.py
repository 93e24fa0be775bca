"""A SQLite hub's data moved into an empty PostgreSQL store (``cordon store migrate``): every table of
hub.db, every day file's reads and passages, the cached evidence; resumable, and checked at the end.

The SQLite side (``central.record.sqlite.source``) reads a stopped hub's data folder part by part, in key
order, and refuses while another process (a running hub) has hub.db open; the PostgreSQL side
(``central.record.postgresql.load``) writes each chunk as the PostgreSQL stores would have written those
rows, with the part's progress in the same transaction, and refuses a store that holds anything but this
migration. Run again after an interruption (Ctrl-C, a kill, a lost connection), it goes on after the last
chunk that committed; run again after it finished, it copies nothing and checks again.

The check: every part has as many rows on PostgreSQL as in SQLite (and the record's per-day counts agree),
and the audit chain verifies on PostgreSQL with SQLite's head as its head (``Summary.ok``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a migration runs: the command line starts without psycopg
    from central.record.postgresql.load import PgLoader
    from central.record.sqlite.source import SqliteSource

#: Rows copied in one transaction (``cordon store migrate --batch``).
BATCH = 20_000


@dataclass(frozen=True, slots=True)
class Step:
    """Where a migration is, after each chunk that committed (for a progress bar)."""

    part: str
    copied: int
    """Rows of this part on PostgreSQL now."""
    total: int
    """Rows of this part in SQLite."""
    index: int
    """This part's place among all of them, from 1."""
    parts: int


@dataclass(frozen=True, slots=True)
class Counted:
    part: str
    sqlite: int
    postgresql: int


@dataclass
class Summary:
    """What a run did and found; ``ok`` when every count agrees and the audit chain verifies."""

    source: str
    target: str
    copied: int = 0
    """Rows this run copied (0 when an earlier run had done it all)."""
    seconds: float = 0.0
    counts: list[Counted] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "target": self.target,
            "copied": self.copied,
            "seconds": round(self.seconds, 1),
            "parts": len(self.counts),
            "rows": sum(c.sqlite for c in self.counts),
            "audit": self.audit,
            "problems": self.problems,
            "counts": {c.part: [c.sqlite, c.postgresql] for c in self.counts},
        }


def migrate(
    data_dir: Path,
    dsn: str,
    *,
    utc_offset: str = "+08:00",
    batch: int = BATCH,
    progress: Callable[[Step], None] | None = None,
) -> Summary:
    """Copy what the stopped SQLite hub at ``data_dir`` holds into the PostgreSQL store ``dsn`` (empty, or
    holding an unfinished migration of the same folder), then check it."""
    from central.record.postgresql.connections import describe
    from central.record.postgresql.load import PgLoader
    from central.record.sqlite.source import SqliteSource

    started = time.monotonic()
    source = SqliteSource(data_dir)
    source.open()
    try:
        loader = PgLoader(dsn, utc_offset=utc_offset)
        loader.open()
        try:
            summary = Summary(source=str(Path(data_dir).resolve()), target=describe(dsn))
            _copy(source, loader, summary, batch, progress or (lambda step: None))
            _check(source, loader, summary)
        finally:
            loader.close()
    finally:
        source.close()
    summary.seconds = time.monotonic() - started
    return summary


#: The target of a part with no rows (only its progress is written).
_NOTHING: Any = ("", (), lambda row: row)


def _copy(
    source: SqliteSource, loader: PgLoader, summary: Summary, batch: int, progress: Callable[[Step], None]
) -> None:
    from central.record.postgresql.load import Progress

    parts = source.parts()
    for part in parts:  # every table of hub.db known, before anything is copied
        if part.day is None:
            loader.converter(part.table, None, source.columns(part))
    done = loader.claim(summary.source)
    for index, part in enumerate(parts, start=1):
        state = done.get(part.name, Progress())
        total = source.count(part)
        if state.done:
            progress(Step(part.name, state.copied, total, index, len(parts)))
            continue
        copied, after = state.copied, state.after
        target = None
        while True:
            rows = source.rows(part, after, batch)
            last = len(rows) < batch
            if rows and target is None:
                target = loader.converter(part.table, part.day, source.columns(part))
            loader.copy(part.name, summary.source, target or _NOTHING, rows, day=part.day, done=last)
            copied += len(rows)
            summary.copied += len(rows)
            if rows:
                after = rows[-1][0]
            progress(Step(part.name, copied, max(total, copied), index, len(parts)))
            if last:
                break
    loader.finish()


def _check(source: SqliteSource, loader: PgLoader, summary: Summary) -> None:
    kept = loader.record_days()
    for part in source.parts():
        counted = Counted(part.name, source.count(part), loader.count(part.table, part.day))
        summary.counts.append(counted)
        if counted.sqlite != counted.postgresql:
            summary.problems.append(
                f"{part.name}: {counted.sqlite} rows in SQLite, {counted.postgresql} on PostgreSQL"
            )
        if part.day is not None and counted.postgresql:
            held = kept.get(part.day, (0, 0))[0 if part.table == "reads" else 1]
            if held != counted.postgresql:
                summary.problems.append(
                    f"{part.name}: the record's count says {held}, the table holds {counted.postgresql}"
                )
    head = source.audit_head()
    verdict = loader.verify_audit(head)
    summary.audit = {
        "records": verdict.records,
        "head": f"{verdict.head_id}:{verdict.head_hash}",
        "sqlite_head": f"{head[0]}:{head[1]}" if head else None,
        "ok": verdict.ok,
    }
    if not verdict.ok:
        before = source.verify_audit()
        summary.problems.append(
            f"the audit chain on PostgreSQL: {verdict.problem}"
            + ("" if before.ok else f" (in SQLite already: {before.problem})")
        )
