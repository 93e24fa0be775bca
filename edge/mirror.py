"""The edge's mirror of the field feed: its own SQLite file and the index the edge matches with.

Deltas are applied strictly in order (version n+1 after n); anything else is either stale (ignored)
or a gap (the caller fetches a snapshot). Rows change in the mirror's writer thread; the index is
changed on the event loop, where matching runs, so a match never sees a half-applied delta.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hmac
from array import array
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

import msgspec
import sqlite_utils

from protocols import feedfile
from protocols.feed import (
    EntryDelete,
    EntryUpsert,
    FeedDelta,
    FeedSnapshot,
    ListDelete,
    ListUpsert,
    PermitRules,
)
from protocols.matching import Entry, Hit, ListKind, PermitRule, Watchlist
from protocols.plateindex import Merge, PlateIndex, RowsBuilder
from runtime.sqlwriter import SqlWriter

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS lists (list_id TEXT PRIMARY KEY, body BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS entries (entry_id TEXT PRIMARY KEY, list_id TEXT NOT NULL, body BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS entries_list ON entries (list_id)",
]

_enc = msgspec.json.Encoder()
_list_dec = msgspec.json.Decoder(type=Watchlist)
_entry_dec = msgspec.json.Decoder(type=Entry)
_rules_dec = msgspec.json.Decoder(type=list[PermitRule])


#: Rows per INSERT batch when a feed file replaces the mirror.
WRITE_BATCH = 20_000


class _FileDiff(msgspec.Struct, kw_only=True):
    """What a feed file changed in a mirror that holds a feed (rows written, the index's part
    staged in a ``Merge``)."""

    version: int
    count: int
    watchlists: list[Watchlist]
    permit_rules: list[PermitRule]
    persons: int


class _Ids:
    """Entry ids kept as one UTF-8 buffer with offsets (a million removed ids as two buffers,
    not a million ``str`` objects)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._off = array("q", [0])

    def add(self, entry_id: str) -> None:
        self._buf += entry_id.encode("utf-8", "surrogatepass")
        self._off.append(len(self._buf))

    def __len__(self) -> int:
        return len(self._off) - 1

    def __iter__(self) -> Iterator[str]:
        buf, off = self._buf, self._off
        for i in range(len(off) - 1):
            yield buf[off[i] : off[i + 1]].decode("utf-8", "surrogatepass")


class Applied(StrEnum):
    APPLIED = "applied"
    STALE = "stale"
    GAP = "gap"


def release_memory() -> None:
    """Hand freed heap back to the system after a big rebuild (glibc keeps it otherwise, and a
    4 GB box shares it with the camera software); a no-op where there is no malloc_trim."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


#: Blocks at least this large are mapped on their own and unmapped when freed (glibc's
#: ``M_MMAP_THRESHOLD``; by default it rises to 32 MB as big blocks are freed, after which a
#: merge's numpy temporaries stay in the heap, counted in the edge's resident size).
MMAP_THRESHOLD = 256 * 1024
_M_MMAP_THRESHOLD = -3


def return_big_blocks() -> None:
    """Have freed big blocks go back to the system at once (see ``MMAP_THRESHOLD``); a no-op where
    the C library has no ``mallopt``."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def _shrink(db: sqlite_utils.Database) -> None:
    """Free the memory SQLite kept from writing a whole feed (its page cache grows with the job)."""
    db.conn.execute("PRAGMA shrink_memory")


def _person_lists(lists: list[Watchlist]) -> set[str]:
    return {wl.list_id for wl in lists if wl.kind == ListKind.PERSON}


def _person_count(db: sqlite_utils.Database) -> int:
    lists = [_list_dec.decode(b) for (b,) in db.conn.execute("SELECT body FROM lists")]
    persons = sorted(_person_lists(lists))
    if not persons:
        return 0
    marks = ",".join("?" * len(persons))
    return int(
        db.conn.execute(f"SELECT count(*) FROM entries WHERE list_id IN ({marks})", persons).fetchone()[0]  # noqa: S608
    )


def _rows_of(db: sqlite_utils.Database, lists: list[Watchlist]) -> RowsBuilder:
    """The index's rows from the file, entry by entry; person entries are only counted (``skipped``)."""
    persons = _person_lists(lists)
    (count,) = db.conn.execute("SELECT count(*) FROM entries").fetchone()
    rows = RowsBuilder(count)
    for list_id, body in db.conn.execute("SELECT list_id, body FROM entries"):
        if list_id in persons:
            rows.skipped += 1
        else:
            rows.add(_entry_dec.decode(body))
    return rows


def _setup(db: sqlite_utils.Database) -> None:
    for statement in SCHEMA:
        db.conn.execute(statement)


def _version(db: sqlite_utils.Database) -> int:
    row = db.conn.execute("SELECT value FROM meta WHERE key='version'").fetchone()
    return int(row[0]) if row else 0


class Mirror:
    def __init__(self, path: str | Path) -> None:
        self._writer = SqlWriter(path, name="mirror", setup=_setup)
        self.index = PlateIndex()
        self.lists: dict[str, Watchlist] = {}
        self.permit_rules: list[PermitRule] = []
        self.version = 0
        #: entries of person lists: in the file only (they never answer a plate read, see match)
        self._persons = 0
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """Open the file and build the index from it (blocking: call from a thread at start-up).

        Entries are read one at a time into the index's arrays, never all as objects at once."""
        return_big_blocks()
        self._writer.start()

        def load(db: sqlite_utils.Database) -> tuple[list[Watchlist], RowsBuilder, int, list[PermitRule]]:
            lists = [_list_dec.decode(b) for (b,) in db.conn.execute("SELECT body FROM lists")]
            rows = _rows_of(db, lists)
            row = db.conn.execute("SELECT value FROM meta WHERE key='permit_rules'").fetchone()
            return lists, rows, _version(db), _rules_dec.decode(row[0]) if row else []

        lists, rows, version, rules = self._writer.submit(load).result()
        self._persons = rows.skipped
        index = PlateIndex()
        index.build_rows(lists, rows, feed_version=version)
        del rows
        self.index, self.lists, self.version = index, {wl.list_id: wl for wl in lists}, version
        self.permit_rules = rules
        self._writer.submit(_shrink).result()
        release_memory()

    def stop(self) -> None:
        self._writer.stop()

    def __len__(self) -> int:
        """Entries mirrored: those in the index, and person entries (kept only in the file)."""
        return len(self.index) + self._persons

    def match(self, plate: str, *, now: float, colour: str | None, vehicle_type: str | None) -> list[Hit]:
        if not plate:
            return []
        hits = (
            self.index.match(plate, now=now, colour=colour, vehicle_type=vehicle_type)
            if len(self.index)
            else []
        )
        # A person list's entries hold ID hashes, not plates: they must never answer a plate read.
        hits = [h for h in hits if (wl := self.lists.get(h.list_id)) is None or wl.kind != ListKind.PERSON]
        if self.permit_rules:
            hits += self.index.check_permit(plate, colour, vehicle_type, self.permit_rules, now=now)
        return hits

    def _is_person(self, list_id: str) -> bool:
        wl = self.lists.get(list_id)
        return wl is not None and wl.kind == ListKind.PERSON

    async def _commit(self, merge: Merge, watchlists: list[Watchlist] | None = None) -> None:
        """Make a staged change to the index (see ``PlateIndex.merge``): a small one at once, as
        deltas are; a larger one built in a worker thread while reads go on being matched with
        the current index, then published at once."""
        if merge.small:
            merge.apply(watchlists)
            return
        await asyncio.to_thread(merge.prepare)
        merge.commit(watchlists)

    async def _flip(self, list_ids: list[str]) -> None:
        """Lists became (or stopped being) kind ``person``: their entries leave (or join) the index,
        read from the file and changed in place, never a second index built next to the first."""
        merge = self.index.merge()
        persons = _person_lists(list(self.lists.values()))

        def stage(db: sqlite_utils.Database) -> None:
            marks = ",".join("?" * len(list_ids))
            query = f"SELECT entry_id, list_id, body FROM entries WHERE list_id IN ({marks})"  # noqa: S608
            for entry_id, list_id, body in db.conn.execute(query, list_ids):
                if list_id in persons:
                    merge.remove(entry_id)
                else:
                    merge.upsert(_entry_dec.decode(body))

        await self._writer.run(stage)
        await self._commit(merge)
        release_memory()

    async def match_person(self, id_hash: str, *, now: float) -> list[Entry]:
        """Entries of person lists (kind ``person``) whose ``plate`` holds this keyed ID hash; offline,
        from the mirror's own file. Person entries never answer plate reads (see :meth:`match`)."""
        person_lists = [
            lid
            for lid, wl in self.lists.items()
            if wl.kind == ListKind.PERSON
            and (wl.valid_from is None or wl.valid_from <= now)
            and (wl.valid_until is None or now < wl.valid_until)
        ]
        if not person_lists or not id_hash:
            return []

        def q(db: sqlite_utils.Database) -> list[Entry]:
            marks = ",".join("?" * len(person_lists))
            rows = db.conn.execute(f"SELECT body FROM entries WHERE list_id IN ({marks})", person_lists)  # noqa: S608
            found = [_entry_dec.decode(body) for (body,) in rows]
            return [
                e
                for e in found
                if hmac.compare_digest(e.plate.encode(), id_hash.encode())
                and (e.valid_from is None or e.valid_from <= now)
                and (e.valid_until is None or now < e.valid_until)
            ]

        return await self._writer.run(q)

    async def entry(self, entry_id: str) -> Entry | None:
        def q(db: sqlite_utils.Database) -> Entry | None:
            row = db.conn.execute("SELECT body FROM entries WHERE entry_id=?", (entry_id,)).fetchone()
            return _entry_dec.decode(row[0]) if row else None

        return await self._writer.run(q)

    async def apply_delta(self, delta: FeedDelta) -> Applied:
        async with self._lock:
            if delta.version <= self.version:
                return Applied.STALE
            if delta.version != self.version + 1:
                return Applied.GAP

            def job(db: sqlite_utils.Database) -> dict[str, list[str]]:
                dropped: dict[str, list[str]] = {}
                for change in delta.changes:
                    if isinstance(change, ListUpsert):
                        db.conn.execute(
                            "INSERT OR REPLACE INTO lists VALUES (?, ?)",
                            (change.watchlist.list_id, _enc.encode(change.watchlist)),
                        )
                    elif isinstance(change, ListDelete):
                        dropped[change.list_id] = [
                            i
                            for (i,) in db.conn.execute(
                                "SELECT entry_id FROM entries WHERE list_id=?", (change.list_id,)
                            )
                        ]
                        db.conn.execute("DELETE FROM entries WHERE list_id=?", (change.list_id,))
                        db.conn.execute("DELETE FROM lists WHERE list_id=?", (change.list_id,))
                    elif isinstance(change, EntryUpsert):
                        e = change.entry
                        db.conn.execute(
                            "INSERT OR REPLACE INTO entries VALUES (?, ?, ?)",
                            (e.entry_id, e.list_id, _enc.encode(e)),
                        )
                    elif isinstance(change, EntryDelete):
                        db.conn.execute("DELETE FROM entries WHERE entry_id=?", (change.entry_id,))
                    elif isinstance(change, PermitRules):
                        db.conn.execute(
                            "INSERT OR REPLACE INTO meta VALUES ('permit_rules', ?)",
                            (_enc.encode(change.rules).decode(),),
                        )
                db.conn.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(delta.version),))
                return dropped, _person_count(db) if counts_persons else None

            # Person entries are counted, not indexed: recount when a change may touch them.
            counts_persons = any(
                isinstance(c, ListUpsert | ListDelete | EntryDelete)
                or (isinstance(c, EntryUpsert) and self._is_person(c.entry.list_id))
                for c in delta.changes
            )
            flips = [
                c.watchlist.list_id
                for c in delta.changes
                if isinstance(c, ListUpsert)
                and (old := self.lists.get(c.watchlist.list_id)) is not None
                and (old.kind == ListKind.PERSON) != (c.watchlist.kind == ListKind.PERSON)
            ]
            dropped, persons = await self._writer.run(job)
            for change in delta.changes:  # now on the event loop, with the rows committed
                if isinstance(change, ListUpsert):
                    self.lists[change.watchlist.list_id] = change.watchlist
                    self.index.set_watchlist(change.watchlist)
                elif isinstance(change, ListDelete):
                    for entry_id in dropped.get(change.list_id, []):
                        self.index.remove(entry_id)
                    self.lists.pop(change.list_id, None)
                elif isinstance(change, EntryUpsert):
                    if not self._is_person(change.entry.list_id):
                        self.index.upsert(change.entry)
                elif isinstance(change, EntryDelete):
                    self.index.remove(change.entry_id)
                elif isinstance(change, PermitRules):
                    self.permit_rules = list(change.rules)
            if persons is not None:
                self._persons = persons
            self.version = delta.version
            self.index.feed_version = delta.version
            if flips:
                # A list became (or stopped being) a person list: which entries the index holds changed.
                await self._flip(flips)
            return Applied.APPLIED

    async def replace(self, snapshot: FeedSnapshot) -> bool:
        """Make the mirror exactly the snapshot (after a gap, or on a fresh edge).

        A snapshot no newer than the mirror is ignored: it was fetched while deltas kept arriving,
        and installing it would bring back entries already deleted (false alerts) until the next gap.
        """
        async with self._lock:
            if snapshot.version <= self.version:
                return False

            def job(db: sqlite_utils.Database) -> None:
                db.conn.execute("DELETE FROM entries")
                db.conn.execute("DELETE FROM lists")
                db.conn.executemany(
                    "INSERT INTO lists VALUES (?, ?)",
                    [(wl.list_id, _enc.encode(wl)) for wl in snapshot.watchlists],
                )
                db.conn.executemany(
                    "INSERT INTO entries VALUES (?, ?, ?)",
                    [(e.entry_id, e.list_id, _enc.encode(e)) for e in snapshot.entries],
                )
                db.conn.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(snapshot.version),))
                db.conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('permit_rules', ?)",
                    (_enc.encode(snapshot.permit_rules).decode(),),
                )

            await self._writer.run(job)
            index = PlateIndex()
            persons = _person_lists(snapshot.watchlists)
            plates = [e for e in snapshot.entries if e.list_id not in persons]
            await asyncio.to_thread(index.build, snapshot.watchlists, plates, feed_version=snapshot.version)
            self._persons = len(snapshot.entries) - len(plates)
            del plates
            self.index, self.version = index, snapshot.version
            self.permit_rules = list(snapshot.permit_rules)
            self.lists = {wl.list_id: wl for wl in snapshot.watchlists}
            return True

    async def replace_file(self, path: Path) -> tuple[bool, int, int]:
        """``replace`` from a checked feed file (``protocols.feedfile``): (installed, its version, its
        entries). An empty mirror is filled from the file (see ``_fill_from_file``); a mirror that
        holds a feed takes only the difference (see ``_diff_from_file``), so the old and a new index
        never exist at once. Matching goes on with the current index throughout."""
        async with self._lock:
            if len(self) == 0:
                return await self._fill_from_file(path)
            return await self._diff_from_file(path)

    async def _diff_from_file(self, path: Path) -> tuple[bool, int, int]:
        """Make a mirror that holds a feed equal to the file by applying only what differs.

        The file's entries and the mirror's rows are both in ``entry_id`` order, so one pass over
        both finds the entries added, changed and removed, and those of lists that became (or
        stopped being) kind ``person``; it keeps only their row numbers in the file and the
        removed ids. A second pass decodes just those rows, writes them in batches and stages
        them into the index (``PlateIndex.merge``): no list of changed entries, however large the
        difference. The rows change in one transaction together with the version (a crash leaves
        the old mirror whole, and the next try redoes it); the index then takes the whole change
        in place, prepared in a worker thread while reads are matched with the current index,
        and published at once (see ``_commit``)."""
        current = self.version
        old_persons = _person_lists(list(self.lists.values()))
        merge = self.index.merge()

        def job(db: sqlite_utils.Database) -> _FileDiff | feedfile.FeedColumns:
            with path.open("rb") as f:
                cols = feedfile.columns_from(f)
            if cols.version <= current:
                return cols
            persons = _person_lists(cols.watchlists)
            flipped = (old_persons ^ persons) & set(self.lists)
            wanted = array("I")
            removed = _Ids()
            rows = db.conn.execute("SELECT entry_id, body FROM entries ORDER BY entry_id")
            old = next(rows, None)
            for row, e in enumerate(feedfile.iter_entries(cols)):
                while old is not None and old[0] < e.entry_id:
                    removed.add(old[0])
                    old = next(rows, None)
                if old is not None and old[0] == e.entry_id:
                    if e.list_id in flipped or bytes(old[1]) != _enc.encode(e):
                        wanted.append(row)
                    old = next(rows, None)
                else:
                    wanted.append(row)
            while old is not None:
                removed.add(old[0])
                old = next(rows, None)
            # the cursor is done: only now the rows change (an order the two sides disagreed on
            # would only show as a removal and an addition of the same id, applied in that order)
            batch: list[tuple[str, ...]] = []
            for entry_id in removed:
                merge.remove(entry_id)
                batch.append((entry_id,))
                if len(batch) >= WRITE_BATCH:
                    db.conn.executemany("DELETE FROM entries WHERE entry_id=?", batch)
                    batch.clear()
            db.conn.executemany("DELETE FROM entries WHERE entry_id=?", batch)
            del removed
            upserts: list[tuple[str, str, bytes]] = []
            for e in feedfile.iter_entries(cols, wanted=wanted):
                upserts.append((e.entry_id, e.list_id, _enc.encode(e)))
                if e.list_id in persons:
                    merge.remove(e.entry_id)
                else:
                    merge.upsert(e)
                if len(upserts) >= WRITE_BATCH:
                    db.conn.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", upserts)
                    upserts.clear()
            db.conn.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", upserts)
            db.conn.execute("DELETE FROM lists")
            db.conn.executemany(
                "INSERT INTO lists VALUES (?, ?)",
                [(wl.list_id, _enc.encode(wl)) for wl in cols.watchlists],
            )
            db.conn.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(cols.version),))
            db.conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('permit_rules', ?)",
                (_enc.encode(cols.permit_rules).decode(),),
            )
            return _FileDiff(
                version=cols.version,
                count=cols.count,
                watchlists=cols.watchlists,
                permit_rules=cols.permit_rules,
                persons=_person_count(db),
            )

        diff = await self._writer.run(job)
        if isinstance(diff, feedfile.FeedColumns):
            return False, diff.version, diff.count
        await self._writer.run(_shrink)
        release_memory()  # what decoding the file and reading the rows took
        await self._commit(merge, diff.watchlists)
        # (and with no wait since: the mirror's lists, rules and version with the index's entries)
        self.lists = {wl.list_id: wl for wl in diff.watchlists}
        self.permit_rules = list(diff.permit_rules)
        self.version = diff.version
        self.index.feed_version = diff.version
        self._persons = diff.persons
        release_memory()
        return True, self.version, diff.count

    async def _fill_from_file(self, path: Path) -> tuple[bool, int, int]:
        """An empty mirror from the file: its entries go one at a time into the rows and the new
        index's arrays, so the feed never exists as a list of objects."""
        current = self.version

        def job(db: sqlite_utils.Database) -> tuple[feedfile.FeedColumns, RowsBuilder | None]:
            with path.open("rb") as f:
                cols = feedfile.columns_from(f)
            if cols.version <= current:
                return cols, None
            db.conn.execute("DELETE FROM entries")
            db.conn.execute("DELETE FROM lists")
            db.conn.executemany(
                "INSERT INTO lists VALUES (?, ?)",
                [(wl.list_id, _enc.encode(wl)) for wl in cols.watchlists],
            )
            rows = RowsBuilder(cols.count)
            persons = _person_lists(cols.watchlists)
            batch: list[tuple[str, str, bytes]] = []
            for e in feedfile.iter_entries(cols):
                if e.list_id in persons:
                    rows.skipped += 1
                else:
                    rows.add(e)
                batch.append((e.entry_id, e.list_id, _enc.encode(e)))
                if len(batch) >= WRITE_BATCH:
                    db.conn.executemany("INSERT INTO entries VALUES (?, ?, ?)", batch)
                    batch.clear()
            db.conn.executemany("INSERT INTO entries VALUES (?, ?, ?)", batch)
            db.conn.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(cols.version),))
            db.conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('permit_rules', ?)",
                (_enc.encode(cols.permit_rules).decode(),),
            )
            # keep only what the index needs: the columns' text goes before the index is built
            # (every column: each is a view that keeps the whole decompressed buffer alive)
            for name in cols.__struct_fields__:
                if isinstance(getattr(cols, name), memoryview):
                    setattr(cols, name, memoryview(b""))
            cols.strings, cols.ids = [], []
            return cols, rows

        cols, rows = await self._writer.run(job)
        if rows is None:
            return False, cols.version, cols.count
        await self._writer.run(_shrink)
        release_memory()  # what writing the rows took, before the new index takes its share
        index = PlateIndex()
        await asyncio.to_thread(index.build_rows, cols.watchlists, rows, feed_version=cols.version)
        self._persons = rows.skipped
        del rows
        self.index, self.version = index, cols.version
        self.permit_rules = list(cols.permit_rules)
        self.lists = {wl.list_id: wl for wl in cols.watchlists}
        release_memory()
        return True, cols.version, cols.count
