"""Watchlists on hub.db: lists (``wl_lists``), entries (``wl_entries``), the feed version and permit
rules (``hub_meta``) and the field feed's log (``feed_changes``); a change applied in the writer's
transaction with its audit record (see ``central.watchlists.lists`` for the flow)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
import sqlite_utils

from central.record.sqlite import audit
from central.record.watchlists import LOG_KEEP, Applied, ListIndex, LoggedChange, apply
from protocols.feed import FeedChange, in_field_feed
from protocols.matching import Entry, PermitRule, Watchlist

_enc = msgspec.json.Encoder()
_list_dec = msgspec.json.Decoder(type=Watchlist)
_entry_dec = msgspec.json.Decoder(type=Entry)
_rules_dec = msgspec.json.Decoder(type=list[PermitRule])
_change_dec = msgspec.json.Decoder(type=LoggedChange)


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


def change_position(db: sqlite_utils.Database) -> int:
    """The newest position in the log of list changes (0: none yet). Kept apart from the log, so that
    positions never go back, whatever the log has let go."""
    row = db.conn.execute("SELECT value FROM hub_meta WHERE key='list_change_position'").fetchone()
    return int(row[0]) if row else 0


def changes_after(
    db: sqlite_utils.Database, position: int, limit: int
) -> list[tuple[int, LoggedChange]] | None:
    """The logged changes after ``position``, oldest first, at most ``limit``; None when the log cannot
    give them all (the next one was let go, or ``position`` is past the log: load the index anew)."""
    rows = db.conn.execute(
        "SELECT position, body FROM list_changes WHERE position > ? ORDER BY position LIMIT ?",
        (position, limit),
    ).fetchall()
    if (rows and rows[0][0] != position + 1) or (not rows and position > change_position(db)):
        return None
    return [(int(pos), _change_dec.decode(body)) for pos, body in rows]


class _Rows:
    """hub.db's watchlist rows, as ``central.record.watchlists.apply`` writes them."""

    get_list = staticmethod(_get_list)

    @staticmethod
    def get_entry(db: sqlite_utils.Database, entry_id: str) -> Entry | None:
        return get_entry(db, entry_id)

    @staticmethod
    def list_entries(db: sqlite_utils.Database, list_id: str) -> list[Entry]:
        return list_entries(db, list_id)

    @staticmethod
    def put_list(db: sqlite_utils.Database, wl: Watchlist, now: float, actor: str) -> None:
        db.conn.execute(
            "INSERT OR REPLACE INTO wl_lists (list_id, body, updated_at, updated_by) VALUES (?,?,?,?)",
            (wl.list_id, _enc.encode(wl), now, actor),
        )

    @staticmethod
    def delete_list(db: sqlite_utils.Database, list_id: str) -> list[str]:
        ids = [i for (i,) in db.conn.execute("SELECT entry_id FROM wl_entries WHERE list_id=?", (list_id,))]
        db.conn.execute("DELETE FROM wl_entries WHERE list_id=?", (list_id,))
        db.conn.execute("DELETE FROM wl_lists WHERE list_id=?", (list_id,))
        return ids

    @staticmethod
    def put_entry(db: sqlite_utils.Database, entry: Entry, now: float, actor: str) -> None:
        db.conn.execute(
            "INSERT OR REPLACE INTO wl_entries (entry_id, list_id, plate, body, updated_at, updated_by) "
            "VALUES (?,?,?,?,?,?)",
            (entry.entry_id, entry.list_id, entry.plate, _enc.encode(entry), now, actor),
        )

    @staticmethod
    def delete_entry(db: sqlite_utils.Database, entry_id: str) -> None:
        db.conn.execute("DELETE FROM wl_entries WHERE entry_id=?", (entry_id,))

    @staticmethod
    def put_permit_rules(db: sqlite_utils.Database, rules: list[PermitRule]) -> None:
        db.conn.execute(
            "INSERT OR REPLACE INTO hub_meta (key, value) VALUES ('permit_rules', ?)",
            (_enc.encode(rules).decode(),),
        )

    @staticmethod
    def feed_version(db: sqlite_utils.Database) -> int:
        return feed_version(db)

    @staticmethod
    def record_version(db: sqlite_utils.Database, version: int, now: float, actor: str, body: bytes) -> None:
        db.conn.execute(
            "INSERT INTO feed_changes (version, at, actor, body) VALUES (?,?,?,?)",
            (version, now, actor, body),
        )
        db.conn.execute(
            "INSERT OR REPLACE INTO hub_meta (key, value) VALUES ('feed_version', ?)", (str(version),)
        )

    @staticmethod
    def log_change(db: sqlite_utils.Database, body: bytes, now: float) -> int:
        position = change_position(db) + 1
        db.conn.execute("INSERT INTO list_changes (position, at, body) VALUES (?,?,?)", (position, now, body))
        db.conn.execute(
            "INSERT OR REPLACE INTO hub_meta (key, value) VALUES ('list_change_position', ?)",
            (str(position),),
        )
        db.conn.execute("DELETE FROM list_changes WHERE position <= ?", (position - LOG_KEEP,))
        return position

    @staticmethod
    def audit(
        db: sqlite_utils.Database,
        actor: str,
        role: str,
        target: str,
        reason: str,
        detail: dict[str, Any],
        at: float,
    ) -> None:
        audit.append(db, actor, role, "watchlist.change", target=target, reason=reason, detail=detail, at=at)


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
    and an audit record of the whole change (in the same transaction; the rule: ``record.watchlists.apply``)."""
    return apply(_Rows(), db, changes, watchlists, actor, now, role, reason)


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
    change_position = staticmethod(change_position)
    changes_after = staticmethod(changes_after)
    list_summaries = staticmethod(list_summaries)
    entries_with_plate = staticmethod(entries_with_plate)
    search_entries = staticmethod(search_entries)
