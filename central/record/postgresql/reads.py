"""The record of plain reads and passages on PostgreSQL, partitioned by day: ``PgReadStore``.

It implements :class:`central.record.reads.ReadStore` as the SQLite day files do, so the two behave the
same (``tests/test_record_contract.py`` runs one suite against both).

**Days.** ``reads``, ``passages`` and ``plates`` (the day's distinct plates) are partitioned by
``RANGE (day)``, ``day`` being the record day of the capture time (a passage's ``first_seen``) in the
configured UTC offset, computed as the day files are (:func:`central.record.days.day_of`, absurd times
clamped to 1970-01-01 or 2099-12-31). A unique key on a partitioned table must hold the partition key,
so a read's identity is UNIQUE ``(checkpoint, epoch, seq, day)``: an honest resend carries the same
capture time, lands in the same partition and finds itself there. A day's partitions are made when its
first row comes (``DayPartitions.prepare``), as an empty table that is then attached (``ATTACH
PARTITION`` takes a SHARE UPDATE EXCLUSIVE lock on the parent, which searches and inserts do not
conflict with; ``CREATE TABLE ... PARTITION OF`` would queue behind a long search for an ACCESS EXCLUSIVE
lock and stall everything behind it). That DDL runs on a connection of its own, outside the writer's
transaction: an insert inside a transaction that meets a day without partitions raises
:class:`DaysNotReady` and the caller prepares the days and runs its job again (the SQLite writer's
``NeedsPreparation`` does the same for attaching a day file).

**A batch in one statement.** :meth:`PgReadStore.insert_many` sends a batch's reads as one JSON array in
one ``INSERT ... SELECT FROM json_to_recordset(...) ON CONFLICT DO NOTHING RETURNING`` into the day's
partition, whose answer tells, for each read, whether it is new, or else the digest already stored under
its identity (equal: a resend, seen before; other: a conflict, dead-lettered), and whether an edge hit
names it; the same statement adds the new reads' plates to ``plates`` and counts them in the hub's own row
of the day's counts (``record_day_counts``, by its slot: two hubs never update one row, so neither waits for
the other's commit; readers sum the slots and ``record_days``). Passages go the same way in a second
statement. The statement names the day's
partitions, so the writer runs it on a generic plan (:func:`insert_statement`). A read may not take a
passage's identity nor a passage a read's (both are checked in the statements). An identity that
appears twice in one batch splits it, so the second sees the first as SQLite's row-by-row insert does.

**Text PostgreSQL refuses.** ``text`` cannot hold a NUL. What the camera and the edge sent and the
record only keeps (the raw plate text, camera and event ids, colours, the problem, the attributes) is
kept as ``bytea`` (UTF-8, lone surrogates passed through), so it comes back exactly. The plate is
searched, so it stays ``text COLLATE "C"``: a plate holding a NUL (only a broken edge sends one; the
edge's normalizer removes them) is searchable with U+FFFD in the NUL's place and is kept exactly in
``plate_exact``, which is what every search returns. A pattern is made of plate characters only, so
it matches U+FFFD exactly where it would match the NUL (``?`` or ``*``).

**Partial plates.** As the day files do: the day's distinct plates are in ``plates`` with the plate
reversed (``rplate``), both ``COLLATE "C"`` and indexed; a pattern (``鲁A*23?5``) is narrowed by an index
range on its literal head or tail, whichever is estimated more selective
(:func:`central.record.platepattern.narrowing`), filtered with ``LIKE`` (``*`` -> ``%``, ``?`` -> ``_``: a
pattern holds no other metacharacter), and the reads of the matching plates are fetched by ``(plate,
captured_at)``. Code-point order makes the range exact for Chinese characters, and a literal run of one
or two characters narrows as well as a long one; pg_trgm was not chosen: it indexes runs of three
characters (a pattern such as ``鲁A*23?5`` has none), and under the C locale it takes CJK characters for
separators.

**Retention.** ``DayPartitions.purge_before`` (``partitions.py``) detaches each expired day's partitions with ``DETACH
PARTITION ... CONCURRENTLY`` (it waits for the statements that may still see the partition, never
blocks new ones) under ``lock_timeout``, then drops them. A detach the timeout interrupted is finished
(``FINALIZE``) by the next purge or at start-up; searches use short autocommit statements
(:class:`central.record.postgresql.connections.Pool`), so none holds a detach back for long. No statement
on a partitioned table runs on a generic plan (which would lock every day's partition, the one being
detached too): searches are planned for their parameters, the batch insert names its day's partitions, and
the writer's other statements on the record are never prepared (``connections.connect``).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec
import psycopg
from psycopg import sql

from central.record.days import day_of, digest, parse_offset, read_attributes
from central.record.platepattern import Pattern, clean_plate, narrowing, parse_pattern
from central.record.postgresql.connections import Pool, connect
from central.record.postgresql.partitions import DayPartitions, partition_name
from central.record.postgresql.schema import DAY_COUNTS, migrate
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

log = logging.getLogger(__name__)

Item = tuple[str, int, PlateRead | Passage, float, float]
"""One event to insert: checkpoint, epoch, the read or passage, when the edge sent it, when the hub got it."""

_attributes_decoder = msgspec.json.Decoder(dict[str, str | bool | None])
_json = msgspec.json.Encoder()


class DaysNotReady(RunAgain):
    """An insert inside a transaction met days that have no partitions yet: roll back, ``prepare(days)``,
    run the job again (a ``RunAgain``: code above the seam lets it through)."""

    def __init__(self, days: Sequence[dt.date]) -> None:
        super().__init__(f"the record has no partitions for {', '.join(d.isoformat() for d in days)} yet")
        self.days = list(days)


def _hex(text: str | None) -> str | None:
    """Text the record keeps but never searches, as bytes (a NUL and lone surrogates survive), in hex: the
    batch statement's JSON carries bytes so."""
    return None if text is None else text.encode("utf-8", "surrogatepass").hex()


def _s(raw: bytes | None) -> str | None:
    return None if raw is None else bytes(raw).decode("utf-8", "surrogatepass")


def plate_forms(plate: str) -> tuple[str, bytes | None]:
    """The plate as ``text`` can hold it (NUL and lone surrogates as U+FFFD), and the exact plate as bytes
    when that differs (None otherwise)."""
    text = plate.replace("\0", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text, (None if text == plate else plate.encode("utf-8", "surrogatepass"))


def _like(glob: str) -> str:
    # parse_pattern admits plate characters, * and ? only: nothing else is special to LIKE.
    return glob.replace("*", "%").replace("?", "_")


_READ_INPUT = [
    ("i", "int4"),
    ("day", "date"),
    ("checkpoint", "text"),
    ("epoch", "int8"),
    ("seq", "int8"),
    ("digest", "bytea"),
    ("plate", "text"),
    ("plate_exact", "bytea"),
    ("camera_id", "bytea"),
    ("camera_event_id", "bytea"),
    ("captured_at", "float8"),
    ("edge_sent_at", "float8"),
    ("received_at", "float8"),
    ("plate_raw", "bytea"),
    ("plate_valid", "bool"),
    ("plate_problem", "bytea"),
    ("no_plate", "bool"),
    ("colour", "bytea"),
    ("vehicle_type", "bytea"),
    ("confidence", "float8"),
    ("lane", "int4"),
    ("direction", "bytea"),
    ("attributes", "bytea"),
]
_PASSAGE_INPUT = [
    ("i", "int4"),
    ("day", "date"),
    ("checkpoint", "text"),
    ("epoch", "int8"),
    ("seq", "int8"),
    ("digest", "bytea"),
    ("plate", "text"),
    ("plate_exact", "bytea"),
    ("no_plate", "bool"),
    ("colour", "bytea"),
    ("vehicle_type", "bytea"),
    ("first_seen", "float8"),
    ("last_seen", "float8"),
    ("best_seq", "int8"),
    ("read_seqs", "text"),  # int8[] of each passage, as an array literal (cast in the statement)
    ("cameras", "text"),  # bytea[] likewise
    ("received_at", "float8"),
]


_BYTEA = "bytea"


@functools.lru_cache(maxsize=64)
def insert_statement(table: str, day: dt.date, slot: int = 0) -> str:
    """One statement for a day's batch of ``table`` (reads or passages): take the rows from one JSON
    parameter, skip identities the other table holds, insert the rest with ON CONFLICT DO NOTHING, add new
    plates and counts; answer (i, new, digest already stored, an edge hit names the read).

    It names the day's partitions itself, never the partitioned tables, so a generic plan of it holds those
    partitions only and never waits for a purge detaching another day's (see *Retention* in the module
    docstring); and its rows come as one JSON array (``json_to_recordset``, estimated at 100 rows whatever
    it holds, where ``unnest`` of a constant array is estimated at its length), so a custom plan is
    never cheaper than the generic one and PostgreSQL keeps the generic plan (``connections.connect``):
    planning it was half of PostgreSQL's work for a small batch. One JSON text also costs the hub less to
    send than two dozen arrays, each adapted by psycopg. Bytes travel as hex."""
    other = "passages" if table == "reads" else "reads"
    columns, count = (_READ_INPUT, "reads") if table == "reads" else (_PASSAGE_INPUT, "passages")
    into, beside, plates_into = (partition_name(t, day) for t in (table, other, "plates"))
    stored = [name for name, _ in columns if name != "i"]
    names = ", ".join(f"{name} {'text' if kind == _BYTEA else kind}" for name, kind in columns)

    def value(name: str, kind: str) -> str:
        if name == "read_seqs":
            return "read_seqs::int8[]"
        if name == "cameras":
            return "cameras::bytea[]"
        return f"decode({name}, 'hex')" if kind == _BYTEA else name

    values = ", ".join(value(name, kind) for name, kind in columns if name != "i")
    plates = (
        f"new_plates AS (INSERT INTO {plates_into} (day, plate, rplate) SELECT DISTINCT day, plate, "
        "reverse(plate) FROM added ON CONFLICT DO NOTHING), "
        if table == "reads"
        else ""
    )
    named = (
        "EXISTS (SELECT FROM edge_hits h WHERE h.checkpoint = n.checkpoint AND h.epoch = n.epoch "
        "AND h.read_seq = n.seq)"
        if table == "reads"
        else "false"
    )
    # Both lookups of a stored identity are scalar subqueries, run row by row on the identity's unique index
    # (and the second only for a row that was not inserted). As joins, the planner may scan and sort the
    # whole day's partition for every batch: it does on a day whose partition has no statistics yet, and
    # that cost grows with the day.
    return (
        f"WITH input AS (SELECT * FROM json_to_recordset(%s::json) AS t({names})), "
        f"free AS (SELECT * FROM input n WHERE (SELECT 1 FROM {beside} o "
        "WHERE o.checkpoint = n.checkpoint AND o.epoch = n.epoch AND o.seq = n.seq LIMIT 1) IS NULL), "
        f"added AS (INSERT INTO {into} ({', '.join(stored)}) SELECT {values} FROM free "
        "ON CONFLICT DO NOTHING RETURNING day, checkpoint, epoch, seq, plate), "
        f"{plates}"
        f"counted AS (INSERT INTO record_day_counts AS c (day, slot, {count}) "
        f"SELECT DATE '{day.isoformat()}', {int(slot)}, count(*) FROM added HAVING count(*) > 0 "
        f"ON CONFLICT (day, slot) DO UPDATE SET {count} = c.{count} + excluded.{count}) "
        "SELECT n.i, a.seq IS NOT NULL, CASE WHEN a.seq IS NULL THEN "
        f"(SELECT x.digest FROM {into} x WHERE x.checkpoint = n.checkpoint AND x.epoch = n.epoch "
        f"AND x.seq = n.seq) END, {named} FROM input n "
        "LEFT JOIN added a ON a.checkpoint = n.checkpoint AND a.epoch = n.epoch AND a.seq = n.seq"
    )


_READ_COLUMNS = (
    "r.checkpoint, r.epoch, r.seq, r.camera_id, r.captured_at, r.plate, r.plate_exact, r.plate_raw, "
    "r.plate_valid, r.no_plate, r.colour, r.vehicle_type, r.confidence, r.lane, r.direction, "
    "r.camera_event_id, r.received_at, r.attributes"
)
_SELECT_READ = f"SELECT {_READ_COLUMNS} FROM reads r"
#: The days held in a range, computed once in the statement that searches it (one round trip, not two).
_HELD = "(SELECT count(*) FROM record_days WHERE day BETWEEN %s AND %s)"
_SELECT_PASSAGE = (
    "SELECT checkpoint, epoch, seq, plate, plate_exact, colour, vehicle_type, first_seen, last_seen, best_seq "
    "FROM passages"
)


def _row_to_read(row: Sequence[Any]) -> StoredRead:
    (
        cp,
        epoch,
        seq,
        cam,
        at,
        plate,
        exact,
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
        camera_id=_s(cam) or "",
        captured_at=at,
        plate=plate if exact is None else _s(exact) or "",
        plate_raw=_s(raw) or "",
        plate_valid=valid,
        no_plate=no_plate,
        colour=_s(colour),
        vehicle_type=_s(vt),
        confidence=conf,
        lane=lane,
        direction=_s(direction),
        camera_event_id=_s(ev),
        received_at=rec,
        vehicle_colour=extra.get("vehicle_colour"),  # type: ignore[arg-type]
        vehicle_brand=extra.get("vehicle_brand"),  # type: ignore[arg-type]
        has_evidence=bool(extra.get("has_evidence")),
    )


def _row_to_passage(row: Sequence[Any]) -> dict[str, object]:
    cp, epoch, seq, plate, exact, colour, vt, first, last, best = row
    return {
        "checkpoint": cp,
        "epoch": epoch,
        "seq": seq,
        "plate": plate if exact is None else _s(exact),
        "colour": _s(colour),
        "vehicle_type": _s(vt),
        "first_seen": first,
        "last_seen": last,
        "best_seq": best,
    }


def _array_literal(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of the given element texts (each quoted, quotes and backslashes escaped)."""
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


class PgReadStore:
    """The record in PostgreSQL; see the module docstring.

    ``insert``, ``insert_many``, ``lookup_read`` and ``identity_taken`` take the writer's connection
    (``db``: a psycopg connection, in the writer's transaction); the rest use pooled autocommit
    connections from any thread. ``start()`` connects and migrates; nothing connects before it.
    """

    def __init__(
        self,
        dsn: str,
        *,
        utc_offset: str = "+08:00",
        pool_size: int = 4,
        lock_timeout_s: float = 2.0,
        slot: int = 0,
    ) -> None:
        self.dsn = dsn
        self.tz = parse_offset(utc_offset)
        #: this hub's row of each day's counts (``schema.hub_slot``)
        self.slot = slot
        self._pool = Pool(dsn, pool_size)
        self._writer: psycopg.Connection | None = None
        self._writer_lock = threading.Lock()
        self.partitions = DayPartitions(dsn, lock_timeout_s)

    # -- life ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect, apply the migrations, finish a purge or a day's set-up a crash interrupted."""
        with connect(self.dsn, autocommit=False) as conn:
            migrate(conn)
        self.partitions.start()

    def stop(self) -> None:
        self._pool.close()
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self.partitions.stop()

    def prepare(self, days: Iterable[dt.date]) -> None:
        """Make the partitions of days that have none (:meth:`DayPartitions.prepare`)."""
        self.partitions.prepare(days)

    @property
    def analyzed(self) -> list[tuple[dt.date, str]]:
        """The young partitions analyzed so far (:meth:`DayPartitions.grew`), for the tests."""
        return self.partitions.analyzed

    # -- writer side ----------------------------------------------------------------------------------
    def day_of_event(self, event: PlateRead | Passage) -> dt.date:
        return day_of(event.captured_at if isinstance(event, PlateRead) else event.first_seen, self.tz)

    def insert(
        self,
        db: psycopg.Connection,
        checkpoint: str,
        epoch: int,
        event: PlateRead | Passage,
        edge_sent_at: float,
        received_at: float,
    ) -> Stored:
        """Insert one read or passage idempotently (see ``insert_many``)."""
        return self.insert_many(db, [(checkpoint, epoch, event, edge_sent_at, received_at)])[0]

    def insert_many(self, db: psycopg.Connection, items: Sequence[Item]) -> list[Stored]:
        """Insert a batch idempotently by identity, in one statement for its reads and one for its
        passages; one ``Stored`` per item, in order.

        Outside a transaction the days the batch needs are prepared first; inside one, a day without
        partitions raises :class:`DaysNotReady` (roll back, ``prepare``, run again)."""
        return self.insert_batch(db, items)[0]

    def insert_batch(self, db: psycopg.Connection, items: Sequence[Item]) -> tuple[list[Stored], set[int]]:
        """``insert_many``, and the positions of the reads that an edge hit names (found by the same
        statement, not one more round trip)."""
        days = [self.day_of_event(item[2]) for item in items]
        missing = self.partitions.missing(days)
        if missing:
            if db.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                raise DaysNotReady(missing)
            self.prepare(missing)
        out: list[Stored | None] = [None] * len(items)
        named: set[int] = set()
        wave: list[int] = []
        seen: set[tuple[str, int, int]] = set()
        for i, (checkpoint, epoch, event, _, _) in enumerate(items):
            key = (checkpoint, epoch, event.seq)
            if key in seen:  # the same identity again: after the first is in, as row by row
                self._insert_wave(db, items, days, wave, out, named)
                wave, seen = [], set()
            seen.add(key)
            wave.append(i)
        self._insert_wave(db, items, days, wave, out, named)
        if self.partitions.young:  # a day's first thousand rows only: nothing built for the rest
            self.partitions.grew(
                [
                    ("reads" if isinstance(item[2], PlateRead) else "passages", day)
                    for item, day in zip(items, days, strict=True)
                ]
            )
        return out, named  # type: ignore[return-value]

    def _insert_wave(
        self,
        db: psycopg.Connection,
        items: Sequence[Item],
        days: list[dt.date],
        wave: list[int],
        out: list[Stored | None],
        named: set[int],
    ) -> None:
        reads = [i for i in wave if isinstance(items[i][2], PlateRead)]
        passages = [i for i in wave if not isinstance(items[i][2], PlateRead)]
        digests: dict[int, bytes] = {}
        if reads:
            rows: list[dict[str, Any]] = []
            for i in reads:
                checkpoint, epoch, read, sent, received = items[i]
                assert isinstance(read, PlateRead)
                digests[i] = digest(read)
                plate, exact = plate_forms(read.plate)
                rows.append(
                    {
                        "i": i,
                        "day": days[i],
                        "checkpoint": checkpoint,
                        "epoch": epoch,
                        "seq": read.seq,
                        "digest": digests[i].hex(),
                        "plate": plate,
                        "plate_exact": None if exact is None else exact.hex(),
                        "camera_id": _hex(read.camera_id),
                        "camera_event_id": _hex(read.camera_event_id),
                        "captured_at": read.captured_at,
                        "edge_sent_at": sent,
                        "received_at": received,
                        "plate_raw": _hex(read.plate_raw),
                        "plate_valid": read.plate_valid,
                        "plate_problem": _hex(read.plate_problem),
                        "no_plate": read.no_plate,
                        "colour": _hex(read.colour),
                        "vehicle_type": _hex(read.vehicle_type),
                        "confidence": read.confidence,
                        "lane": read.lane,
                        "direction": _hex(read.direction),
                        "attributes": _hex(read_attributes(read)),
                    }
                )
            self._resolve(db, rows, "reads", items, digests, out, named)
        if passages:
            rows = []
            for i in passages:
                checkpoint, epoch, passage, _, received = items[i]
                assert isinstance(passage, Passage)
                digests[i] = digest(passage)
                plate, exact = plate_forms(passage.plate)
                rows.append(
                    {
                        "i": i,
                        "day": days[i],
                        "checkpoint": checkpoint,
                        "epoch": epoch,
                        "seq": passage.seq,
                        "digest": digests[i].hex(),
                        "plate": plate,
                        "plate_exact": None if exact is None else exact.hex(),
                        "no_plate": passage.no_plate,
                        "colour": _hex(passage.colour),
                        "vehicle_type": _hex(passage.vehicle_type),
                        "first_seen": passage.first_seen,
                        "last_seen": passage.last_seen,
                        "best_seq": passage.best_seq,
                        "read_seqs": "{" + ",".join(str(int(s)) for s in passage.read_seqs) + "}",
                        "cameras": _array_literal(
                            "\\x" + c.encode("utf-8", "surrogatepass").hex() for c in passage.cameras
                        ),
                        "received_at": received,
                    }
                )
            self._resolve(db, rows, "passages", items, digests, out, named)

    def _resolve(
        self,
        db: psycopg.Connection,
        rows: list[dict[str, Any]],
        table: str,
        items: Sequence[Item],
        digests: dict[int, bytes],
        out: list[Stored | None],
        named: set[int],
    ) -> None:
        unknown = []
        answers: list[tuple[int, bool, bytes | None, bool]] = []
        for day in sorted({row["day"] for row in rows}):  # one statement a day (a batch mostly holds one)
            of_day = [row for row in rows if row["day"] == day]
            answers += db.execute(
                insert_statement(table, day, self.slot), (_json.encode(of_day).decode(),), prepare=True
            ).fetchall()
        for i, new, stored, hit in answers:
            if hit:
                named.add(i)
            checkpoint, epoch, event, _, _ = items[i]
            taken = f"event {checkpoint}/{epoch}/{event.seq} was already stored with different content"
            if new:
                out[i] = Stored(True)
            elif stored is None:
                unknown.append(i)
            else:
                out[i] = (
                    Stored(False, seen_before=True)
                    if bytes(stored) == digests[i]
                    else Stored(False, conflict=taken)
                )
        for i in unknown:
            # Not inserted and not in the table as the statement saw it: the other table holds the
            # identity, or another session committed it meanwhile (looked up again, now visible).
            checkpoint, epoch, event, _, _ = items[i]
            taken = f"event {checkpoint}/{epoch}/{event.seq} was already stored with different content"
            row = db.execute(
                sql.SQL(
                    "SELECT digest FROM {} WHERE day = %s AND checkpoint = %s AND epoch = %s AND seq = %s"
                ).format(sql.Identifier(table)),
                (self.day_of_event(event), checkpoint, epoch, event.seq),
                prepare=False,  # on the partitioned table: planned for its parameters (connections.connect)
            ).fetchone()
            same = row is not None and bytes(row[0]) == digests[i]
            out[i] = Stored(False, seen_before=True) if same else Stored(False, conflict=taken)

    def lookup_read(
        self, db: psycopg.Connection, checkpoint: str, epoch: int, seq: int, near: float
    ) -> StoredRead | None:
        """The read with this identity on the day of ``near`` or the day before (writer side)."""
        day = day_of(near, self.tz)
        row = db.execute(
            _SELECT_READ + " WHERE r.day IN (%s, %s) AND r.checkpoint = %s AND r.epoch = %s AND r.seq = %s "
            "ORDER BY r.day DESC LIMIT 1",
            (day, day - dt.timedelta(days=1), checkpoint, epoch, seq),
            prepare=False,  # on the partitioned table: planned for its parameters (connections.connect)
        ).fetchone()
        return None if row is None else _row_to_read(row)

    def latest_sightings(
        self,
        db: psycopg.Connection,
        plates: Sequence[str],
        since: float,
        besides: tuple[str, int, Sequence[int]],
        per_plate: int = 3,
    ) -> list[tuple[StoredRead, str | None, str | None]]:
        """The latest ``per_plate`` reads of each of ``plates`` captured at or after ``since``, whoever
        stored them, but for ``besides`` (a checkpoint, an epoch and the seqs of the batch being checked),
        oldest first, each with its vehicle colour and make: what the clone check learns of the reads other
        hubs committed (writer side, in the batch's transaction)."""
        checkpoint, epoch, seqs = besides
        rows = db.execute(
            "SELECT x.* FROM unnest(%s::text[]) AS p(plate) CROSS JOIN LATERAL ("
            + _SELECT_READ
            + " WHERE r.plate = p.plate AND r.day >= %s AND r.captured_at >= %s "
            "AND NOT (r.checkpoint = %s AND r.epoch = %s AND r.seq = ANY(%s::int8[])) "
            "ORDER BY r.captured_at DESC LIMIT %s) x",
            (sorted(set(plates)), day_of(since, self.tz), since, checkpoint, epoch, list(seqs), per_plate),
        ).fetchall()
        reads = sorted((_row_to_read(r) for r in rows), key=lambda r: r.captured_at)
        return [(r, r.vehicle_colour, r.vehicle_brand) for r in reads]

    def identity_taken(
        self, db: psycopg.Connection, checkpoint: str, epoch: int, seq: int, near: float
    ) -> bool:
        """A read or passage on the day of ``near`` or the day before holds this identity."""
        day = day_of(near, self.tz)
        days = (day, day - dt.timedelta(days=1))
        return bool(
            db.execute(
                "SELECT EXISTS (SELECT 1 FROM reads WHERE day IN (%s, %s) AND checkpoint = %s AND epoch = %s "
                "AND seq = %s) OR EXISTS (SELECT 1 FROM passages WHERE day IN (%s, %s) AND checkpoint = %s "
                "AND epoch = %s AND seq = %s)",
                (*days, checkpoint, epoch, seq, *days, checkpoint, epoch, seq),
                prepare=False,  # on the partitioned tables: planned for its parameters (connections.connect)
            ).fetchone()[0]  # type: ignore[index]
        )

    def write(self, items: Sequence[Item]) -> list[Stored]:
        """Insert a batch in a transaction of its own on the store's writer connection and commit it
        (what the hub's writer does with a group of batches; tests and benchmarks call it directly)."""
        days = {self.day_of_event(item[2]) for item in items}
        for attempt in (1, 2):
            self.prepare(days)
            with self._writer_lock:
                if self._writer is None or self._writer.closed or self._writer.broken:
                    self._writer = connect(self.dsn, autocommit=False, generic_plans=True)
                try:
                    with self._writer.transaction():
                        return self.insert_many(self._writer, items)
                except DaysNotReady:  # a purge took one of its days meanwhile: made again, run again
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def run(self, job: Any) -> Any:
        """Run ``job(connection)`` in a transaction of the writer connection (lookups for tests)."""
        with self._writer_lock:
            if self._writer is None or self._writer.closed or self._writer.broken:
                self._writer = connect(self.dsn, autocommit=False, generic_plans=True)
            with self._writer.transaction():
                return job(self._writer)

    # -- read side ------------------------------------------------------------------------------------
    def days(self) -> list[dt.date]:
        """Days held, oldest first."""
        with self._pool.connection() as conn:
            return [d for (d,) in conn.execute("SELECT day FROM record_days ORDER BY day").fetchall()]

    def _held_between(self, conn: psycopg.Connection, since: float, until: float) -> list[dt.date]:
        first, last = day_of(since, self.tz), day_of(until, self.tz)
        return [
            d
            for (d,) in conn.execute(
                "SELECT day FROM record_days WHERE day BETWEEN %s AND %s ORDER BY day", (first, last)
            ).fetchall()
        ]

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
        place = " AND r.checkpoint = %s" if checkpoint else ""
        extra: tuple[Any, ...] = (checkpoint,) if checkpoint else ()
        order = " AND r.captured_at >= %s AND r.captured_at <= %s ORDER BY r.captured_at DESC LIMIT %s"
        out: list[StoredRead] = []
        first, last = day_of(since, self.tz), day_of(until, self.tz)
        with self._pool.connection() as conn:
            if p.exact:  # one statement over the range: a merge of the days' (plate, captured_at) indexes
                rows = conn.execute(
                    f"SELECT {_HELD}, {_READ_COLUMNS} FROM reads r WHERE r.day BETWEEN %s AND %s AND r.plate = %s"
                    + place
                    + order,
                    (first, last, first, last, p.glob, *extra, since, until, limit + 1),
                ).fetchall()
                held = rows[0][0] if rows else len(self._held_between(conn, since, until))
                out = [_row_to_read(r[1:]) for r in rows]
                return SearchResult(out[:limit], len(out) > limit, held)
            days = self._held_between(conn, since, until)
            n = narrowing(p)
            # Each selects only the indexed column it narrows on (the plate is the reversal of rplate), so
            # the candidates come from an index-only scan, without a heap fetch per plate looked at; they
            # are gathered into an array first, then the day's reads fetched by (plate, captured_at).
            if n.column is None:
                candidates = "SELECT plate FROM plates WHERE day = %s AND plate LIKE %s"
                cparams: tuple[Any, ...] = (_like(n.glob),)
            elif n.column == "plate":
                candidates = (
                    "SELECT plate FROM plates WHERE day = %s AND plate >= %s AND plate < %s AND plate LIKE %s"
                )
                cparams = (n.low, n.high, _like(n.glob))
            else:
                candidates = (
                    "SELECT reverse(rplate) FROM plates WHERE day = %s AND rplate >= %s AND rplate < %s "
                    "AND rplate LIKE %s"
                )
                cparams = (n.low, n.high, _like(n.glob))
            statement = (
                f"{_SELECT_READ} WHERE r.day = %s AND r.plate = ANY(ARRAY({candidates})){place}{order}"
            )
            searched = 0
            for day in reversed(days):
                searched += 1
                rows = conn.execute(
                    statement, (day, day, *cparams, *extra, since, until, limit - len(out) + 1)
                ).fetchall()
                out.extend(_row_to_read(r) for r in rows)
                if len(out) > limit:
                    break
        return SearchResult(out[:limit], len(out) > limit, searched)

    # -- intelligence: routes and companions ---------------------------------------------------------
    def route(self, plate: str, since: float, until: float, limit: int = MAX_LIMIT) -> SearchResult:
        """Passages of one plate in [since, until], oldest first (its trip across the ring)."""
        plate = clean_plate(plate)
        limit = max(1, min(limit, MAX_LIMIT))
        first, last = day_of(since, self.tz), day_of(until, self.tz)
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {_HELD}, "
                + _SELECT_PASSAGE.removeprefix("SELECT ")
                + " WHERE day BETWEEN %s AND %s "
                "AND plate = %s AND first_seen >= %s AND first_seen <= %s ORDER BY first_seen LIMIT %s",
                (first, last, first, last, plate, since, until, limit + 1),
            ).fetchall()
            held = rows[0][0] if rows else len(self._held_between(conn, since, until))
        out = [_row_to_passage(r[1:]) for r in rows]
        return SearchResult(out[:limit], len(out) > limit, held)  # type: ignore[arg-type]

    def companions(
        self,
        plate: str,
        since: float,
        until: float,
        window_s: float = 120.0,
        min_shared: int = 3,
        limit: int = 20,
    ) -> Companions:
        """Vehicles that passed the checkpoints ``plate`` passed, within ``window_s`` of it, on at least
        ``min_shared`` of its passages (ranked as the day files rank them).

        One short statement per passage of the plate (``passages_checkpoint`` on each end's day), each
        in autocommit: a week's query never holds one snapshot that a day's detach must wait for."""
        target = self.route(plate, since, until).reads
        plate = clean_plate(plate)
        shared: dict[str, dict[int, tuple[float, dict[str, object]]]] = {}
        statement = (
            _SELECT_PASSAGE + " WHERE day BETWEEN %s AND %s AND checkpoint = %s AND first_seen >= %s "
            "AND first_seen <= %s AND plate <> %s AND NOT no_plate AND plate <> ''"
        )
        with self._pool.connection() as conn:
            for i, mine in enumerate(target):
                at, cp = float(mine["first_seen"]), str(mine["checkpoint"])  # type: ignore[arg-type]
                lo, hi = at - window_s, at + window_s
                rows = conn.execute(
                    statement, (day_of(lo, self.tz), day_of(hi, self.tz), cp, lo, hi, plate), prepare=True
                ).fetchall()
                for row in rows:
                    other = _row_to_passage(row)
                    gap = abs(float(other["first_seen"]) - at)  # type: ignore[arg-type]
                    seen = shared.setdefault(str(other["plate"]), {})
                    if i not in seen or gap < seen[i][0]:
                        seen[i] = (gap, other)
        return rank_companions(target, shared, min_shared, limit)  # type: ignore[arg-type]

    def counts(self) -> RecordCounts:
        """Rows held, from the per-day counts the inserts keep, every hub's slot summed (no scan of the record)."""
        with self._pool.connection() as conn:
            days, reads, passages = conn.execute(
                "SELECT (SELECT count(*) FROM record_days), coalesce(sum(reads), 0), coalesce(sum(passages), 0) "
                f"FROM {DAY_COUNTS} c"
            ).fetchone()  # type: ignore[misc]
        return RecordCounts(int(reads), int(passages), int(days))

    def iter_reads(self, day: dt.date) -> Iterator[StoredRead]:
        """Every read of one day, oldest first, fetched in pages so a day of millions is never held at once."""
        with self._pool.connection() as conn, conn.transaction(), conn.cursor(name="day_reads") as cur:
            cur.itersize = 5000
            cur.execute(_SELECT_READ + " WHERE r.day = %s ORDER BY r.captured_at", (day,))
            for row in cur:
                yield _row_to_read(row)

    def sightings(self, day: dt.date) -> Iterator[tuple[StoredRead, str | None, str | None]]:
        """A day's reads with their vehicle colour and make, in capture order (the clone index warms on
        them)."""
        for read in self.iter_reads(day):
            yield read, read.vehicle_colour, read.vehicle_brand

    iter_sightings = sightings  # the name the interface has until issue 21's seam

    def passages_of(self, day: dt.date) -> list[dict[str, object]]:
        """Every passage of one day (for tests and exports), with its read seqs and cameras."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT checkpoint, epoch, seq, plate, plate_exact, first_seen, last_seen, best_seq, read_seqs, "
                "cameras FROM passages WHERE day = %s ORDER BY first_seen",
                (day,),
            ).fetchall()
        return [
            {
                "checkpoint": cp,
                "epoch": epoch,
                "seq": seq,
                "plate": plate if exact is None else _s(exact),
                "first_seen": first,
                "last_seen": last,
                "best_seq": best,
                "read_seqs": list(read_seqs),
                "cameras": [_s(c) for c in cameras],
            }
            for cp, epoch, seq, plate, exact, first, last, best, read_seqs, cameras in rows
        ]

    # -- retention ------------------------------------------------------------------------------------
    def purge_before(self, cutoff: dt.date) -> list[dt.date]:
        """Drop every day before ``cutoff`` (:meth:`DayPartitions.purge_before`)."""
        return self.partitions.purge_before(cutoff)
