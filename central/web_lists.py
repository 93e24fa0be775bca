"""Watchlist management API and the field feed's snapshot endpoint (the same functions the CLI uses)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import msgspec
from aiohttp import web

from protocols import plates
from protocols.feed import EntryDelete, EntryUpsert, ListDelete, ListUpsert
from protocols.matching import Entry, ListAction, ListKind, MatchKind, Watchlist
from runtime.web import Access, Rule, json_error, principal_of

from . import audit, importer, keys
from .lists import ListError, NotFound, get_entry, get_list, list_entries
from .users import LIST_WRITERS, STAFF

POLICY: dict[str, Rule] = {
    "watchlists": STAFF,
    "watchlist_save": LIST_WRITERS,
    "watchlist_delete": LIST_WRITERS,
    "entries": STAFF,
    "entry_save": LIST_WRITERS,
    "entry_delete": LIST_WRITERS,
    "entry_expire": LIST_WRITERS,
    "watchlist_import": LIST_WRITERS,
    "watchlist_export": LIST_WRITERS,
    "feed_status": STAFF,
    "upstream_status": STAFF,
    "feed_snapshot": Access.EDGE,
}

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[^\s/]+$")]


class ListInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    list_id: Id
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kind: ListKind = ListKind.VEHICLE
    action: ListAction = ListAction.INTERCEPT
    priority: Annotated[int, msgspec.Meta(ge=0, le=100)] = 50
    restricted: bool = False
    alert_kinds: frozenset[MatchKind] = frozenset({MatchKind.EXACT, MatchKind.EQUIVALENT})
    max_swaps: Annotated[int, msgspec.Meta(ge=0, le=16)] = 2
    valid_from: float | None = None
    valid_until: float | None = None
    source: Annotated[str, msgspec.Meta(max_length=200)] = ""
    owner: Annotated[str, msgspec.Meta(max_length=200)] = ""


class EntryInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    plate: Annotated[str, msgspec.Meta(max_length=32)] = ""
    """For a vehicle list; a person list takes ``id_number`` (hashed here, never stored) or ``id_hash``."""
    id_number: Annotated[str, msgspec.Meta(min_length=4, max_length=32)] | None = None
    id_hash: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    entry_id: Id | None = None
    colour: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    vehicle_type: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    case_ref: Annotated[str, msgspec.Meta(max_length=200)] = ""
    valid_from: float | None = None
    valid_until: float | None = None


def normalize_pattern(raw: str) -> str:
    """A plate, or a pattern whose literal runs are normalized like plates and whose * and ? stay."""
    out: list[str] = []
    literal: list[str] = []
    for ch in raw:
        if ch in "*?":
            out.append(plates.normalize("".join(literal)).plate if literal else "")
            out.append(ch)
            literal = []
        else:
            literal.append(ch)
    if literal:
        out.append(plates.normalize("".join(literal)).plate)
    return "".join(out)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json")


async def _body(request: web.Request, kind: type) -> Any:
    try:
        return msgspec.json.decode(await request.read(), type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None


def _actor(request: web.Request) -> str:
    principal = principal_of(request)
    return principal.name if principal else "unknown"


async def _apply(request: web.Request, changes: list[Any]) -> dict[str, Any]:
    try:
        applied = await request.app[keys.LISTS].apply(changes, _actor(request))
    except NotFound as exc:
        raise json_error(web.HTTPNotFound, str(exc)) from None
    except ListError as exc:
        raise json_error(web.HTTPConflict, str(exc)) from None
    return {"feed_version": applied.version, "changes": applied.changes}


async def watchlists(request: web.Request) -> web.Response:
    def q(db: Any) -> list[dict[str, Any]]:
        counts = dict(db.conn.execute("SELECT list_id, count(*) FROM wl_entries GROUP BY list_id"))
        out = []
        for (lid,) in db.conn.execute("SELECT list_id FROM wl_lists ORDER BY list_id"):
            wl = get_list(db, lid)
            out.append({"watchlist": wl, "entries": counts.get(lid, 0)})
        return out

    return _json({"watchlists": await asyncio.to_thread(request.app[keys.STORE].read, q)})


async def watchlist_save(request: web.Request) -> web.Response:
    data: ListInput = await _body(request, ListInput)
    wl = Watchlist(**msgspec.structs.asdict(data))
    return _json(await _apply(request, [ListUpsert(watchlist=wl)]))


async def watchlist_delete(request: web.Request) -> web.Response:
    return _json(await _apply(request, [ListDelete(list_id=request.match_info["list_id"])]))


async def entries(request: web.Request) -> web.Response:
    list_id = request.match_info["list_id"]
    needle = request.query.get("q", "").strip()
    try:
        limit = max(1, min(int(request.query.get("limit", "100")), 1000))
    except ValueError:
        raise json_error(web.HTTPBadRequest, "limit must be a whole number") from None

    def q(db: Any) -> list[Entry] | None:
        if get_list(db, list_id) is None:
            return None
        pattern = "%" + normalize_pattern(needle).replace("%", "").replace("_", "") + "%"
        rows = db.conn.execute("SELECT body FROM wl_entries WHERE list_id=? AND plate LIKE ? ORDER BY entry_id LIMIT ?",
                               (list_id, pattern, limit))
        return [msgspec.json.decode(b, type=Entry) for (b,) in rows]

    found = await asyncio.to_thread(request.app[keys.STORE].read, q)
    if found is None:
        raise json_error(web.HTTPNotFound, f"no list {list_id!r}")
    return _json({"entries": found})


async def entry_save(request: web.Request) -> web.Response:
    list_id = request.match_info["list_id"]
    data: EntryInput = await _body(request, EntryInput)
    wl = await asyncio.to_thread(request.app[keys.STORE].read, lambda db: get_list(db, list_id))
    if wl is not None and wl.kind == ListKind.PERSON:
        return await _person_entry_save(request, list_id, data)
    if data.id_number or data.id_hash:
        raise json_error(web.HTTPBadRequest, "id_number and id_hash belong to person lists only")
    plate = normalize_pattern(data.plate)
    if not plate.strip("*?"):
        raise json_error(web.HTTPBadRequest, "plate has no readable characters")
    colour = None
    if data.colour:
        parsed = plates.parse_colour(data.colour)
        if parsed is None:
            raise json_error(web.HTTPBadRequest, f"unknown plate colour {data.colour!r}")
        colour = parsed.value
    if data.valid_from is not None and data.valid_until is not None and data.valid_from >= data.valid_until:
        raise json_error(web.HTTPBadRequest, "valid_from must be before valid_until")
    entry = Entry(entry_id=data.entry_id or f"{list_id}:{plate}", list_id=list_id, plate=plate, colour=colour,
                  vehicle_type=data.vehicle_type, reason=data.reason, case_ref=data.case_ref,
                  valid_from=data.valid_from, valid_until=data.valid_until, created_by=_actor(request))
    result = await _apply(request, [EntryUpsert(entry=entry)])
    return _json({**result, "entry": entry})


async def _person_entry_save(request: web.Request, list_id: str, data: EntryInput) -> web.Response:
    """A person-list entry holds the subject's keyed ID hash (the deployment secret, as at the edges), never
    the number: the same hash the edges compute for a quick-test subject, so they match offline."""
    from protocols.kits import KitError, hash_id_number, id_hash_params, last4

    if data.plate or bool(data.id_number) == bool(data.id_hash):
        raise json_error(web.HTTPBadRequest, "a person-list entry takes exactly one of id_number or id_hash (no plate)")
    if data.id_hash:
        try:
            id_hash_params(data.id_hash)
        except KitError as exc:
            raise json_error(web.HTTPBadRequest, str(exc)) from None
        hashed, shown = data.id_hash, ""
    else:
        secret_file = request.app[keys.SETTINGS].kits.id_secret_file
        if not secret_file:
            raise json_error(web.HTTPBadRequest, "kits.id_secret_file is not configured: send id_hash instead")
        secret = (await asyncio.to_thread(Path(secret_file).read_bytes)).strip()
        hashed = await asyncio.to_thread(hash_id_number, data.id_number or "", secret)
        shown = last4(data.id_number or "")
    entry = Entry(entry_id=data.entry_id or f"{list_id}:id-{hashed[-16:]}", list_id=list_id, plate=hashed,
                  reason=data.reason, case_ref=data.case_ref, valid_from=data.valid_from, valid_until=data.valid_until,
                  created_by=_actor(request))
    result = await _apply(request, [EntryUpsert(entry=entry)])
    return _json({**result, "entry": entry, "id_last4": shown})


async def entry_delete(request: web.Request) -> web.Response:
    return _json(await _apply(request, [EntryDelete(entry_id=request.match_info["entry_id"])]))


async def entry_expire(request: web.Request) -> web.Response:
    entry_id = request.match_info["entry_id"]
    entry = await asyncio.to_thread(request.app[keys.STORE].read, lambda db: get_entry(db, entry_id))
    if entry is None:
        raise json_error(web.HTTPNotFound, f"no entry {entry_id!r}")
    expired = msgspec.structs.replace(entry, valid_until=time.time())
    return _json({**await _apply(request, [EntryUpsert(entry=expired)]), "entry": expired})


async def watchlist_import(request: web.Request) -> web.Response:
    """Import a CSV or JSON file into a list, atomically: all rows, or (skip_invalid) all good rows, or none.

    ``mode=replace`` (default) makes the list hold exactly the file's entries; ``merge`` adds and
    updates only. ``create=1`` creates a missing list (name = id, intercept, priority 50).
    """
    list_id = request.match_info["list_id"]
    fmt = request.query.get("format", "csv")
    mode = request.query.get("mode", "replace")
    if fmt not in ("csv", "json") or mode not in ("replace", "merge"):
        raise json_error(web.HTTPBadRequest, "format must be csv or json; mode replace or merge")
    skip_invalid = request.query.get("skip_invalid") in ("1", "true", "yes")
    data = await _read_capped(request, request.app[keys.SETTINGS].http.max_import_bytes)
    store = request.app[keys.STORE]
    existing = await asyncio.to_thread(store.read, lambda db: get_list(db, list_id))
    if existing is None and request.query.get("create") not in ("1", "true", "yes"):
        raise json_error(web.HTTPNotFound, f"no list {list_id!r} (create it first, or pass create=1)")
    if existing is not None and existing.kind == ListKind.PERSON:
        # The plate importer would keep ID numbers as they are: person entries go one by one through
        # POST /api/v1/watchlists/{list_id}/entries, which hashes them.
        raise json_error(web.HTTPBadRequest, f"{list_id!r} is a person list: add its entries with "
                         f"POST /api/v1/watchlists/{list_id}/entries (id_number or id_hash); bulk import is not built")
    try:
        result = await asyncio.to_thread(importer.parse_entries, data, fmt, list_id,  # type: ignore[arg-type]
                                         created_by=_actor(request),
                                         skip_invalid=skip_invalid)
    except importer.ImportRejected as exc:
        raise json_error(web.HTTPUnprocessableEntity, "import rejected: nothing was changed",
                         problems=[{"line": p.line, "reason": p.reason} for p in exc.problems]) from None
    have = await asyncio.to_thread(store.read, lambda db: {e.entry_id: e for e in list_entries(db, list_id)})
    wanted = {e.entry_id: e for e in result.entries}
    changes: list[Any] = [] if existing else [ListUpsert(watchlist=Watchlist(list_id=list_id, name=list_id))]
    diff = importer.diff_entries(have, wanted.values())
    changes += [c for c in diff if mode == "replace" or not isinstance(c, EntryDelete)]
    applied = await _apply(request, changes)
    removed = sum(1 for c in changes if isinstance(c, EntryDelete))
    return _json({**applied, "rows": result.rows, "entries": len(result.entries), "removed": removed,
                  "added_or_updated": sum(1 for c in changes if isinstance(c, EntryUpsert)),
                  "skipped": [{"line": p.line, "reason": p.reason} for p in result.problems]})


async def _read_capped(request: web.Request, cap: int) -> bytes:
    """The body of a large upload (an import), read past the app's small default body limit."""
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1 << 20):
        size += len(chunk)
        if size > cap:
            raise json_error(web.HTTPRequestEntityTooLarge, f"file larger than {cap} bytes ([http] max_import_bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def watchlist_export(request: web.Request) -> web.Response:
    list_id = request.match_info["list_id"]
    fmt = request.query.get("format", "csv")
    if fmt not in ("csv", "json"):
        raise json_error(web.HTTPBadRequest, "format must be csv or json")

    def q(db: Any) -> bytes | None:
        if get_list(db, list_id) is None:
            return None
        return importer.export_entries(list_entries(db, list_id), fmt)  # type: ignore[arg-type]

    body = await asyncio.to_thread(request.app[keys.STORE].read, q)
    if body is None:
        raise json_error(web.HTTPNotFound, f"no list {list_id!r}")
    principal = principal_of(request)
    await request.app[keys.STORE].run(lambda db: audit.append(
        db, _actor(request), principal.role if principal else "", "watchlist.export", target=list_id,
        detail={"format": fmt, "bytes": len(body)}))
    return web.Response(body=body, content_type="text/csv" if fmt == "csv" else "application/json",
                        headers={"Content-Disposition": f'attachment; filename="watchlist.{fmt}"'})


async def feed_status(request: web.Request) -> web.Response:
    app = request.app
    edges = [{"checkpoint": c["checkpoint"], "feed_version": c.get("feed_version"), "online": c.get("online")}
             for c in app[keys.CHECKPOINTS].values()]
    return _json({"version": app[keys.WATCHLISTS].index.feed_version, "entries": len(app[keys.WATCHLISTS]),
                  "edges": edges})


async def upstream_status(request: web.Request) -> web.Response:
    return _json({"sources": [{"settings": {**msgspec.structs.asdict(s.settings), "token": None}, "state": s.state}
                              for s in request.app[keys.UPSTREAM]]})


async def feed_snapshot(request: web.Request) -> web.Response:
    body = await request.app[keys.LISTS].snapshot()
    return web.Response(body=body, content_type="application/json")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/watchlists", watchlists, name="watchlists")
    r.add_post("/api/v1/watchlists", watchlist_save, name="watchlist_save")
    r.add_delete("/api/v1/watchlists/{list_id}", watchlist_delete, name="watchlist_delete")
    r.add_get("/api/v1/watchlists/{list_id}/entries", entries, name="entries")
    r.add_post("/api/v1/watchlists/{list_id}/entries", entry_save, name="entry_save")
    r.add_delete("/api/v1/entries/{entry_id}", entry_delete, name="entry_delete")
    r.add_post("/api/v1/entries/{entry_id}/expire", entry_expire, name="entry_expire")
    r.add_post("/api/v1/watchlists/{list_id}/import", watchlist_import, name="watchlist_import")
    r.add_get("/api/v1/watchlists/{list_id}/export", watchlist_export, name="watchlist_export")
    r.add_get("/api/v1/feed", feed_status, name="feed_status")
    r.add_get("/api/v1/upstream", upstream_status, name="upstream_status")
    r.add_get("/api/v1/feed/snapshot", feed_snapshot, name="feed_snapshot")
