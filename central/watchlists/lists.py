"""Watchlists at the hub: storage, the field feed's versions, and the hub's live index.

Every change goes through the store's writer thread as one job: the rows change, the hub's index
follows, and when the change touches the field feed (lists that are neither covert nor
restricted) it becomes the next feed version, kept in ``feed_changes``. After the commit the
delta is published to the edges and the retained feed version is updated. Matching runs in the
same writer thread, so it never sees a half-applied change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

import msgspec
import sqlite_utils

from central.people import audit
from central.record.store import HubStore
from central.watchlists.index import HubWatchlists
from protocols import topics
from protocols.feed import (
    EntryDelete,
    EntryUpsert,
    FeedChange,
    FeedDelta,
    FeedVersion,
    ListDelete,
    ListUpsert,
    PermitRules,
    in_field_feed,
)
from protocols.matching import Entry, PermitRule, Watchlist
from protocols.messages import SCHEMA_VERSION, encode

log = logging.getLogger(__name__)

#: A change larger than this is not sent as a delta (an MQTT message must stay small): edges see
#: the new retained version, no delta arrives, and they fetch a snapshot.
MAX_DELTA_CHANGES = 1000
#: Changes larger than this rebuild the hub's index from the database instead of patching it.
REBUILD_ABOVE = 20_000

_enc = msgspec.json.Encoder()
_list_dec = msgspec.json.Decoder(type=Watchlist)
_entry_dec = msgspec.json.Decoder(type=Entry)
_rules_dec = msgspec.json.Decoder(type=list[PermitRule])


class ListError(ValueError):
    """A change that cannot be applied (unknown list, entry of another list...)."""


class NotFound(ListError):
    pass


@dataclass(slots=True)
class Applied:
    version: int
    changes: int
    delta: FeedDelta | None = None
    index_ops: list[Callable[[], None]] = field(default_factory=list)


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
    watchlists: HubWatchlists,
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


class ListService:
    """Applies changes through the store's writer and tells the edges."""

    def __init__(self, store: HubStore, watchlists: HubWatchlists, publish: Callable[..., None]) -> None:
        self.store = store
        self.watchlists = watchlists
        self._publish = publish
        self._snapshot: tuple[int, bytes] | None = None
        self._snapshot_lock = asyncio.Lock()
        #: called (on the event loop) after every new feed version is published
        self.on_version: list[Callable[[int], None]] = []

    def load(self) -> int:
        """At start-up, from the writer thread's point of view: fill the index from the database."""

        def job(db: sqlite_utils.Database) -> int:
            lists, entries, version, rules = load_all(db)
            self.watchlists.build(lists, entries, version, rules)
            return len(entries)

        return self.store.submit(job).result()

    async def apply(self, changes: list[FeedChange], actor: str) -> Applied:
        """Apply changes atomically; publish the feed delta after the commit."""

        def job(db: sqlite_utils.Database) -> Applied:
            applied = apply_changes(db, changes, self.watchlists, actor)
            if len(changes) > REBUILD_ABOVE:
                # Patching a large index entry by entry would grow its overlay past sense: build anew.
                self.watchlists.build(*load_all(db))
            else:
                for op in applied.index_ops:
                    op()
            return applied

        try:
            applied = await self.store.run(job)
        except ListError:
            raise
        except Exception:
            # The index may have moved while the commit failed: make it match the database again.
            log.exception("watchlist change not committed; reloading the index")
            await self.store.run(lambda db: self.watchlists.build(*load_all(db)))
            raise
        if applied.delta is not None:
            self.publish_delta(applied.delta)
        return applied

    def publish_delta(self, delta: FeedDelta) -> None:
        if len(delta.changes) <= MAX_DELTA_CHANGES:
            self._publish(topics.feed_delta(), encode(delta), qos=1)
        else:
            log.info(
                "feed version %d has %d changes: edges will fetch a snapshot",
                delta.version,
                len(delta.changes),
            )
        self.publish_version(delta.version)

    def publish_version(self, version: int) -> None:
        message = FeedVersion(
            v=SCHEMA_VERSION, version=version, entries=len(self.watchlists), sent_at=time.time()
        )
        self._publish(topics.feed_version(), encode(message), qos=1, retain=True)
        for hook in self.on_version:
            hook(version)

    async def snapshot(self) -> bytes:
        """The field feed as JSON, built once per feed version however many edges ask at once."""
        async with self._snapshot_lock:
            # Keyed by the version the snapshot itself holds: a cached one is served only while it is current.
            if self._snapshot is None or self._snapshot[0] != self.watchlists.index.feed_version:
                self._snapshot = await asyncio.to_thread(self.store.read, versioned_snapshot)
            return self._snapshot[1]
