"""Watchlists on PostgreSQL: lists (``wl_lists``), entries (``wl_entries``), the feed version and permit
rules (``hub_meta``) and the field feed's log (``feed_changes``); a change applied in the caller's
transaction with its audit record, by the rule every store shares (``central.record.watchlists.apply``).

**Feed versions in commit order.** ``apply_changes`` takes one advisory lock held to the commit before it
reads anything, so two changes (two hubs, or two jobs) never both make version N + 1, and the change that
made N commits before any other can make N + 1: an edge or a hub reading "after the version it has"
never skips one. ``versioned_snapshot`` reads the version and the lists in one statement, one snapshot.
Ids and plates are ``text COLLATE "C"`` (code-point order, as SQLite sorts them; a NUL as U+FFFD), bodies
and names as bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
import psycopg

from central.record.postgresql.audit import PgAuditStore
from central.record.postgresql.events import b, key
from central.record.watchlists import LOG_KEEP, Applied, ListIndex, LoggedChange, apply
from protocols.feed import FeedChange, in_field_feed
from protocols.matching import Entry, PermitRule, Watchlist

#: The lock every change to the lists takes (any constant unique to Cordon's watchlists).
FEED_LOCK = 0x636F72646F71
#: What the log of the field feed holds for a bulk change (logged by its size only: edges take the file).
BULK_MARK = b'"bulk_changes"'

_enc = msgspec.json.Encoder()
_list_dec = msgspec.json.Decoder(type=Watchlist)
_entry_dec = msgspec.json.Decoder(type=Entry)
_rules_dec = msgspec.json.Decoder(type=list[PermitRule])
_change_dec = msgspec.json.Decoder(type=LoggedChange)


class _Rows:
    """The watchlist rows as ``apply`` writes them."""

    @staticmethod
    def get_list(tx: psycopg.Connection, list_id: str) -> Watchlist | None:
        row = tx.execute("SELECT body FROM wl_lists WHERE list_id = %s", (key(list_id),)).fetchone()
        return _list_dec.decode(bytes(row[0])) if row else None

    @staticmethod
    def get_entry(tx: psycopg.Connection, entry_id: str) -> Entry | None:
        row = tx.execute("SELECT body FROM wl_entries WHERE entry_id = %s", (key(entry_id),)).fetchone()
        return _entry_dec.decode(bytes(row[0])) if row else None

    @staticmethod
    def list_entries(tx: psycopg.Connection, list_id: str) -> list[Entry]:
        return [
            _entry_dec.decode(bytes(body))
            for (body,) in tx.execute(
                "SELECT body FROM wl_entries WHERE list_id = %s ORDER BY entry_id", (key(list_id),)
            )
        ]

    @staticmethod
    def put_list(tx: psycopg.Connection, wl: Watchlist, now: float, actor: str) -> None:
        tx.execute(
            "INSERT INTO wl_lists (list_id, body, updated_at, updated_by) VALUES (%s,%s,%s,%s) "
            "ON CONFLICT (list_id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at, "
            "updated_by = excluded.updated_by",
            (key(wl.list_id), _enc.encode(wl), now, b(actor)),
        )

    @staticmethod
    def delete_list(tx: psycopg.Connection, list_id: str) -> list[str]:
        removed = tx.execute(
            "DELETE FROM wl_entries WHERE list_id = %s RETURNING body", (key(list_id),)
        ).fetchall()
        tx.execute("DELETE FROM wl_lists WHERE list_id = %s", (key(list_id),))
        return [_entry_dec.decode(bytes(body)).entry_id for (body,) in removed]

    @staticmethod
    def put_entry(tx: psycopg.Connection, entry: Entry, now: float, actor: str) -> None:
        tx.execute(
            "INSERT INTO wl_entries (entry_id, list_id, plate, body, updated_at, updated_by) "
            "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (entry_id) DO UPDATE SET list_id = excluded.list_id, "
            "plate = excluded.plate, body = excluded.body, updated_at = excluded.updated_at, "
            "updated_by = excluded.updated_by",
            (key(entry.entry_id), key(entry.list_id), key(entry.plate), _enc.encode(entry), now, b(actor)),
        )

    @staticmethod
    def delete_entry(tx: psycopg.Connection, entry_id: str) -> None:
        tx.execute("DELETE FROM wl_entries WHERE entry_id = %s", (key(entry_id),))

    # A run of entry changes (``BulkRows``): a statement an entry cost a round trip and a plan each, 277 s
    # for a 1,000,000-entry file; these read the run in one statement and write it by COPY.
    entry_key = staticmethod(key)

    @staticmethod
    def get_entries(tx: psycopg.Connection, entry_ids: list[str]) -> dict[str, Entry]:
        keys = {key(i): i for i in entry_ids}
        return {
            keys[found]: _entry_dec.decode(bytes(body))
            for found, body in tx.execute(
                "SELECT entry_id, body FROM wl_entries WHERE entry_id = ANY(%s::text[])", (list(keys),)
            )
        }

    @staticmethod
    def put_entries(tx: psycopg.Connection, entries: list[Entry], now: float, actor: str) -> None:
        # Staged by a binary COPY, then one upsert; the stage lives to the end of the transaction (a
        # rolled-back job takes it along) and is emptied before each run.
        tx.execute(
            'CREATE TEMP TABLE IF NOT EXISTS wl_entries_stage (entry_id text COLLATE "C", '
            'list_id text COLLATE "C", plate text COLLATE "C", body bytea) ON COMMIT DROP'
        )
        tx.execute("TRUNCATE wl_entries_stage")
        with tx.cursor() as cur:
            with cur.copy(
                "COPY wl_entries_stage (entry_id, list_id, plate, body) FROM STDIN (FORMAT BINARY)"
            ) as cp:
                cp.set_types(["text", "text", "text", "bytea"])
                for e in entries:
                    cp.write_row((key(e.entry_id), key(e.list_id), key(e.plate), _enc.encode(e)))
        tx.execute(
            "INSERT INTO wl_entries (entry_id, list_id, plate, body, updated_at, updated_by) "
            "SELECT entry_id, list_id, plate, body, %s, %s FROM wl_entries_stage "
            "ON CONFLICT (entry_id) DO UPDATE SET list_id = excluded.list_id, plate = excluded.plate, "
            "body = excluded.body, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            (now, b(actor)),
        )

    @staticmethod
    def delete_entries(tx: psycopg.Connection, entry_ids: list[str]) -> None:
        tx.execute("DELETE FROM wl_entries WHERE entry_id = ANY(%s::text[])", ([key(i) for i in entry_ids],))

    @staticmethod
    def put_permit_rules(tx: psycopg.Connection, rules: list[PermitRule]) -> None:
        _set_meta(tx, "permit_rules", _enc.encode(rules).decode())

    @staticmethod
    def feed_version(tx: psycopg.Connection) -> int:
        row = tx.execute("SELECT value FROM hub_meta WHERE key = 'feed_version'").fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def record_version(tx: psycopg.Connection, version: int, now: float, actor: str, body: bytes) -> None:
        tx.execute(
            "INSERT INTO feed_changes (version, at, actor, body) VALUES (%s,%s,%s,%s)",
            (version, now, b(actor), body),
        )
        _set_meta(tx, "feed_version", str(version))

    @staticmethod
    def log_change(tx: psycopg.Connection, body: bytes, now: float) -> int:
        # Under the feed's lock (apply_changes), held to the commit: positions follow commits.
        position = _change_position(tx) + 1
        tx.execute("INSERT INTO list_changes (position, at, body) VALUES (%s,%s,%s)", (position, now, body))
        _set_meta(tx, "list_change_position", str(position))
        tx.execute("DELETE FROM list_changes WHERE position <= %s", (position - LOG_KEEP,))
        return position

    @staticmethod
    def audit(
        tx: psycopg.Connection,
        actor: str,
        role: str,
        target: str,
        reason: str,
        detail: dict[str, Any],
        at: float,
    ) -> None:
        PgAuditStore.append(
            tx, actor, role, "watchlist.change", target=target, reason=reason, detail=detail, at=at
        )


def _change_position(tx: psycopg.Connection) -> int:
    # Kept apart from the log, so that positions never go back, whatever the log has let go.
    row = tx.execute("SELECT value FROM hub_meta WHERE key = 'list_change_position'").fetchone()
    return int(row[0]) if row else 0


def _set_meta(tx: psycopg.Connection, name: str, value: str) -> None:
    tx.execute(
        "INSERT INTO hub_meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (name, value),
    )


class PgWatchlistStore:
    """``WatchlistStore`` on PostgreSQL; every method takes the store's transaction."""

    feed_version = staticmethod(_Rows.feed_version)
    get_list = staticmethod(_Rows.get_list)
    get_entry = staticmethod(_Rows.get_entry)
    list_entries = staticmethod(_Rows.list_entries)

    @staticmethod
    def entries_with_plate(tx: psycopg.Connection, plate: str) -> list[Entry]:
        """Every entry, of any list, whose plate field is ``plate`` (a person list keeps the ID hash there)."""
        return [
            _entry_dec.decode(bytes(body))
            for (body,) in tx.execute(
                "SELECT body FROM wl_entries WHERE plate = %s ORDER BY entry_id", (key(plate),)
            )
        ]

    @staticmethod
    def permit_rules(tx: psycopg.Connection) -> list[PermitRule]:
        row = tx.execute("SELECT value FROM hub_meta WHERE key = 'permit_rules'").fetchone()
        return _rules_dec.decode(row[0]) if row else []

    @staticmethod
    def load_all(tx: psycopg.Connection) -> tuple[list[Watchlist], list[Entry], int, list[PermitRule]]:
        version, lists, entries, rules = _snapshot_rows(tx)
        return (
            [_list_dec.decode(body) for _, body in lists],
            [_entry_dec.decode(body) for _, body in entries],
            version,
            rules,
        )

    @staticmethod
    def list_summaries(tx: psycopg.Connection) -> list[tuple[Watchlist, int]]:
        """Every list with its number of entries, by list id."""
        return [
            (_list_dec.decode(bytes(body)), int(n))
            for body, n in tx.execute(
                "SELECT l.body, (SELECT count(*) FROM wl_entries e WHERE e.list_id = l.list_id) "
                "FROM wl_lists l ORDER BY l.list_id"
            )
        ]

    @staticmethod
    def search_entries(
        tx: psycopg.Connection, list_id: str, plate_part: str, limit: int, offset: int
    ) -> tuple[list[Entry], int]:
        """A page of a list's entries whose plate holds ``plate_part`` (no wildcards; ASCII letters in any
        case, as SQLite's LIKE), by entry id, and how many there are in all."""
        pattern = "%" + key(plate_part).replace("%", "").replace("_", "") + "%"
        rows = tx.execute(
            "SELECT body, count(*) OVER () FROM wl_entries WHERE list_id = %s AND plate ILIKE %s ESCAPE '' "
            "ORDER BY entry_id LIMIT %s OFFSET %s",
            (key(list_id), pattern, limit, offset),
        ).fetchall()
        if rows:
            return [_entry_dec.decode(bytes(body)) for body, _ in rows], int(rows[0][1])
        total = tx.execute(
            "SELECT count(*) FROM wl_entries WHERE list_id = %s AND plate ILIKE %s ESCAPE ''",
            (key(list_id), pattern),
        ).fetchone()
        return [], int(total[0])  # type: ignore[index]

    @staticmethod
    def apply_changes(
        tx: psycopg.Connection,
        changes: Iterable[FeedChange],
        watchlists: ListIndex,
        actor: str,
        now: float | None = None,
        role: str = "",
        reason: str = "",
    ) -> Applied:
        """Write the changes with their feed version and audit record, under the feed's lock (held to the
        commit: versions commit in order)."""
        tx.execute("SELECT pg_advisory_xact_lock(%s)", (FEED_LOCK,))
        return apply(_Rows(), tx, changes, watchlists, actor, now, role, reason)

    @staticmethod
    def change_position(tx: psycopg.Connection) -> int:
        """The newest position in the log of list changes (0: none yet)."""
        return _change_position(tx)

    @staticmethod
    def changes_after(
        tx: psycopg.Connection, position: int, limit: int
    ) -> list[tuple[int, LoggedChange]] | None:
        """The logged changes after ``position``, oldest first, at most ``limit``; None when the log cannot
        give them all (the next one was let go, or ``position`` is past the log: load the index anew).
        Positions commit in order, so one not yet committed is never skipped by a reader."""
        rows = tx.execute(
            "SELECT position, body FROM list_changes WHERE position > %s ORDER BY position LIMIT %s",
            (position, limit),
        ).fetchall()
        if (rows and rows[0][0] != position + 1) or (not rows and position > _change_position(tx)):
            return None
        return [(int(pos), _change_dec.decode(bytes(body))) for pos, body in rows]

    @staticmethod
    def versioned_snapshot(tx: psycopg.Connection) -> tuple[int, bytes]:
        """The feed version a snapshot holds, and the snapshot (the field feed's lists and their entries)."""
        version, lists, entries, rules = _snapshot_rows(tx)
        field_ids = {lid for lid, body in lists if in_field_feed(_list_dec.decode(body))}
        return version, _enc.encode(
            {
                "version": version,
                "watchlists": [msgspec.Raw(body) for lid, body in lists if lid in field_ids],
                "entries": [msgspec.Raw(body) for lid, body in entries if lid in field_ids],
                "permit_rules": rules,
            }
        )

    @staticmethod
    def field_feed(tx: psycopg.Connection) -> tuple[int, list[Watchlist], list[Entry], list[PermitRule]]:
        """The field feed (lists neither covert nor restricted, their entries, the permit rules) and the
        version it is, read by one statement (the feed file is made of it)."""
        version, lists, entries, rules = _snapshot_rows(tx)
        field = [wl for wl in (_list_dec.decode(body) for _, body in lists) if in_field_feed(wl)]
        ids = {wl.list_id for wl in field}
        return version, field, [_entry_dec.decode(body) for lid, body in entries if lid in ids], rules

    @staticmethod
    def unfiled(tx: psycopg.Connection, since: int) -> tuple[int, bool, float | None]:
        """How many feed versions follow ``since``, whether one is a bulk change, when the first was made."""
        count, bulk, first = tx.execute(
            "SELECT count(*), coalesce(bool_or(position(%s IN body) > 0), false), min(at) "
            "FROM feed_changes WHERE version > %s",
            (BULK_MARK, since),
        ).fetchone()  # type: ignore[misc]
        return int(count), bool(bulk), first

    @staticmethod
    def deltas_since(tx: psycopg.Connection, since: int, limit: int) -> tuple[int, list[bytes]] | None:
        """The feed version and every logged delta after ``since`` (their JSON), or None when they cannot
        be served as deltas (a bulk change, a hole in the log, or more than ``limit``)."""
        version = _Rows.feed_version(tx)
        if since >= version:
            return version, []
        if version - since > limit:
            return None
        rows = tx.execute(
            "SELECT body FROM feed_changes WHERE version > %s AND version <= %s ORDER BY version",
            (since, version),
        ).fetchall()
        bodies = [bytes(body) for (body,) in rows]
        if len(bodies) != version - since or any(BULK_MARK in body for body in bodies):
            return None
        return version, bodies


def _snapshot_rows(
    tx: psycopg.Connection,
) -> tuple[int, list[tuple[str, bytes]], list[tuple[str, bytes]], list[PermitRule]]:
    """The version, the lists, the entries (by entry id) and the permit rules, read by one statement: one
    snapshot, whatever commits meanwhile."""
    version, rules = 0, []
    lists: list[tuple[str, bytes]] = []
    entries: list[tuple[str, bytes]] = []
    for kind, list_id, body in tx.execute(
        "SELECT kind, list_id, body FROM ("
        "SELECT 0 AS kind, key AS list_id, convert_to(value, 'UTF8') AS body, ''::text COLLATE \"C\" AS sort "
        "FROM hub_meta WHERE key IN ('feed_version', 'permit_rules') "
        "UNION ALL SELECT 1, list_id, body, list_id FROM wl_lists "
        "UNION ALL SELECT 2, list_id, body, entry_id FROM wl_entries) t ORDER BY kind, sort"
    ):
        if kind == 0:
            if list_id == "feed_version":
                version = int(bytes(body).decode())
            else:
                rules = _rules_dec.decode(bytes(body))
        elif kind == 1:
            lists.append((list_id, bytes(body)))
        else:
            entries.append((list_id, bytes(body)))
    return version, lists, entries, rules
