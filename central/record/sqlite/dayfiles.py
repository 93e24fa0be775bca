"""The record of plain reads and passages, one SQLite file per day, so a day can be purged whole.

A ring of ~60 checkpoints makes ~3 million reads a day and the hub keeps 30 days. In one table,
expiring a day is a DELETE of millions of rows that holds the single writer for minutes, and every
edge waits for its acknowledgements meanwhile. Here each day (by the read's ``captured_at``, a
passage's ``first_seen``, in the configured UTC offset) has its own file
``<data_dir>/record/reads-YYYY-MM-DD.db``; purging a day detaches and renames it in the writer (a
few milliseconds) and unlinks it off the writer thread.

Layout of a day file: ``plates`` holds each distinct plate of the day once (with the plate reversed,
both indexed), ``reads`` refers to it by ``plate_id``. An exact search looks the plate up and reads
the day's rows by ``(plate_id, captured_at)``. A partial search (``鲁A*23?5``: ``*`` any run, ``?``
one character) is matched with GLOB against the day's distinct plates, not its reads, narrowed by an
index range on the pattern's literal head (``plate``) or literal tail (``rplate``), whichever looks
more selective; then the reads of the matching plates are fetched by ``plate_id``. A pattern with
neither (``*23?5`` has only the tail ``5``) scans a larger share of the distinct plates: that cost is
measured by ``cordon bench store``, not hidden. Patterns are validated (length, alphabet) and always
bound as parameters (:mod:`central.record.platepattern`).

**Exactly once.** A read's identity ``(checkpoint, epoch, seq)`` is UNIQUE in its day file, next to
the content digest. The same event always maps to the same day (``captured_at`` is part of its
content), so an honest resend finds itself there and a reused identity with other content is told
apart and dead-lettered. The insert also consults the hub's ``events`` ledger, where edge hits
keep their identity, so a read cannot take a hit's identity. Not detected: an identity reused with
a ``captured_at`` on another day (it lands in another file); epochs exist to prevent that reuse.

**Crash safety.** The writer ATTACHes the day files it needs to the hub database's write
connection, so a group commit covers ``hub.db`` (alerts, edge hits, dead letters) and the day files
in one COMMIT, but in WAL mode SQLite commits each file atomically and not the set: a crash can
leave the day file committed and ``hub.db`` not, or the reverse. Neither loses or doubles anything,
because nothing is acknowledged to the edge before COMMIT returns (so the edge resends) and:

* day file committed, hub.db not: the resent read is found in its day file with the same digest;
  ingest treats it as a duplicate for counting, but runs matching and edge-hit reconciliation
  again (:attr:`Stored.seen_before`), and alerts are inserted idempotently by their derived
  ``alert_id``, so the lost alert is made now, once;
* hub.db committed, day file not: the resent read is inserted as new, matching runs, and its alerts
  already exist (``INSERT OR IGNORE`` by ``alert_id``), so none is raised twice; an undispatched
  one is sent by the dispatcher's resume at start-up.

**Connections.** SQLite attaches at most 10 files to one connection; the writer keeps the
``attached_max`` most recently used days attached (LRU) and attaches another between two
transactions when a job needs it (:class:`runtime.sqlwriter.NeedsPreparation`). Readers open the
day files they need with short-lived connections of their own (``mode=rw``: a reader never
creates a file). A new day's file is made with its tables under a hidden name and renamed into place,
so a reader never finds a day file without its tables.

:class:`SqliteReadStore` implements :class:`central.record.reads.ReadStore`, the interface a PostgreSQL
store (declarative partitions by day, pg_trgm for partial plates) can implement too.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec
import sqlite_utils

from central.record.days import day_of, digest, parse_offset, read_attributes
from central.record.platepattern import Pattern, candidate_query, clean_plate, parse_pattern
from central.record.reads import (
    MAX_LIMIT,
    Companions,
    RecordCounts,
    SearchResult,
    Stored,
    StoredRead,
    rank_companions,
)
from central.record.tx import RunAgain
from protocols.messages import Passage, PlateRead
from runtime.sqlwriter import NeedsPreparation, SqlWriter


class _NeedsDayFile(NeedsPreparation, RunAgain):
    """The writer attaches the day file between transactions and runs the job again (the store's
    ``RunAgain`` to the code above the seam)."""


log = logging.getLogger(__name__)

FILE_PREFIX = "reads-"
FILE_SUFFIX = ".db"
PURGED_SUFFIX = ".purged"

_encoder = msgspec.json.Encoder()

#: Tables of a day file; the bulk loader creates these, fills them, then creates INDEXES.
TABLES: list[str] = [
    """CREATE TABLE IF NOT EXISTS plates (
        plate_id INTEGER PRIMARY KEY, plate TEXT NOT NULL, rplate TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS reads (
        id INTEGER PRIMARY KEY, checkpoint TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
        digest BLOB NOT NULL, plate_id INTEGER NOT NULL, camera_id TEXT NOT NULL, camera_event_id TEXT,
        captured_at REAL NOT NULL, edge_sent_at REAL, received_at REAL NOT NULL, plate_raw TEXT NOT NULL,
        plate_valid INTEGER NOT NULL, plate_problem TEXT, no_plate INTEGER NOT NULL, colour TEXT,
        vehicle_type TEXT, confidence REAL, lane INTEGER, direction TEXT, attributes TEXT)""",
    """CREATE TABLE IF NOT EXISTS passages (
        id INTEGER PRIMARY KEY, checkpoint TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
        digest BLOB NOT NULL, plate TEXT NOT NULL, no_plate INTEGER NOT NULL, colour TEXT, vehicle_type TEXT,
        first_seen REAL NOT NULL, last_seen REAL NOT NULL, best_seq INTEGER NOT NULL, read_seqs TEXT NOT NULL,
        cameras TEXT NOT NULL, received_at REAL NOT NULL)""",
]
INDEXES: list[str] = [
    "CREATE UNIQUE INDEX IF NOT EXISTS plates_plate ON plates (plate)",
    "CREATE INDEX IF NOT EXISTS plates_rplate ON plates (rplate)",
    "CREATE UNIQUE INDEX IF NOT EXISTS reads_identity ON reads (checkpoint, epoch, seq)",
    "CREATE INDEX IF NOT EXISTS reads_plate ON reads (plate_id, captured_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS passages_identity ON passages (checkpoint, epoch, seq)",
    "CREATE INDEX IF NOT EXISTS passages_plate ON passages (plate, first_seen)",
    # Companion vehicles: who passed this checkpoint within a few minutes of that moment.
    "CREATE INDEX IF NOT EXISTS passages_checkpoint ON passages (checkpoint, first_seen)",
]
READ_COLUMNS = (
    "checkpoint",
    "epoch",
    "seq",
    "digest",
    "plate_id",
    "camera_id",
    "camera_event_id",
    "captured_at",
    "edge_sent_at",
    "received_at",
    "plate_raw",
    "plate_valid",
    "plate_problem",
    "no_plate",
    "colour",
    "vehicle_type",
    "confidence",
    "lane",
    "direction",
)
PASSAGE_COLUMNS = (
    "checkpoint",
    "epoch",
    "seq",
    "digest",
    "plate",
    "no_plate",
    "colour",
    "vehicle_type",
    "first_seen",
    "last_seen",
    "best_seq",
    "read_seqs",
    "cameras",
    "received_at",
)
#: Added later (branch evidence): JSON of the read's optional attributes (``vehicle_colour``, ``vehicle_brand``,
#: ``has_evidence``), NULL when it has none. A day file made before it gets the column when first attached.
ATTRIBUTES_COLUMN = "attributes"


def file_name(day: dt.date) -> str:
    return f"{FILE_PREFIX}{day.isoformat()}{FILE_SUFFIX}"


_DAY_FILE = re.compile(rf"{FILE_PREFIX}(\d{{4}}-\d{{2}}-\d{{2}}){re.escape(FILE_SUFFIX)}")


def file_day(name: str) -> dt.date | None:
    """The day a day file's name says (``reads-2026-12-07.db``), None for any other name."""
    m = _DAY_FILE.fullmatch(name)
    return dt.date.fromisoformat(m.group(1)) if m else None


# -- SQLite day files ----------------------------------------------------------------------------

_attributes_decoder = msgspec.json.Decoder(dict[str, str | bool | None])

_SELECT_PASSAGE = (
    "SELECT checkpoint, epoch, seq, plate, colour, vehicle_type, first_seen, last_seen, best_seq "
    "FROM passages"
)


def _passage_row(description: object, row: tuple) -> dict[str, object]:  # type: ignore[type-arg]
    return dict(zip((c[0] for c in description), row, strict=True))  # type: ignore[attr-defined]


_SELECT_READ = (
    "SELECT r.checkpoint, r.epoch, r.seq, r.camera_id, r.captured_at, p.plate, r.plate_raw, "
    "r.plate_valid, r.no_plate, r.colour, r.vehicle_type, r.confidence, r.lane, r.direction, "
    "r.camera_event_id, r.received_at, {attrs} FROM {s}reads r JOIN {s}plates p ON p.plate_id = r.plate_id"
)


def _select_read(conn: sqlite3.Connection, s: str = "") -> str:
    """The read query for one day file (``s``: its schema with a dot, or empty for ``main``); a file from
    before the attributes column was added gives NULL in its place."""
    schema = s.rstrip(".") or "main"
    columns = {row[1] for row in conn.execute(f"PRAGMA {schema}.table_info(reads)")}
    attrs = f"r.{ATTRIBUTES_COLUMN}" if ATTRIBUTES_COLUMN in columns else "NULL"
    return _SELECT_READ.format(s=s, attrs=attrs)


def _row_to_read(row: tuple) -> StoredRead:  # type: ignore[type-arg]
    (
        cp,
        epoch,
        seq,
        cam,
        at,
        plate,
        raw,
        valid,
        no_plate,
        colour,
        vt,
        conf,
        lane,
        direction,
        ev,
        rec,
        attrs,
    ) = row
    extra = _attributes_decoder.decode(attrs) if attrs else {}
    return StoredRead(
        checkpoint=cp,
        epoch=epoch,
        seq=seq,
        camera_id=cam,
        captured_at=at,
        plate=plate,
        plate_raw=raw,
        plate_valid=bool(valid),
        no_plate=bool(no_plate),
        colour=colour,
        vehicle_type=vt,
        confidence=conf,
        lane=lane,
        direction=direction,
        camera_event_id=ev,
        received_at=rec,
        vehicle_colour=extra.get("vehicle_colour"),  # type: ignore[arg-type]
        vehicle_brand=extra.get("vehicle_brand"),  # type: ignore[arg-type]
        has_evidence=bool(extra.get("has_evidence")),
    )


def create_schema(conn: sqlite3.Connection, schema: str = "main", *, indexes: bool = True) -> None:
    """Create a day file's tables (and indexes) in ``schema`` (an attached alias or main)."""
    for statement in TABLES + (INDEXES if indexes else []):
        conn.execute(statement.replace("IF NOT EXISTS ", f"IF NOT EXISTS {schema}.", 1))


def _alias(day: dt.date) -> str:
    return f"d{day.strftime('%Y%m%d')}"  # made of digits only: safe as an identifier


class SqliteReadStore:
    """Day files under ``root``; see the module docstring."""

    def __init__(self, root: str | Path, *, utc_offset: str = "+08:00", attached_max: int = 4) -> None:
        self.root = Path(root)
        self.tz = parse_offset(utc_offset)
        if not 1 <= attached_max <= 8:
            raise ValueError("attached_max must be 1..8 (SQLite attaches at most 10 files, hub.db is one)")
        self.attached_max = attached_max
        self._attached: OrderedDict[dt.date, str] = OrderedDict()  # writer thread only
        self._writer: SqlWriter | None = None

    def bind(self, writer: SqlWriter) -> None:
        """The writer whose connection the day files are attached to (the hub store's)."""
        self._writer = writer

    # -- writer side (inside the hub store's writer) ----------------------------------------------
    def start(self, db: sqlite_utils.Database) -> None:
        """Writer set-up. No day file is made here: one exists only once it holds a read (the first
        read of a day costs one attach between two commits)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._attached.clear()

    def _schema(self, db: sqlite_utils.Database, day: dt.date) -> str:
        """The alias of an attached day; asks for attachment (outside the transaction) when needed."""
        alias = self._attached.get(day)
        if alias is not None:
            self._attached.move_to_end(day)
            return alias
        raise _NeedsDayFile(lambda d: self._attach(d, day), f"attach the record of {day}")

    def _existing_schema(self, db: sqlite_utils.Database, day: dt.date) -> str | None:
        """Like ``_schema``, but None for a day that has no file (nothing to look up there)."""
        if day not in self._attached and not (self.root / file_name(day)).exists():
            return None
        return self._schema(db, day)

    def _attach(self, db: sqlite_utils.Database, day: dt.date) -> None:
        if day in self._attached:
            return
        while len(self._attached) >= self.attached_max:
            old, alias = self._attached.popitem(last=False)
            db.conn.execute(f"DETACH DATABASE {alias}")
        alias = _alias(day)
        path = self.root / file_name(day)
        if not path.exists():
            self._create_day_file(path)
        db.conn.execute("ATTACH DATABASE ? AS " + alias, (str(path),))
        try:
            db.conn.execute(f"PRAGMA {alias}.journal_mode=WAL")
            db.conn.execute(f"PRAGMA {alias}.synchronous=FULL")
            db.conn.execute("BEGIN IMMEDIATE")
            create_schema(db.conn, alias)
            columns = {row[1] for row in db.conn.execute(f"PRAGMA {alias}.table_info(reads)")}
            if ATTRIBUTES_COLUMN not in columns:  # a day file from before the column
                db.conn.execute(f"ALTER TABLE {alias}.reads ADD COLUMN {ATTRIBUTES_COLUMN} TEXT")
            db.conn.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            db.conn.execute(f"DETACH DATABASE {alias}")
            raise
        self._attached[day] = alias

    @staticmethod
    def _create_day_file(path: Path) -> None:
        """Make a new day file with its tables under another name, then rename it into place: a reader
        (a search, a backup, another process) never opens a day file whose tables are not there yet."""
        temp = path.with_name(f".{path.name}.new")  # not a day file's name: days() never lists it
        temp.unlink(missing_ok=True)  # left by a crash while making it
        conn = sqlite3.connect(temp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            create_schema(conn)
            conn.execute("COMMIT")
        finally:
            conn.close()  # the last connection checkpoints and removes the WAL files
        os.replace(temp, path)

    def import_legacy(self, db: sqlite_utils.Database) -> int:
        """Move the rows of hub.db's old ``reads`` and ``passages`` tables into day files (writer set-up).

        Runs outside any transaction; each day commits on its own and inserts by identity with
        INSERT OR IGNORE, so a run a crash interrupted is simply run again. Returns rows moved.
        """
        tables = {n for (n,) in db.conn.execute("SELECT name FROM main.sqlite_master WHERE type='table'")}
        if "reads" not in tables and "passages" not in tables:
            return 0
        db.conn.create_function(
            "cordon_day", 1, lambda ts: day_of(ts, self.tz).isoformat(), deterministic=True
        )
        db.conn.create_function("cordon_reverse", 1, lambda s: s[::-1], deterministic=True)
        days: set[str] = set()
        if "reads" in tables:
            days |= {d for (d,) in db.conn.execute("SELECT DISTINCT cordon_day(captured_at) FROM main.reads")}
        if "passages" in tables:
            days |= {
                d for (d,) in db.conn.execute("SELECT DISTINCT cordon_day(first_seen) FROM main.passages")
            }
        moved = 0
        for text in sorted(days):
            day = dt.date.fromisoformat(text)
            self._attach(db, day)
            s = self._attached[day]
            db.conn.execute("BEGIN IMMEDIATE")
            if "reads" in tables:
                db.conn.execute(
                    f"INSERT OR IGNORE INTO {s}.plates (plate, rplate) SELECT DISTINCT plate, cordon_reverse(plate) "
                    "FROM main.reads WHERE cordon_day(captured_at) = ?",
                    (text,),
                )
                moved += db.conn.execute(
                    f"INSERT OR IGNORE INTO {s}.reads ({', '.join(READ_COLUMNS)}) SELECT r.checkpoint, r.epoch, r.seq, "
                    "coalesce(e.digest, x''), p.plate_id, r.camera_id, r.camera_event_id, r.captured_at, r.edge_sent_at, "
                    "r.received_at, r.plate_raw, r.plate_valid, r.plate_problem, r.no_plate, r.colour, r.vehicle_type, "
                    f"r.confidence, r.lane, r.direction FROM main.reads r JOIN {s}.plates p ON p.plate = r.plate "
                    "LEFT JOIN main.events e ON e.checkpoint = r.checkpoint AND e.epoch = r.epoch AND e.seq = r.seq "
                    "WHERE cordon_day(r.captured_at) = ? ORDER BY r.captured_at",
                    (text,),
                ).rowcount
            if "passages" in tables:
                moved += db.conn.execute(
                    f"INSERT OR IGNORE INTO {s}.passages (checkpoint, epoch, seq, digest, plate, no_plate, colour, "
                    "vehicle_type, first_seen, last_seen, best_seq, read_seqs, cameras, received_at) SELECT q.checkpoint, "
                    "q.epoch, q.seq, coalesce(e.digest, x''), q.plate, q.no_plate, q.colour, q.vehicle_type, q.first_seen, "
                    "q.last_seen, q.best_seq, q.read_seqs, q.cameras, q.received_at FROM main.passages q LEFT JOIN "
                    "main.events e ON e.checkpoint = q.checkpoint AND e.epoch = q.epoch AND e.seq = q.seq "
                    "WHERE cordon_day(q.first_seen) = ? ORDER BY q.first_seen",
                    (text,),
                ).rowcount
            db.conn.execute("COMMIT")
        if moved:
            log.info("moved %d reads and passages of %d day(s) from hub.db into day files", moved, len(days))
        return moved

    def detach_all(self, db: sqlite_utils.Database) -> None:
        while self._attached:
            _, alias = self._attached.popitem()
            db.conn.execute(f"DETACH DATABASE {alias}")

    def insert(
        self,
        db: sqlite_utils.Database,
        checkpoint: str,
        epoch: int,
        event: PlateRead | Passage,
        edge_sent_at: float,
        received_at: float,
    ) -> Stored:
        """Insert idempotently into the event's day file (inside a writer job)."""
        when = event.captured_at if isinstance(event, PlateRead) else event.first_seen
        s = self._schema(db, day_of(when, self.tz))
        d = digest(event)
        table, other = ("reads", "passages") if isinstance(event, PlateRead) else ("passages", "reads")
        found = db.conn.execute(
            f"SELECT digest FROM {s}.{table} WHERE checkpoint=? AND epoch=? AND seq=?",
            (checkpoint, epoch, event.seq),
        ).fetchone()
        taken = f"event {checkpoint}/{epoch}/{event.seq} was already stored with different content"
        if found is not None:
            return Stored(False, seen_before=True) if found[0] == d else Stored(False, conflict=taken)
        if (
            db.conn.execute(
                f"SELECT 1 FROM {s}.{other} WHERE checkpoint=? AND epoch=? AND seq=?",
                (checkpoint, epoch, event.seq),
            ).fetchone()
            or db.conn.execute(
                "SELECT 1 FROM main.events WHERE checkpoint=? AND epoch=? AND seq=?",
                (checkpoint, epoch, event.seq),
            ).fetchone()
        ):
            return Stored(False, conflict=taken)
        if isinstance(event, PlateRead):
            plate_id = self._plate_id(db, s, event.plate)
            columns = (*READ_COLUMNS, ATTRIBUTES_COLUMN)
            db.conn.execute(
                f"INSERT INTO {s}.reads ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                (
                    checkpoint,
                    epoch,
                    event.seq,
                    d,
                    plate_id,
                    event.camera_id,
                    event.camera_event_id,
                    event.captured_at,
                    edge_sent_at,
                    received_at,
                    event.plate_raw,
                    event.plate_valid,
                    event.plate_problem,
                    event.no_plate,
                    event.colour,
                    event.vehicle_type,
                    event.confidence,
                    event.lane,
                    event.direction,
                    read_attributes(event),
                ),
            )
        else:
            db.conn.execute(
                f"INSERT INTO {s}.passages ({', '.join(PASSAGE_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(PASSAGE_COLUMNS))})",
                (
                    checkpoint,
                    epoch,
                    event.seq,
                    d,
                    event.plate,
                    event.no_plate,
                    event.colour,
                    event.vehicle_type,
                    event.first_seen,
                    event.last_seen,
                    event.best_seq,
                    _encoder.encode(event.read_seqs).decode(),
                    _encoder.encode(event.cameras).decode(),
                    received_at,
                ),
            )
        return Stored(True)

    @staticmethod
    def _plate_id(db: sqlite_utils.Database, s: str, plate: str) -> int:
        row = db.conn.execute(f"SELECT plate_id FROM {s}.plates WHERE plate=?", (plate,)).fetchone()
        if row is not None:
            return int(row[0])
        cur = db.conn.execute(f"INSERT INTO {s}.plates (plate, rplate) VALUES (?, ?)", (plate, plate[::-1]))
        return int(cur.lastrowid or 0)

    def lookup_read(
        self, db: sqlite_utils.Database, checkpoint: str, epoch: int, seq: int, near: float
    ) -> StoredRead | None:
        """The read with this identity, looked for on the day of ``near`` and the day before (writer side).

        ``near`` is when the caller expects the read (an edge hit's ``raised_at``): hits are raised at
        capture time, so a read is on that day or, just after midnight, on the one before.
        """
        day = day_of(near, self.tz)
        for d in (day, day - dt.timedelta(days=1)):
            s = self._existing_schema(db, d)
            if s is None:
                continue
            row = db.conn.execute(
                _SELECT_READ.format(s=f"{s}.", attrs=f"r.{ATTRIBUTES_COLUMN}")  # attached: it has the column
                + " WHERE r.checkpoint=? AND r.epoch=? AND r.seq=?",
                (checkpoint, epoch, seq),
            ).fetchone()
            if row is not None:
                return _row_to_read(row)
        return None

    def identity_taken(
        self, db: sqlite_utils.Database, checkpoint: str, epoch: int, seq: int, near: float
    ) -> bool:
        """A read or passage near ``near`` holds this identity (for an edge hit's insert)."""
        day = day_of(near, self.tz)
        for d in (day, day - dt.timedelta(days=1)):
            s = self._existing_schema(db, d)
            if s is None:
                continue
            for table in ("reads", "passages"):
                if db.conn.execute(
                    f"SELECT 1 FROM {s}.{table} WHERE checkpoint=? AND epoch=? AND seq=?",
                    (checkpoint, epoch, seq),
                ).fetchone():
                    return True
        return False

    # -- read side ----------------------------------------------------------------------------------
    def days(self) -> list[dt.date]:
        """Days held, oldest first."""
        out = []
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        for name in names:
            m = _DAY_FILE.fullmatch(name)
            if m:
                out.append(dt.date.fromisoformat(m.group(1)))
        return sorted(out)

    def _open(self, day: dt.date) -> sqlite3.Connection | None:
        path = self.root / file_name(day)
        try:
            # mode=rw: a reader never creates a day file (one being purged just disappears)
            conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)
        except sqlite3.OperationalError:
            return None
        conn.execute("PRAGMA query_only=ON")
        return conn

    def _days_between(self, since: float, until: float) -> list[dt.date]:
        first, last = day_of(since, self.tz), day_of(until, self.tz)
        return [d for d in self.days() if first <= d <= last]

    def search_exact(
        self, plate: str, since: float, until: float, limit: int = 500, checkpoint: str | None = None
    ) -> SearchResult:
        """Reads of one plate in [since, until] (at one checkpoint if given), newest first."""
        return self._search(Pattern(clean_plate(plate), "", ""), since, until, limit, checkpoint)

    def search_pattern(
        self, pattern: str, since: float, until: float, limit: int = 500, checkpoint: str | None = None
    ) -> SearchResult:
        """Reads whose plate matches a partial plate (``*`` any run, ``?`` one character), newest first."""
        return self._search(parse_pattern(pattern), since, until, limit, checkpoint)

    def _search(
        self, p: Pattern, since: float, until: float, limit: int, checkpoint: str | None = None
    ) -> SearchResult:
        limit = max(1, min(limit, MAX_LIMIT))
        candidates, params = candidate_query(p)
        place = "AND r.checkpoint = ? " if checkpoint else ""
        if checkpoint:
            params = (*params, checkpoint)
        where = (
            f" WHERE r.plate_id IN ({candidates}) {place}"
            "AND r.captured_at >= ? AND r.captured_at <= ? ORDER BY r.captured_at DESC LIMIT ?"
        )
        out: list[StoredRead] = []
        days = self._days_between(since, until)
        searched = 0
        for day in reversed(days):
            conn = self._open(day)
            if conn is None:
                continue
            try:
                searched += 1
                sql = _select_read(conn) + where
                rows = conn.execute(sql, (*params, since, until, limit - len(out) + 1)).fetchall()
            finally:
                conn.close()
            out.extend(_row_to_read(r) for r in rows)
            if len(out) > limit:
                break
        return SearchResult(out[:limit], len(out) > limit, searched)

    # -- intelligence: routes and companions ---------------------------------------------------------
    def route(self, plate: str, since: float, until: float, limit: int = MAX_LIMIT) -> SearchResult:
        """Passages of one plate in [since, until], oldest first (its trip across the ring)."""
        plate = clean_plate(plate)
        limit = max(1, min(limit, MAX_LIMIT))
        out: list[dict[str, object]] = []
        searched = 0
        for day in self._days_between(since, until):
            conn = self._open(day)
            if conn is None:
                continue
            try:
                searched += 1
                cur = conn.execute(
                    _SELECT_PASSAGE + " WHERE plate=? AND first_seen >= ? AND first_seen <= ? "
                    "ORDER BY first_seen LIMIT ?",
                    (plate, since, until, limit - len(out) + 1),
                )
                out.extend(_passage_row(cur.description, row) for row in cur.fetchall())
            finally:
                conn.close()
            if len(out) > limit:
                break
        return SearchResult(out[:limit], len(out) > limit, searched)  # type: ignore[arg-type]

    def companions(
        self,
        plate: str,
        since: float,
        until: float,
        window_s: float = 120.0,
        min_shared: int = 3,
        limit: int = 20,
    ) -> Companions:
        """Vehicles that passed the checkpoints ``plate`` passed, within ``window_s`` of it, on at
        least ``min_shared`` of its passages; most shared passages first, then the closest in time.

        For each of the plate's passages (by ``passages_plate``) one range read of the checkpoint's
        passages around that moment (by ``passages_checkpoint``), in the day file of each end of the
        window: cost grows with the plate's passages, not with the record."""
        target = self.route(plate, since, until).reads
        plate = clean_plate(plate)
        shared: dict[str, dict[int, tuple[float, dict[str, object]]]] = {}
        conns: dict[dt.date, sqlite3.Connection | None] = {}
        held = set(self.days())
        sql = (
            _SELECT_PASSAGE + " WHERE checkpoint=? AND first_seen >= ? AND first_seen <= ? AND plate != ? "
            "AND no_plate = 0 AND plate != ''"
        )
        try:
            for i, mine in enumerate(target):
                at, cp = float(mine["first_seen"]), str(mine["checkpoint"])  # type: ignore[arg-type]
                for day in sorted({day_of(at - window_s, self.tz), day_of(at + window_s, self.tz)}):
                    if day not in held:
                        continue
                    if day not in conns:
                        conns[day] = self._open(day)
                    conn = conns[day]
                    if conn is None:
                        continue
                    cur = conn.execute(sql, (cp, at - window_s, at + window_s, plate))
                    for row in cur.fetchall():
                        other = _passage_row(cur.description, row)
                        gap = abs(float(other["first_seen"]) - at)  # type: ignore[arg-type]
                        seen = shared.setdefault(str(other["plate"]), {})
                        if i not in seen or gap < seen[i][0]:
                            seen[i] = (gap, other)
        finally:
            for conn in conns.values():
                if conn is not None:
                    conn.close()
        return rank_companions(target, shared, min_shared, limit)

    def counts(self) -> RecordCounts:
        """Rows held. Day files are append-only (rows leave with their file), so max(id) is the count."""
        reads = passages = n = 0
        for day in self.days():
            conn = self._open(day)
            if conn is None:
                continue
            try:
                n += 1
                reads += conn.execute("SELECT coalesce(max(id), 0) FROM reads").fetchone()[0]
                passages += conn.execute("SELECT coalesce(max(id), 0) FROM passages").fetchone()[0]
            except sqlite3.OperationalError:
                continue  # a file created a moment ago, schema not yet committed
            finally:
                conn.close()
        return RecordCounts(reads, passages, n)

    def passages_of(self, day: dt.date) -> list[dict[str, object]]:
        """Every passage of one day (for tests and exports)."""
        conn = self._open(day)
        if conn is None:
            return []
        try:
            cur = conn.execute(
                "SELECT checkpoint, epoch, seq, plate, first_seen, last_seen, best_seq, read_seqs, "
                "cameras FROM passages ORDER BY first_seen"
            )
            names = [c[0] for c in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            conn.close()

    def iter_reads(self, day: dt.date) -> Iterator[StoredRead]:
        """Every read of one day, oldest first."""
        conn = self._open(day)
        if conn is None:
            return
        try:
            for row in conn.execute(_select_read(conn) + " ORDER BY r.captured_at"):
                yield _row_to_read(row)
        finally:
            conn.close()

    def iter_sightings(self, day: dt.date) -> Iterator[tuple[StoredRead, str | None, str | None]]:
        """Every read of one day, oldest first, with its vehicle colour and make (what the clone check
        learns at start-up)."""
        conn = self._open(day)
        if conn is None:
            return
        try:
            for row in conn.execute(_select_read(conn) + " ORDER BY r.captured_at"):
                read = _row_to_read(row)
                yield read, read.vehicle_colour, read.vehicle_brand
        finally:
            conn.close()

    # -- backup ---------------------------------------------------------------------------------------
    def snapshots(self) -> list[tuple[dt.date, sqlite3.Connection]]:
        """A read transaction on every day file, each begun now: with the writer held off (``HubStore.backup``
        holds hub.db's write lock meanwhile) they are one cut. The caller closes the connections."""
        out = []
        for day in self.days():
            conn = self._open(day)
            if conn is None:
                continue  # purged (renamed) since it was listed: past the retention anyway
            conn.execute("BEGIN")
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts here
            except sqlite3.DatabaseError:
                conn.close()
                raise
            out.append((day, conn))
        return out

    # -- retention ------------------------------------------------------------------------------------
    def purge_before(self, cutoff: dt.date) -> list[dt.date]:
        """Drop every day before ``cutoff`` (call from any thread but the writer's; blocks until done).

        The writer only detaches and renames the day files between two transactions (milliseconds);
        the files are unlinked here, on the caller's thread, so ingest never waits for the disk.
        """
        if self._writer is None:
            raise RuntimeError("the read store is not bound to a writer")
        retired = self._writer.submit(lambda db: self.retire(db, cutoff), transaction=False).result()
        self.remove_retired(retired)
        return [day for day, _ in retired]

    def retire(self, db: sqlite_utils.Database, cutoff: dt.date) -> list[tuple[dt.date, list[Path]]]:
        """Writer side, outside a transaction: detach and rename every day before ``cutoff``.

        Renaming is instant whatever the file's size; a late read for such a day makes a fresh file
        under the old name, which the next purge takes.
        """
        out = []
        for day in self.days():
            if day >= cutoff:
                continue
            alias = self._attached.pop(day, None)
            if alias is not None:
                db.conn.execute(f"DETACH DATABASE {alias}")
            stamp = f"{PURGED_SUFFIX}-{time.time_ns()}"
            moved = []
            for tail in ("", "-wal", "-shm"):
                path = self.root / (file_name(day) + tail)
                if path.exists():
                    target = path.with_name(path.name + stamp)
                    path.rename(target)
                    moved.append(target)
            out.append((day, moved))
        return out

    def remove_retired(self, retired: Iterable[tuple[dt.date, list[Path]]]) -> None:
        """Unlink renamed day files (any thread; the writer is not involved)."""
        for _, paths in retired:
            for path in paths:
                path.unlink(missing_ok=True)
        for leftover in self.root.glob(f"*{PURGED_SUFFIX}-*"):  # from a purge a crash interrupted
            leftover.unlink(missing_ok=True)
