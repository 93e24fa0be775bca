"""What the watchlist store takes and gives, whatever holds it: its errors, what applying a change gives
back, the hub's index as the store drives it (the index itself is ``central.watchlists.index``), and the
rule of applying a change (``apply``), which every store runs over its own rows.

**The log of list changes.** Every applied change (covert and restricted lists included, which never
enter the field feed) is logged at the next position, in commit order, as a ``LoggedChange``: what a
hub's index must do to follow it. A hub sharing the store with others reads the changes they made
after the position its index holds and applies them (``index_ops``, the same operations the change made
on the index of the hub that applied it), so a list changed through one hub's API matches on every hub
(central/watchlists/follow.py). The log keeps the last ``LOG_KEEP`` changes; a hub further behind
loads the whole index again.

**Runs of entry changes.** A store whose every statement costs a round trip (PostgreSQL) writes a run of
consecutive entry changes (a watchlist file's load: a million of them) with one read and one write of each
kind (``BulkRows``); ``apply`` decides each change of the run as it decides one alone, so what is written,
logged, audited and refused is the same either way."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, runtime_checkable

import msgspec

from protocols.errors import CordonError
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

#: A change larger than this is not sent as a delta (an MQTT message must stay small): edges see
#: the new retained version, no delta arrives, and they fetch a snapshot.
MAX_DELTA_CHANGES = 1000
#: A change larger than this is logged without its changes: the hubs following it load their index anew.
MAX_LOGGED_CHANGES = 20_000
#: The log of list changes keeps this many of the newest (a hub further behind loads its index anew).
LOG_KEEP = 1000


class ListError(CordonError, ValueError):
    """A change that cannot be applied (unknown list, entry of another list...)."""


class NotFound(ListError):
    pass


@dataclass(slots=True)
class Applied:
    version: int
    changes: int
    delta: FeedDelta | None = None
    index_ops: list[Callable[[], None]] = field(default_factory=list)
    position: int | None = None
    """The change's position in the log of list changes (None: nothing changed, nothing logged)."""


class LoggedChange(msgspec.Struct, kw_only=True):
    """One applied change as a hub's index follows it (the log of list changes)."""

    version: int
    """The feed version after the change."""
    changes: list[FeedChange] | None
    """What changed, in order (covert lists too); None: too many to log, load the index anew."""
    dropped: dict[str, list[str]] = {}
    """The entries each ``ListDelete`` removed, by list id."""


class EntryIndex(Protocol):
    def upsert(self, entry: Entry) -> None: ...

    def remove(self, entry_id: str) -> None: ...


class ListIndex(Protocol):
    """The hub's live matching index as a change to the lists moves it (after the commit, by ``index_ops``)."""

    @property
    def index(self) -> EntryIndex: ...

    def set_list(self, wl: Watchlist) -> None: ...

    def drop_list(self, list_id: str, entry_ids: list[str]) -> None: ...

    def set_permit_rules(self, rules: list[PermitRule]) -> None: ...

    def set_feed_version(self, version: int) -> None: ...


# -- applying a change, whatever holds the rows -----------------------------------------------------------
# Each store gives its rows through ``ListRows``; ``apply`` is the one rule of what a change writes, what
# the field feed gets, and what is audited (``WatchlistStore.apply_changes`` on SQLite and PostgreSQL).


class ListRows(Protocol):
    """The watchlist store's rows as ``apply`` reads and writes them, inside the caller's transaction."""

    def get_list(self, tx: Any, list_id: str) -> Watchlist | None: ...

    def get_entry(self, tx: Any, entry_id: str) -> Entry | None: ...

    def list_entries(self, tx: Any, list_id: str) -> list[Entry]: ...

    def put_list(self, tx: Any, wl: Watchlist, now: float, actor: str) -> None: ...

    def delete_list(self, tx: Any, list_id: str) -> list[str]:
        """Remove the list and its entries; the ids of the entries removed."""
        ...

    def put_entry(self, tx: Any, entry: Entry, now: float, actor: str) -> None: ...

    def delete_entry(self, tx: Any, entry_id: str) -> None: ...

    def put_permit_rules(self, tx: Any, rules: list[PermitRule]) -> None: ...

    def feed_version(self, tx: Any) -> int: ...

    def record_version(self, tx: Any, version: int, now: float, actor: str, body: bytes) -> None:
        """Log a new feed version (``body``: its delta, or its size) and make it the current one."""
        ...

    def log_change(self, tx: Any, body: bytes, now: float) -> int:
        """Log a change (a ``LoggedChange``) at the next position of the log of list changes, keeping the
        last ``LOG_KEEP``; its position. Positions follow commits (the store's writer, or its lock)."""
        ...

    def audit(
        self, tx: Any, actor: str, role: str, target: str, reason: str, detail: dict[str, Any], at: float
    ) -> None:
        """Append the audit record of a change."""
        ...


@runtime_checkable
class BulkRows(ListRows, Protocol):
    """A store whose statements cost a round trip each (PostgreSQL) also writes a run of entry changes as
    a few set-based statements; ``apply`` gives it runs of at least ``BULK_MIN`` entry changes."""

    def entry_key(self, entry_id: str) -> str:
        """The id as the store keys it (two ids with one key are one row)."""
        ...

    def get_entries(self, tx: Any, entry_ids: list[str]) -> dict[str, Entry]:
        """The stored entries of those ids (as ``get_entry`` gives them), by the id asked for."""
        ...

    def put_entries(self, tx: Any, entries: list[Entry], now: float, actor: str) -> None:
        """``put_entry`` for each (their keys all differ)."""
        ...

    def delete_entries(self, tx: Any, entry_ids: list[str]) -> None:
        """``delete_entry`` for each (their keys all differ)."""
        ...


#: The fewest consecutive entry changes a ``BulkRows`` store writes as one run, and the most.
BULK_MIN = 64
BULK_MAX = 50_000


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


_enc = msgspec.json.Encoder()


def apply(
    rows: ListRows,
    tx: Any,
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

    def get_list(list_id: str) -> Watchlist | None:
        if list_id not in cache:
            cache[list_id] = rows.get_list(tx, list_id)
        return cache[list_id]

    def unchanged(change: FeedChange) -> bool:
        """Whether an upsert would write exactly what is stored already."""
        if isinstance(change, ListUpsert):
            return get_list(change.watchlist.list_id) == change.watchlist
        if isinstance(change, EntryUpsert):
            return rows.get_entry(tx, change.entry.entry_id) == change.entry
        return False

    field_changes: list[FeedChange] = []
    done: list[FeedChange] = []
    dropped: dict[str, list[str]] = {}
    count = 0
    kinds: dict[str, int] = {}
    touched: set[str] = set()

    def took(change: FeedChange) -> None:
        nonlocal count
        count += 1
        kind = type(change).__name__
        kinds[kind] = kinds.get(kind, 0) + 1
        touched.add(_target_of(change))
        done.append(change)

    def entry_run(run: list[EntryUpsert | EntryDelete]) -> None:
        """The entry changes of ``run`` (their keys all differ) as one by one below, with one read of the
        entries they touch and one write of each kind (``BulkRows``)."""
        assert bulk_rows is not None  # only then are there runs
        stored = bulk_rows.get_entries(tx, [_entry_id(c) for c in run])
        puts: list[Entry] = []
        deletes: list[str] = []
        for change in run:
            if isinstance(change, EntryUpsert):
                entry = change.entry
                previous = stored.get(entry.entry_id)
                if previous == entry:
                    continue  # unchanged: as ``unchanged`` above
                took(change)
                owner = get_list(entry.list_id)
                if owner is None:
                    raise NotFound(f"entry {entry.entry_id!r}: no list {entry.list_id!r}")
                if previous is not None and previous.list_id != entry.list_id:
                    raise ListError(f"entry {entry.entry_id!r} belongs to list {previous.list_id!r}")
                puts.append(entry)
                if in_field_feed(owner):
                    field_changes.append(change)
            else:
                took(change)
                previous = stored.get(change.entry_id)
                if previous is None:
                    raise NotFound(f"no entry {change.entry_id!r}")
                deletes.append(change.entry_id)
                owner = get_list(previous.list_id)
                if owner is not None and in_field_feed(owner):
                    field_changes.append(change)
        if deletes:
            bulk_rows.delete_entries(tx, deletes)
        if puts:
            bulk_rows.put_entries(tx, puts, now, actor)

    pending = list(changes)
    bulk_rows = rows if isinstance(rows, BulkRows) else None
    at = 0
    while at < len(pending):
        run = _entry_run(bulk_rows, pending, at) if bulk_rows is not None else []
        if run:
            entry_run(run)
            at += len(run)
            continue
        change = pending[at]
        at += 1
        if unchanged(change):
            continue  # the same list or entry again (a restart re-applying its files): no new version
        took(change)
        if isinstance(change, ListUpsert):
            wl = change.watchlist
            old = get_list(wl.list_id)
            rows.put_list(tx, wl, now, actor)
            cache[wl.list_id] = wl
            was, now_in = old is not None and in_field_feed(old), in_field_feed(wl)
            if now_in:
                field_changes.append(change)
                if not was:  # a list coming into the field feed brings its entries along
                    field_changes.extend(EntryUpsert(entry=e) for e in rows.list_entries(tx, wl.list_id))
            elif was:
                field_changes.append(ListDelete(list_id=wl.list_id))
        elif isinstance(change, ListDelete):
            old = get_list(change.list_id)
            if old is None:
                raise NotFound(f"no list {change.list_id!r}")
            dropped[change.list_id] = rows.delete_list(tx, change.list_id)
            cache[change.list_id] = None
            if in_field_feed(old):
                field_changes.append(change)
        elif isinstance(change, EntryUpsert):
            entry = change.entry
            owner = get_list(entry.list_id)
            if owner is None:
                raise NotFound(f"entry {entry.entry_id!r}: no list {entry.list_id!r}")
            previous = rows.get_entry(tx, entry.entry_id)
            if previous is not None and previous.list_id != entry.list_id:
                raise ListError(f"entry {entry.entry_id!r} belongs to list {previous.list_id!r}")
            rows.put_entry(tx, entry, now, actor)
            if in_field_feed(owner):
                field_changes.append(change)
        elif isinstance(change, PermitRules):
            rows.put_permit_rules(tx, list(change.rules))
            field_changes.append(change)  # edges check permits offline too
        elif isinstance(change, EntryDelete):
            previous = rows.get_entry(tx, change.entry_id)
            if previous is None:
                raise NotFound(f"no entry {change.entry_id!r}")
            rows.delete_entry(tx, change.entry_id)
            owner = get_list(previous.list_id)
            if owner is not None and in_field_feed(owner):
                field_changes.append(change)
    version = rows.feed_version(tx)
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
        rows.record_version(tx, version, now, actor, body)
    logged = LoggedChange(version=version, changes=done, dropped=dropped)
    ops = index_ops(logged, watchlists)
    position = None
    if count:
        whole = count + sum(len(ids) for ids in dropped.values()) <= MAX_LOGGED_CHANGES
        position = rows.log_change(
            tx, _enc.encode(logged if whole else LoggedChange(version=version, changes=None)), now
        )
        rows.audit(
            tx,
            actor,
            role,
            ",".join(sorted(touched))[:500],
            reason,
            {"changes": count, "by_kind": kinds, "feed_version": version},
            now,
        )
    return Applied(version=version, changes=count, delta=delta, index_ops=ops, position=position)


def _entry_id(change: EntryUpsert | EntryDelete) -> str:
    return change.entry.entry_id if isinstance(change, EntryUpsert) else change.entry_id


def _entry_run(rows: BulkRows, changes: list[FeedChange], at: int) -> list[EntryUpsert | EntryDelete]:
    """The entry changes from ``at`` that a ``BulkRows`` store writes as one run: consecutive, at most
    ``BULK_MAX``, up to the first whose key repeats (it must see the earlier one's write); none when fewer
    than ``BULK_MIN``."""
    run: list[EntryUpsert | EntryDelete] = []
    keys: set[str] = set()
    for i in range(at, min(len(changes), at + BULK_MAX)):
        change = changes[i]
        if not isinstance(change, (EntryUpsert, EntryDelete)):
            break
        k = rows.entry_key(_entry_id(change))
        if k in keys:
            break
        keys.add(k)
        run.append(change)
    return run if len(run) >= BULK_MIN else []


def index_ops(change: LoggedChange, watchlists: ListIndex) -> list[Callable[[], None]]:
    """What a change does to a hub's index, in order: the hub that applies it runs these after its job's
    writes, the others when they read it from the log (a change whose ``changes`` were not logged
    moves the feed version only: its readers load their index anew)."""
    ops: list[Callable[[], None]] = []
    for c in change.changes or []:
        if isinstance(c, ListUpsert):
            ops.append(partial(watchlists.set_list, c.watchlist))
        elif isinstance(c, ListDelete):
            ops.append(partial(watchlists.drop_list, c.list_id, change.dropped.get(c.list_id, [])))
        elif isinstance(c, EntryUpsert):
            ops.append(partial(watchlists.index.upsert, c.entry))
        elif isinstance(c, PermitRules):
            ops.append(partial(watchlists.set_permit_rules, list(c.rules)))
        elif isinstance(c, EntryDelete):
            ops.append(partial(watchlists.index.remove, c.entry_id))
    ops.append(partial(watchlists.set_feed_version, change.version))
    return ops
