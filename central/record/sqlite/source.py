"""A stopped hub's SQLite store, read part by part for ``cordon store migrate`` (``central.record.migrate``).

The parts are hub.db's tables, each day file's ``reads`` and ``passages``, and the cached evidence
pictures (``<data_dir>/evidence``); each is read in key order (the rowid, the primary key of a ``WITHOUT
ROWID`` table, a picture's checkpoint, epoch, seq and kind), a chunk at a time after the last key a
previous chunk ended on, so a migration that was interrupted goes on from there.

**Alone on the files.** hub.db is opened in SQLite's exclusive locking mode and an exclusive
transaction is begun on it: SQLite refuses that while any other process holds the file open (a running
hub's writer always does), so a hub that is still running is told apart from a stopped one, and while
the migration runs no hub can start on hub.db and change it. Nothing is written to the files (on
closing, SQLite moves what the write-ahead log holds into hub.db, as any last connection does).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from central.people.audit import Verdict
from central.record.evidencefiles import KINDS as EVIDENCE_KINDS
from central.record.sqlite import audit
from central.record.sqlite.dayfiles import (
    ATTRIBUTES_COLUMN,
    PASSAGE_COLUMNS,
    READ_COLUMNS,
    SqliteReadStore,
    file_name,
)
from central.record.sqlite.schema import MIGRATIONS
from central.record.sqlite.store import RECORD_MIGRATION
from protocols.errors import CordonError

#: How long opening hub.db waits for a lock another process holds before it calls hub.db in use.
LOCK_WAIT_S = 2.0

#: What a day file's reads are read as: the columns of its ``reads`` table, the plate's text in place of
#: its ``plate_id``, and the attributes (NULL in a file made before that column). Its passages are read as
#: its ``passages`` table holds them (``dayfiles.PASSAGE_COLUMNS``).
DAY_READ_COLUMNS = tuple("plate" if c == "plate_id" else c for c in READ_COLUMNS) + (ATTRIBUTES_COLUMN,)


#: The cached evidence pictures (``<data_dir>/evidence``), as rows.
EVIDENCE_COLUMNS = ("checkpoint", "epoch", "seq", "kind", "data", "kept_at")


class SourceError(CordonError, RuntimeError):
    """The SQLite hub cannot be read for a migration; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Part:
    """One piece of the hub's data: a table of hub.db, or one day's reads or passages."""

    name: str
    """``alerts``, ``reads 2026-11-28``: how the progress names it."""
    table: str
    """The table's name (in hub.db or the day file; the same on PostgreSQL)."""
    day: dt.date | None = None


class SqliteSource:
    """A stopped hub's data folder (hub.db, ``record/``); ``open()`` takes hub.db for itself."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / "hub.db"
        self.record = SqliteReadStore(self.data_dir / "record")
        self._hub: sqlite3.Connection | None = None
        self._days: dict[dt.date, sqlite3.Connection] = {}
        self._evidence: list[tuple[list[Any], Path]] | None = None

    # -- life ---------------------------------------------------------------------------------------
    def open(self) -> None:
        """Take hub.db (refused while another process has it open) and check its schema is this release's."""
        if not self.data_dir.is_dir():
            raise SourceError(f"no hub data folder at {self.data_dir}")
        if not self.path.is_file():
            raise SourceError(f"no hub database at {self.path} (is {self.data_dir} the hub's data_dir?)")
        conn = sqlite3.connect(
            f"file:{self.path}?mode=rw", uri=True, isolation_level=None, timeout=LOCK_WAIT_S
        )
        try:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            conn.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise SourceError(
                    f"{self.path} is in use by another process: stop the hub (systemctl stop cordon-hub) "
                    "and run cordon store migrate again"
                ) from None
            raise SourceError(f"{self.path} cannot be read: {exc}") from None
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise SourceError(f"{self.path} cannot be read: {exc}") from None
        self._hub = conn
        try:
            self._check_schema()
        except BaseException:
            self.close()
            raise

    def _check_schema(self) -> None:
        known = {*range(1, len(MIGRATIONS) + 1), RECORD_MIGRATION}
        try:
            done = {v for (v,) in self.hub.execute("SELECT version FROM schema_migrations")}
        except sqlite3.OperationalError:
            done = set()
        if done - known:
            raise SourceError(
                f"{self.path} was written by a newer release of Cordon (migrations "
                f"{sorted(done - known)}): migrate it with that release"
            )
        if known - done:
            raise SourceError(
                f"{self.path} is from an older release (migrations {sorted(known - done)} not applied): start "
                "the hub of this release on it once, stop it, then run cordon store migrate"
            )

    def close(self) -> None:
        for conn in self._days.values():
            conn.close()
        self._days.clear()
        if self._hub is not None:
            self._hub.close()
            self._hub = None

    @property
    def hub(self) -> sqlite3.Connection:
        if self._hub is None:
            raise RuntimeError("open() the source first")
        return self._hub

    def _day(self, day: dt.date) -> sqlite3.Connection:
        conn = self._days.get(day)
        if conn is None:
            path = self.record.root / file_name(day)
            try:
                conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=LOCK_WAIT_S)
                conn.execute("PRAGMA query_only=ON")
            except sqlite3.OperationalError as exc:
                raise SourceError(f"{path} cannot be read: {exc}") from None
            self._days[day] = conn
        return conn

    # -- what there is --------------------------------------------------------------------------------
    def tables(self) -> list[str]:
        """hub.db's tables holding data (not its migrations' record nor SQLite's own)."""
        return [
            name
            for (name,) in self.hub.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' "
                "AND name <> 'schema_migrations' ORDER BY name"
            )
        ]

    def days(self) -> list[dt.date]:
        return self.record.days()

    def parts(self) -> list[Part]:
        """Every part: hub.db's tables, each day's reads and passages (oldest day first), the evidence."""
        out = [Part(t, t) for t in self.tables()]
        for day in self.days():
            out += [Part(f"{t} {day.isoformat()}", t, day) for t in ("reads", "passages")]
        return [*out, Part("evidence", "evidence")] if self.evidence() else out

    def evidence(self) -> list[tuple[list[Any], Path]]:
        """The cached pictures (``<checkpoint>/<epoch>-<seq>-<kind>.jpg``) by key, each with its file."""
        if self._evidence is None:
            found = []
            for path in (self.data_dir / "evidence").glob("*/*.jpg"):
                epoch, seq, kind = (path.stem.split("-") + ["", "", ""])[:3]
                if epoch.isdigit() and seq.isdigit() and kind in EVIDENCE_KINDS:
                    found.append(([path.parent.name, int(epoch), int(seq), kind], path))
            self._evidence = sorted(found, key=lambda item: item[0])
        return self._evidence

    def columns(self, part: Part) -> tuple[str, ...]:
        """The names of a part's columns, in the order ``rows`` gives them (after the key)."""
        if part.day is not None:
            return DAY_READ_COLUMNS if part.table == "reads" else PASSAGE_COLUMNS
        if part.table == "evidence":
            return EVIDENCE_COLUMNS
        return tuple(row[1] for row in self.hub.execute(f"PRAGMA table_info({_ident(part.table)})"))

    def _key(self, part: Part) -> list[str]:
        """The columns a hub.db table is read in the order of: its rowid, or a WITHOUT ROWID table's key."""
        (sql,) = self.hub.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (part.table,)
        ).fetchone()
        if "WITHOUT ROWID" not in " ".join(sql.upper().split()):
            return ["rowid"]
        pk = sorted((row[5], row[1]) for row in self.hub.execute(f"PRAGMA table_info({_ident(part.table)})"))
        return [_ident(name) for n, name in pk if n > 0]

    def count(self, part: Part) -> int:
        if part.table == "evidence":
            return len(self.evidence())
        with self._reading(part):
            conn = self.hub if part.day is None else self._day(part.day)
            return int(conn.execute(f"SELECT count(*) FROM {_ident(part.table)}").fetchone()[0])

    @contextmanager
    def _reading(self, part: Part) -> Iterator[None]:
        """A file that cannot be read (damaged, gone) said in one line naming it."""
        try:
            yield
        except (sqlite3.DatabaseError, OSError) as exc:
            where = self.path if part.day is None else self.record.root / file_name(part.day)
            if part.table == "evidence":
                where = self.data_dir / "evidence"
            raise SourceError(f"{where} cannot be read ({part.name}): {exc}") from None

    def rows(self, part: Part, after: Any, limit: int) -> list[tuple[Any, ...]]:
        """Up to ``limit`` rows after the key ``after`` (None: from the first), in key order; each row is its
        key (an int, or a list for a composite key) followed by the part's ``columns``."""
        with self._reading(part):
            return self._rows(part, after, limit)

    def _rows(self, part: Part, after: Any, limit: int) -> list[tuple[Any, ...]]:
        if part.day is not None:
            conn = self._day(part.day)
            if part.table == "reads":
                columns = ", ".join("p.plate" if c == "plate" else f"r.{c}" for c in DAY_READ_COLUMNS[:-1])
                present = {row[1] for row in conn.execute("PRAGMA table_info(reads)")}
                attrs = f"r.{ATTRIBUTES_COLUMN}" if ATTRIBUTES_COLUMN in present else "NULL"
                sql = (
                    f"SELECT r.id, {columns}, {attrs} FROM reads r JOIN plates p ON p.plate_id = r.plate_id "
                    "WHERE r.id > ? ORDER BY r.id LIMIT ?"
                )
            else:
                sql = (
                    f"SELECT id, {', '.join(PASSAGE_COLUMNS)} FROM passages WHERE id > ? ORDER BY id LIMIT ?"
                )
            return conn.execute(sql, (-1 if after is None else after, limit)).fetchall()
        if part.table == "evidence":
            later = [(k, path) for k, path in self.evidence() if after is None or k > after][:limit]
            return [(k, *k, path.read_bytes(), path.stat().st_mtime) for k, path in later]
        key = self._key(part)
        table = _ident(part.table)
        if key == ["rowid"]:
            return self.hub.execute(
                f"SELECT rowid, * FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (-1 if after is None else after, limit),
            ).fetchall()
        order = ", ".join(key)
        where = "" if after is None else f"WHERE ({order}) > ({', '.join('?' * len(key))}) "
        rows = self.hub.execute(
            f"SELECT {order}, * FROM {table} {where}ORDER BY {order} LIMIT ?",
            (*(after or ()), limit),
        ).fetchall()
        return [(list(row[: len(key)]), *row[len(key) :]) for row in rows]

    # -- the audit trail ----------------------------------------------------------------------------
    def audit_head(self) -> tuple[int, str] | None:
        return audit.head(_Db(self.hub))  # type: ignore[arg-type]

    def verify_audit(self) -> Verdict:
        return audit.verify(_Db(self.hub))  # type: ignore[arg-type]


class _Db:
    """The ``.conn`` the SQLite audit functions take, over the source's own connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


def _ident(name: str) -> str:
    """A table or column name SQLite itself listed, quoted as an identifier."""
    return '"' + name.replace('"', '""') + '"'
