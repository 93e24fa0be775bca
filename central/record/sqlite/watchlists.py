"""Watchlists on hub.db: lists (``wl_lists``), entries (``wl_entries``), the feed version and permit
rules (``hub_meta``) and the field feed's log (``feed_changes``); a change applied in the writer's
transaction with its audit record (see ``central.watchlists.lists`` for the flow)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial

import msgspec
import sqlite_utils

from central.record.sqlite import audit
from central.record.watchlists import MAX_DELTA_CHANGES, Applied, ListError, ListIndex, NotFound
from protocols.feed import (
    EntryDelete,
    EntryUpsert,
    FeedChange,
    FeedDelta,
    ListDelete,
    ListUpsert,
    PermitRules,
    in_field_feed,
)
from protocols.matching import Entry, PermitRule, Watchlist
from protocols.messages import SCHEMA_VERSION

_enc = msgspec.json.Encoder()
_list_dec = msgspec.json.Decoder(type=Watchlist)
_entry_dec = msgspec.json.Decoder(type=Entry)
_rules_dec = msgspec.json.Decoder(type=list[PermitRule])


def feed_version(db: sqlite_utils.Database) -> int:
    row = db.conn.execute("SELECT value FROM hub_meta WHERE key='feed_version'").fetchone()
    return int(row[0]) if row else 0


def get_list(db: sqlite_utils.Database, list_id: str) -> Watchlist | None:
    return _get_list(db, list_id)


def _get_list(db: sqlite_utils.Database, list_id: str) -> Watchlist | None:
    row = db.conn.execute("SELECT body FROM wl_lists WHERE list_id=?", (list_id,)).fetchone()
    return _list_dec.decode(row[0]) if row else None


def get_entry(db: sqlite_utils.Database, entry_id: str) -> Entry | None:
    row = db.conn.execute("SELECT body FROM wl_entries WHERE entry_id=?", (entry_id,)).fetchone()
    return _entry_dec.decode(row[0]) if row else None


def list_entries(db: sqlite_utils.Database, list_id: str) -> list[Entry]:
    return [
        _entry_dec.decode(b)
        for (b,) in db.conn.execute(
            "SELECT body FROM wl_entries WHERE list_id=? ORDER BY entry_id", (list_id,)
        )
    ]


def permit_rules(db: sqlite_utils.Database) -> list[PermitRule]:
    row = db.conn.execute("SELECT value FROM hub_meta WHERE key='permit_rules'").fetchone()
    return _rules_dec.decode(row[0]) if row else []


def load_all(db: sqlite_utils.Database) -> tuple[list[Watchlist], list[Entry], int, list[PermitRule]]:
    lists = [_list_dec.decode(b) for (b,) in db.conn.execute("SELECT body FROM wl_lists")]
    entries = [_entry_dec.decode(b) for (b,) in db.conn.execute("SELECT body FROM wl_entries")]
    return lists, entries, feed_version(db), permit_rules(db)


def _target_of(change: FeedChange) -> str:
    if isinstance(change, ListUpsert):
        return change.watchlist.list_id
    if isinstance(change, ListDelete):
        return change.list_id
    if isinstance(change, EntryUpsert):
        return change.entry.list_id
    if isinstance(change, EntryDelete):
        return change.entry_id.split(":", 1)[0]
    return "permits"


def _unchanged(
    db: sqlite_utils.Database,
    change: FeedChange,
    get_list: Callable[[sqlite_utils.Database, str], Watchlist | None],
) -> bool:
    """Whether an upsert would write exactly what is stored already."""
    if isinstance(change, ListUpsert):
        return get_list(db, change.watchlist.list_id) == change.watchlist
    if isinstance(change, EntryUpsert):
        return get_entry(db, change.entry.entry_id) == change.entry
    return False


def apply_changes(
    db: sqlite_utils.Database,
    changes: Iterable[FeedChange],
    watchlists: ListIndex,
    actor: str,
    now: float | None = None,
    role: str = "",
    reason: str = "",
) -> Applied:
    """Write the changes, prepare the index updates, record a feed version if the field feed moved,
    and an audit record of the whole change (in the same transaction)."""
    now = time.time() if now is None else now
    cache: dict[str, Watchlist | None] = {}

    def get_list(db: sqlite_utils.Database, list_id: str) -> Watchlist | None:
        if list_id not in cache:
            cache[list_id] = _get_list(db, list_id)
        return cache[list_id]

    field_changes: list[FeedChange] = []
    ops: list[Callable[[], None]] = []
    count = 0
    kinds: dict[str, int] = {}
    touched: set[str] = set()
    for change in changes:
        if _unchanged(db, change, get_list):
            continue  # the same list or entry again (a restart re-applying its files): no new version
        count += 1
        kind = type(change).__name__
        kinds[kind] = kinds.get(kind, 0) + 1
        touched.add(_target_of(change))
        if isinstance(change, ListUpsert):
            wl = change.watchlist
            old = get_list(db, wl.list_id)
            db.conn.execute(
                "INSERT OR REPLACE INTO wl_lists (list_id, body, updated_at, updated_by) VALUES (?,?,?,?)",
                (wl.list_id, _enc.encode(wl), now, actor),
            )
            cache[wl.list_id] = wl
            ops.append(partial(watchlists.set_list, wl))
            was, now_in = old is not None and in_field_feed(old), in_field_feed(wl)
            if now_in:
                field_changes.append(change)
                if not was:  # a list coming into the field feed brings its entries along
                    field_changes.extend(EntryUpsert(entry=e) for e in list_entries(db, wl.list_id))
            elif was:
                field_changes.append(ListDelete(list_id=wl.list_id))
        elif isinstance(change, ListDelete):
            old = get_list(db, change.list_id)
            if old is None:
                raise NotFound(f"no list {change.list_id!r}")
            ids = [
                i
                for (i,) in db.conn.execute(
                    "SELECT entry_id FROM wl_entries WHERE list_id=?", (change.list_id,)
                )
            ]
            db.conn.execute("DELETE FROM wl_entries WHERE list_id=?", (change.list_id,))
            db.conn.execute("DELETE FROM wl_lists WHERE list_id=?", (change.list_id,))
            cache[change.list_id] = None
            ops.append(partial(watchlists.drop_list, change.list_id, ids))
            if in_field_feed(old):
                field_changes.append(change)
        elif isinstance(change, EntryUpsert):
            entry = change.entry
            owner = get_list(db, entry.list_id)
            if owner is None:
                raise NotFound(f"entry {entry.entry_id!r}: no list {entry.list_id!r}")
            previous = get_entry(db, entry.entry_id)
            if previous is not None and previous.list_id != entry.list_id:
                raise ListError(f"entry {entry.entry_id!r} belongs to list {previous.list_id!r}")
            db.conn.execute(
                "INSERT OR REPLACE INTO wl_entries (entry_id, list_id, plate, body, updated_at, updated_by) "
                "VALUES (?,?,?,?,?,?)",
                (entry.entry_id, entry.list_id, entry.plate, _enc.encode(entry), now, actor),
            )
            ops.append(partial(watchlists.index.upsert, entry))
            if in_field_feed(owner):
                field_changes.append(change)
        elif isinstance(change, PermitRules):
            db.conn.execute(
                "INSERT OR REPLACE INTO hub_meta (key, value) VALUES ('permit_rules', ?)",
                (_enc.encode(change.rules).decode(),),
            )
            ops.append(partial(watchlists.set_permit_rules, list(change.rules)))
            field_changes.append(change)  # edges check permits offline too
        elif isinstance(change, EntryDelete):
            previous = get_entry(db, change.entry_id)
            if previous is None:
                raise NotFound(f"no entry {change.entry_id!r}")
            db.conn.execute("DELETE FROM wl_entries WHERE entry_id=?", (change.entry_id,))
            ops.append(partial(watchlists.index.remove, change.entry_id))
            owner = get_list(db, previous.list_id)
            if owner is not None and in_field_feed(owner):
                field_changes.append(change)
    version = feed_version(db)
    delta = None
    if field_changes:
        version += 1
        delta = FeedDelta(v=SCHEMA_VERSION, version=version, changes=field_changes, sent_at=now)
        # The log keeps small deltas whole; a bulk change (which edges take as a snapshot) by its size only.
        body = (
            _enc.encode(delta)
            if len(field_changes) <= MAX_DELTA_CHANGES
            else _enc.encode({"v": SCHEMA_VERSION, "version": version, "bulk_changes": len(field_changes)})
        )
        db.conn.execute(
            "INSERT INTO feed_changes (version, at, actor, body) VALUES (?,?,?,?)",
            (version, now, actor, body),
        )
        db.conn.execute(
            "INSERT OR REPLACE INTO hub_meta (key, value) VALUES ('feed_version', ?)", (str(version),)
        )
    ops.append(partial(watchlists.set_feed_version, version))
    if count:
        audit.append(
            db,
            actor,
            role,
            "watchlist.change",
            target=",".join(sorted(touched))[:500],
            reason=reason,
            detail={"changes": count, "by_kind": kinds, "feed_version": version},
            at=now,
        )
    return Applied(version=version, changes=count, delta=delta, index_ops=ops)


def versioned_snapshot(db: sqlite_utils.Database) -> tuple[int, bytes]:
    """The feed version a snapshot holds, and the snapshot."""
    db.conn.execute("BEGIN")
    try:
        version = feed_version(db)
        lists = [(lid, body) for lid, body in db.conn.execute("SELECT list_id, body FROM wl_lists")]
        field_ids = {lid for lid, body in lists if in_field_feed(_list_dec.decode(body))}
        wl_raw = [msgspec.Raw(body) for lid, body in lists if lid in field_ids]
        entries = [
            msgspec.Raw(body)
            for lid, body in db.conn.execute("SELECT list_id, body FROM wl_entries ORDER BY entry_id")
            if lid in field_ids
        ]
        rules = permit_rules(db)
    finally:
        db.conn.execute("COMMIT")
    return version, _enc.encode(
        {"version": version, "watchlists": wl_raw, "entries": entries, "permit_rules": rules}
    )


def entries_with_plate(db: sqlite_utils.Database, plate: str) -> list[Entry]:
    """Every entry, of any list, whose plate field is ``plate`` (a person list keeps the ID hash there)."""
    return [
        _entry_dec.decode(b)
        for (b,) in db.conn.execute("SELECT body FROM wl_entries WHERE plate=?", (plate,))
    ]


def list_summaries(db: sqlite_utils.Database) -> list[tuple[Watchlist, int]]:
    """Every list with its number of entries, by list id."""
    counts = dict(db.conn.execute("SELECT list_id, count(*) FROM wl_entries GROUP BY list_id"))
    out = []
    for (lid,) in db.conn.execute("SELECT list_id FROM wl_lists ORDER BY list_id"):
        wl = get_list(db, lid)
        if wl is not None:
            out.append((wl, counts.get(lid, 0)))
    return out


def search_entries(
    db: sqlite_utils.Database, list_id: str, plate_part: str, limit: int, offset: int
) -> tuple[list[Entry], int]:
    """A page of a list's entries whose plate holds ``plate_part`` (a canonical plate fragment, no
    wildcards), by entry id, and how many there are in all."""
    pattern = "%" + plate_part.replace("%", "").replace("_", "") + "%"
    rows = db.conn.execute(
        "SELECT body FROM wl_entries WHERE list_id=? AND plate LIKE ? ORDER BY entry_id LIMIT ? OFFSET ?",
        (list_id, pattern, limit, offset),
    )
    found = [_entry_dec.decode(b) for (b,) in rows]
    (total,) = db.conn.execute(
        "SELECT count(*) FROM wl_entries WHERE list_id=? AND plate LIKE ?", (list_id, pattern)
    ).fetchone()
    return found, total


def field_feed(db: sqlite_utils.Database) -> tuple[int, list[Watchlist], list[Entry], list[PermitRule]]:
    """The field feed (lists that are neither covert nor restricted, their entries, the permit rules)
    and the version it is, read in one transaction (the feed file is made of it)."""
    db.conn.execute("BEGIN")
    try:
        version = feed_version(db)
        lists = [_list_dec.decode(body) for (body,) in db.conn.execute("SELECT body FROM wl_lists")]
        field = [wl for wl in lists if in_field_feed(wl)]
        ids = {wl.list_id for wl in field}
        entries = [
            _entry_dec.decode(body)
            for lid, body in db.conn.execute("SELECT list_id, body FROM wl_entries")
            if lid in ids
        ]
        rules = permit_rules(db)
    finally:
        db.conn.execute("COMMIT")
    return version, field, entries, rules


def unfiled(db: sqlite_utils.Database, since: int) -> tuple[int, bool, float | None]:
    """How many feed versions follow ``since``, whether one is a bulk change, when the first was made."""
    count, first = db.conn.execute(
        "SELECT count(*), min(at) FROM feed_changes WHERE version > ?", (since,)
    ).fetchone()
    bulk = (
        db.conn.execute(
            "SELECT 1 FROM feed_changes WHERE version > ? AND instr(body, '\"bulk_changes\"') > 0 LIMIT 1",
            (since,),
        ).fetchone()
        is not None
    )
    return int(count), bulk, first


def deltas_since(db: sqlite_utils.Database, since: int, limit: int) -> tuple[int, list[bytes]] | None:
    """The feed version and every logged delta after ``since`` (their JSON), or None when they cannot
    be served as deltas (a bulk change, a hole in the log, or more than ``limit``)."""
    version = feed_version(db)
    if since >= version:
        return version, []
    if version - since > limit:
        return None
    rows = db.conn.execute(
        "SELECT version, body FROM feed_changes WHERE version > ? AND version <= ? ORDER BY version",
        (since, version),
    ).fetchall()
    if len(rows) != version - since or any(b'"bulk_changes"' in bytes(body) for _, body in rows):
        return None
    return version, [bytes(body) for _, body in rows]


class SqliteWatchlistStore:
    """``WatchlistStore`` on hub.db: the functions above, as the store's ``watchlists``."""

    feed_version = staticmethod(feed_version)
    get_list = staticmethod(get_list)
    get_entry = staticmethod(get_entry)
    list_entries = staticmethod(list_entries)
    permit_rules = staticmethod(permit_rules)
    load_all = staticmethod(load_all)
    apply_changes = staticmethod(apply_changes)
    versioned_snapshot = staticmethod(versioned_snapshot)
    field_feed = staticmethod(field_feed)
    unfiled = staticmethod(unfiled)
    deltas_since = staticmethod(deltas_since)
    list_summaries = staticmethod(list_summaries)
    entries_with_plate = staticmethod(entries_with_plate)
    search_entries = staticmethod(search_entries)
