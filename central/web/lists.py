"""Watchlist management API and the field feed's snapshot endpoint (the same functions the CLI uses)."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Annotated, Any

import msgspec
from aiohttp import web

from central.people.users import LIST_WRITERS, STAFF
from central.record.tx import Tx
from central.watchlists import files as importer
from central.watchlists.lists import ListError, NotFound
from central.web import keys
from central.web.guards import moment_param
from protocols import plates
from protocols.feed import EntryDelete, EntryUpsert, ListDelete, ListUpsert
from protocols.matching import DEFAULT_ALERT_KINDS, Entry, ListAction, ListKind, MatchKind, Watchlist
from runtime.web import Access, Rule, json_error, principal_of

POLICY: dict[str, Rule] = {
    "watchlists": STAFF,
    "watchlist_save": LIST_WRITERS,
    "watchlist_delete": LIST_WRITERS,
    "entries": STAFF,
    "entry_save": LIST_WRITERS,
    "entry_delete": LIST_WRITERS,
    "entry_expire": LIST_WRITERS,
    "watchlist_import": LIST_WRITERS,
    "watchlist_import_job": LIST_WRITERS,
    "watchlist_export": LIST_WRITERS,
    "feed_status": STAFF,
    "upstream_status": STAFF,
    "feed_snapshot": Access.EDGE,
    "feed_file": Access.EDGE,
    "feed_deltas": Access.EDGE,
}

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[^\s/]+$")]


class ListInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    list_id: Id
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kind: ListKind = ListKind.VEHICLE
    action: ListAction = ListAction.INTERCEPT
    priority: Annotated[int, msgspec.Meta(ge=0, le=100)] = 50
    restricted: bool = False
    alert_kinds: frozenset[MatchKind] = DEFAULT_ALERT_KINDS
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
    return await _apply_as(request.app, _actor(request), changes)


async def _apply_as(app: web.Application, actor: str, changes: list[Any]) -> dict[str, Any]:
    try:
        applied = await app[keys.LISTS].apply(changes, actor)
    except NotFound as exc:
        raise json_error(web.HTTPNotFound, str(exc)) from None
    except ListError as exc:
        raise json_error(web.HTTPConflict, str(exc)) from None
    return {"feed_version": applied.version, "changes": applied.changes}


async def watchlists(request: web.Request) -> web.Response:
    def q(tx: Tx) -> list[dict[str, Any]]:
        found = request.app[keys.STORE].watchlists.list_summaries(tx)
        return [{"watchlist": wl, "entries": count} for wl, count in found]

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
    try:
        offset = max(0, int(request.query.get("offset", "0")))
    except ValueError:
        raise json_error(web.HTTPBadRequest, "offset must be a whole number") from None

    def q(tx: Tx) -> tuple[list[Entry], int] | None:
        lists = request.app[keys.STORE].watchlists
        if lists.get_list(tx, list_id) is None:
            return None
        return lists.search_entries(tx, list_id, normalize_pattern(needle), limit, offset)

    result = await asyncio.to_thread(request.app[keys.STORE].read, q)
    if result is None:
        raise json_error(web.HTTPNotFound, f"no list {list_id!r}")
    found, total = result
    return _json({"entries": found, "total": total, "offset": offset, "limit": limit})


async def entry_save(request: web.Request) -> web.Response:
    list_id = request.match_info["list_id"]
    data: EntryInput = await _body(request, EntryInput)
    wl = await asyncio.to_thread(
        request.app[keys.STORE].read, lambda tx: request.app[keys.STORE].watchlists.get_list(tx, list_id)
    )
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
    entry = Entry(
        entry_id=data.entry_id or f"{list_id}:{plate}",
        list_id=list_id,
        plate=plate,
        colour=colour,
        vehicle_type=data.vehicle_type,
        reason=data.reason,
        case_ref=data.case_ref,
        valid_from=data.valid_from,
        valid_until=data.valid_until,
        created_by=_actor(request),
    )
    result = await _apply(request, [EntryUpsert(entry=entry)])
    return _json({**result, "entry": entry})


async def _person_entry_save(request: web.Request, list_id: str, data: EntryInput) -> web.Response:
    """A person-list entry holds the subject's keyed ID hash (the deployment secret, as at the edges), never
    the number: the same hash the edges compute for a quick-test subject, so they match offline."""
    from protocols.kits import KitError, hash_id_number, id_hash_params, last4

    if data.plate or bool(data.id_number) == bool(data.id_hash):
        raise json_error(
            web.HTTPBadRequest, "a person-list entry takes exactly one of id_number or id_hash (no plate)"
        )
    if data.id_hash:
        try:
            id_hash_params(data.id_hash)
        except KitError as exc:
            raise json_error(web.HTTPBadRequest, str(exc)) from None
        hashed, shown = data.id_hash, ""
    else:
        secret_file = request.app[keys.SETTINGS].kits.id_secret_file
        if not secret_file:
            raise json_error(
                web.HTTPBadRequest, "kits.id_secret_file is not configured: send id_hash instead"
            )
        secret = (await asyncio.to_thread(Path(secret_file).read_bytes)).strip()
        hashed = await asyncio.to_thread(hash_id_number, data.id_number or "", secret)
        shown = last4(data.id_number or "")
    entry = Entry(
        entry_id=data.entry_id or f"{list_id}:id-{hashed[-16:]}",
        list_id=list_id,
        plate=hashed,
        reason=data.reason,
        case_ref=data.case_ref,
        valid_from=data.valid_from,
        valid_until=data.valid_until,
        created_by=_actor(request),
    )
    result = await _apply(request, [EntryUpsert(entry=entry)])
    return _json({**result, "entry": entry, "id_last4": shown})


async def entry_delete(request: web.Request) -> web.Response:
    return _json(await _apply(request, [EntryDelete(entry_id=request.match_info["entry_id"])]))


async def entry_expire(request: web.Request) -> web.Response:
    entry_id = request.match_info["entry_id"]
    entry = await asyncio.to_thread(
        request.app[keys.STORE].read, lambda tx: request.app[keys.STORE].watchlists.get_entry(tx, entry_id)
    )
    if entry is None:
        raise json_error(web.HTTPNotFound, f"no entry {entry_id!r}")
    expired = msgspec.structs.replace(entry, valid_until=time.time())
    return _json({**await _apply(request, [EntryUpsert(entry=expired)]), "entry": expired})


async def watchlist_import(request: web.Request) -> web.Response:
    """Import a CSV or JSON file into a list, atomically: all rows, or (skip_invalid) all good rows, or none.

    ``mode=replace`` (default) makes the list hold exactly the file's entries; ``merge`` adds and
    updates only. ``create=1`` creates a missing list: with the list settings given in the query (every
    setting of ``POST /api/v1/watchlists``, see ``_list_settings``), else the defaults, named by its id.
    ``job=1`` answers 202 at once with a job id; ``GET /api/v1/watchlists/imports/{job}`` then reports
    the rows done, the problems by line and the result.
    """
    list_id = request.match_info["list_id"]
    fmt = request.query.get("format", "csv")
    mode = request.query.get("mode", "replace")
    if fmt not in ("csv", "json") or mode not in ("replace", "merge"):
        raise json_error(web.HTTPBadRequest, "format must be csv or json; mode replace or merge")
    skip_invalid = request.query.get("skip_invalid") in ("1", "true", "yes")
    settings = _list_settings(request, list_id)
    data = await _read_capped(request, request.app[keys.SETTINGS].http.max_import_bytes)
    store = request.app[keys.STORE]
    existing = await asyncio.to_thread(
        store.read, lambda tx: request.app[keys.STORE].watchlists.get_list(tx, list_id)
    )
    if existing is None and request.query.get("create") not in ("1", "true", "yes"):
        raise json_error(web.HTTPNotFound, f"no list {list_id!r} (create it first, or pass create=1)")
    if existing is not None and settings is not None:
        raise json_error(
            web.HTTPConflict,
            f"list {list_id!r} exists: its settings are changed with POST /api/v1/watchlists, "
            "an import sets them only when it creates the list",
        )
    if existing is None and settings is not None and settings.kind == ListKind.PERSON:
        raise json_error(web.HTTPBadRequest, "a person list's entries are added one by one, never imported")
    if existing is not None and existing.kind == ListKind.PERSON:
        # The plate importer would keep ID numbers as they are: person entries go one by one through
        # POST /api/v1/watchlists/{list_id}/entries, which hashes them.
        raise json_error(
            web.HTTPBadRequest,
            f"{list_id!r} is a person list: add its entries with "
            f"POST /api/v1/watchlists/{list_id}/entries (id_number or id_hash); bulk import is not built",
        )
    job = ImportJob(list_id, _rows_in(data, fmt), _actor(request))
    new_list = None if existing is not None else (settings or Watchlist(list_id=list_id, name=list_id))
    run = _run_import(request.app, job, data, fmt, mode, skip_invalid, new_list)
    if request.query.get("job") not in ("1", "true", "yes"):
        await run
        if job.state == "rejected":
            raise json_error(
                web.HTTPUnprocessableEntity, "import rejected: nothing was changed", problems=job.problems
            )
        if job.failure is not None:
            raise job.failure
        return _json(job.result)
    jobs = request.app[keys.IMPORT_JOBS]
    await asyncio.to_thread(jobs.add, job.job_id, job)
    job.task = asyncio.create_task(_saved_as_it_runs(jobs, job, run), name=f"import-{job.job_id}")
    return _json(job.status(), status=202)


#: The list settings an import that creates its list takes as query parameters (all of ``ListInput``).
LIST_SETTINGS = tuple(f.name for f in msgspec.structs.fields(ListInput) if f.name != "list_id")


def _list_settings(request: web.Request, list_id: str) -> Watchlist | None:
    """The new list's settings from the import's query (``name``, ``action``, ``alert_kinds=exact,wildcard``,
    ``max_swaps``, ``restricted=1``, ``valid_until`` ...), checked as ``POST /api/v1/watchlists`` checks them;
    None when the query names none (a list created by an import then has the defaults, named by its id)."""
    given = {k: request.query[k] for k in LIST_SETTINGS if k in request.query}
    if not given:
        return None
    raw: dict[str, Any] = {"list_id": list_id, "name": list_id, **given}
    if "alert_kinds" in raw:
        raw["alert_kinds"] = [k.strip() for k in raw["alert_kinds"].split(",") if k.strip()]
    for key in ("valid_from", "valid_until"):
        if key in raw:
            raw[key] = moment_param(raw[key], key, 0.0) if raw[key] else None
    if "restricted" in raw:
        if raw["restricted"] not in ("0", "1", "true", "false"):
            raise json_error(web.HTTPBadRequest, "restricted must be 1 or 0")
        raw["restricted"] = raw["restricted"] in ("1", "true")
    try:
        data = msgspec.convert(raw, ListInput, strict=False)
    except msgspec.ValidationError as exc:
        raise json_error(web.HTTPBadRequest, f"list settings: {exc}") from None
    return Watchlist(**msgspec.structs.asdict(data))


async def watchlist_import_job(request: web.Request) -> web.Response:
    job = request.app[keys.IMPORT_JOBS].get(request.match_info["job"])
    if job is None:
        raise json_error(web.HTTPNotFound, f"no import job {request.match_info['job']!r}")
    return _json(job.status())


_job_ids = itertools.count(1)


class ImportJob:
    """One import's progress: rows parsed of the file's rows, then applied (one feed version) or rejected."""

    def __init__(self, list_id: str, rows_total: int, actor: str) -> None:
        # Unique among the hubs sharing a store (each counts its own jobs from 1).
        self.job_id = f"{int(time.time())}-{next(_job_ids)}-{secrets.token_hex(3)}"
        self.list_id, self.rows_total, self.actor = list_id, rows_total, actor
        self.rows_done = 0
        self.state = "running"  # running -> applying -> done | rejected | failed
        self.problems: list[dict[str, Any]] = []
        self.result: dict[str, Any] | None = None
        self.error = ""
        self.task: asyncio.Task[None] | None = None
        self.failure: web.HTTPException | None = None

    def status(self) -> dict[str, Any]:
        return {
            "job": self.job_id,
            "list_id": self.list_id,
            "state": self.state,
            "rows_done": self.rows_done,
            "rows_total": self.rows_total,
            "problems": self.problems,
            "result": self.result,
            "error": self.error,
        }

    @property
    def finished(self) -> bool:
        """Done, rejected or failed: the job store may forget it to make room."""
        return self.state not in ("running", "applying")


#: While an import job runs, its status is saved this often (another hub answering for it sees its progress).
JOB_SAVE_S = 1.0


async def _saved_as_it_runs(jobs: Any, job: ImportJob, run: Awaitable[None]) -> None:
    """Run the import, saving its status as it moves and when it has finished (``ImportJobStore.save``)."""

    async def every() -> None:
        while True:
            await asyncio.sleep(JOB_SAVE_S)
            await asyncio.to_thread(jobs.save, job.job_id, job)

    saver = asyncio.create_task(every())
    try:
        await run
    finally:
        saver.cancel()
        await asyncio.gather(saver, return_exceptions=True)
        await asyncio.to_thread(jobs.save, job.job_id, job)


def _rows_in(data: bytes, fmt: str) -> int:
    """Data rows in the file, for the progress bar (CSV: lines after the header; JSON: counted while parsing)."""
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    return max(lines - 1, 0) if fmt == "csv" else 0


async def _run_import(
    app: web.Application,
    job: ImportJob,
    data: bytes,
    fmt: str,
    mode: str,
    skip_invalid: bool,
    new_list: Watchlist | None,
) -> None:
    def progress(rows: int) -> None:
        job.rows_done = rows  # an int written from the worker thread, read by the status route

    try:
        parsed = await asyncio.to_thread(
            importer.parse_entries,
            data,
            fmt,
            job.list_id,  # type: ignore[arg-type]
            created_by=job.actor,
            skip_invalid=skip_invalid,
            progress=progress,
        )
    except importer.ImportRejected as exc:
        job.problems = [{"line": p.line, "reason": p.reason} for p in exc.problems]
        job.state = "rejected"
        return
    job.rows_done = parsed.rows
    job.rows_total = max(job.rows_total, parsed.rows)
    job.problems = [{"line": p.line, "reason": p.reason} for p in parsed.problems]
    job.state = "applying"
    list_id = job.list_id
    try:
        have = await asyncio.to_thread(
            app[keys.STORE].read,
            lambda tx: {e.entry_id: e for e in app[keys.STORE].watchlists.list_entries(tx, list_id)},
        )
        wanted = {e.entry_id: e for e in parsed.entries}
        changes: list[Any] = [] if new_list is None else [ListUpsert(watchlist=new_list)]
        diff = importer.diff_entries(have, wanted.values())
        changes += [c for c in diff if mode == "replace" or not isinstance(c, EntryDelete)]
        applied = await _apply_as(app, job.actor, changes)
    except web.HTTPException as exc:
        job.failure = exc
        job.error, job.state = msgspec.json.decode(exc.text or "{}").get("error", exc.reason), "failed"
        return
    job.result = {
        **applied,
        "rows": parsed.rows,
        "entries": len(parsed.entries),
        "removed": sum(1 for c in changes if isinstance(c, EntryDelete)),
        "added_or_updated": sum(1 for c in changes if isinstance(c, EntryUpsert)),
        "skipped": job.problems,
    }
    job.state = "done"


async def _import_jobs_ctx(app: web.Application) -> Any:
    yield
    tasks = [j.task for j in app[keys.IMPORT_JOBS].jobs() if j.task is not None and not j.task.done()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _read_capped(request: web.Request, cap: int) -> bytes:
    """The body of a large upload (an import), read past the app's small default body limit."""
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1 << 20):
        size += len(chunk)
        if size > cap:
            raise json_error(
                web.HTTPRequestEntityTooLarge, f"file larger than {cap} bytes ([http] max_import_bytes)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def watchlist_export(request: web.Request) -> web.Response:
    list_id = request.match_info["list_id"]
    fmt = request.query.get("format", "csv")
    if fmt not in ("csv", "json"):
        raise json_error(web.HTTPBadRequest, "format must be csv or json")

    def q(tx: Tx) -> bytes | None:
        lists = request.app[keys.STORE].watchlists
        if lists.get_list(tx, list_id) is None:
            return None
        return importer.export_entries(lists.list_entries(tx, list_id), fmt)  # type: ignore[arg-type]

    body = await asyncio.to_thread(request.app[keys.STORE].read, q)
    if body is None:
        raise json_error(web.HTTPNotFound, f"no list {list_id!r}")
    principal = principal_of(request)
    await request.app[keys.STORE].run(
        lambda tx: request.app[keys.STORE].audit.append(
            tx,
            _actor(request),
            principal.role if principal else "",
            "watchlist.export",
            target=list_id,
            detail={"format": fmt, "bytes": len(body)},
        )
    )
    return web.Response(
        body=body,
        content_type="text/csv" if fmt == "csv" else "application/json",
        headers={"Content-Disposition": f'attachment; filename="watchlist.{fmt}"'},
    )


async def feed_status(request: web.Request) -> web.Response:
    app = request.app
    edges = [
        {"checkpoint": c["checkpoint"], "feed_version": c.get("feed_version"), "online": c.get("online")}
        for c in app[keys.CHECKPOINTS].values()
    ]
    return _json(
        {
            "version": app[keys.WATCHLISTS].index.feed_version,
            "entries": len(app[keys.WATCHLISTS]),
            "edges": edges,
        }
    )


async def upstream_status(request: web.Request) -> web.Response:
    return _json(
        {
            "sources": [
                {"settings": {**msgspec.structs.asdict(s.settings), "token": None}, "state": s.state}
                for s in request.app[keys.UPSTREAM]
            ],
            # 视图库 subscriptions (central/ingest/viid.py): link state and counts, never a secret.
            "viid": [
                {
                    "name": p.settings.name,
                    "url": p.settings.url,
                    "platform_id": p.settings.platform_id,
                    "checkpoints": p.settings.checkpoints,
                    "state": p.state,
                }
                for p in request.app[keys.VIID_PLATFORMS]
            ],
        }
    )


async def feed_snapshot(request: web.Request) -> web.Response:
    body = await request.app[keys.LISTS].snapshot()
    return web.Response(body=body, content_type="application/json")


#: Bytes per write when serving a feed file (the file is never read whole into memory).
FILE_CHUNK = 256 * 1024


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """``(first, last)`` of a single ``bytes=`` range, clipped to the file; None when the header is
    not one this server honours (several ranges, other units): the whole file is sent instead.
    Raises 416 for a range that starts beyond the end."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first_s == "":  # the last N bytes
            n = int(last_s)
            return (max(0, size - n), size - 1) if n > 0 and size else None
        first = int(first_s)
        last = int(last_s) if last_s else size - 1
    except ValueError:
        return None
    if first >= size:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    if first < 0 or last < first:
        return None
    return first, min(last, size - 1)


async def feed_file(request: web.Request) -> web.StreamResponse:
    """The newest feed file (``protocols.feedfile``); ``Range`` with ``If-Range`` resumes a download.

    ``If-Range`` naming a file this hub still keeps (the newest or the one before) resumes that
    file, so a download in flight survives a rebuild; naming any other, the newest is sent whole.
    """
    files = request.app[keys.FEED_FILES]
    chosen = files.current
    if chosen is None:
        raise json_error(
            web.HTTPServiceUnavailable, "the feed file is being built", headers={"Retry-After": "5"}
        )
    status, first, last = 200, 0, chosen.size - 1
    wanted = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if wanted:
        resumed = files.by_etag(if_range) if if_range is not None else chosen
        if resumed is not None:
            span = _byte_range(wanted, resumed.size)
            if span is not None:
                chosen, (first, last), status = resumed, span, 206
    headers = {
        "ETag": chosen.etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "no-cache",
        "Content-Type": "application/vnd.cordon.feed",
        "Content-Length": str(last - first + 1),
        "X-Cordon-Feed-Version": str(chosen.version),
    }
    if chosen.signature is not None:
        headers["X-Cordon-Feed-Signature"] = chosen.signature
    if status == 206:
        headers["Content-Range"] = f"bytes {first}-{last}/{chosen.size}"
    # Opened before answering: files are never rewritten, and an open one survives its pruning.
    handle = await asyncio.to_thread(chosen.path.open, "rb")
    try:
        resp = web.StreamResponse(status=status, headers=headers)
        await resp.prepare(request)
        left = last - first + 1
        await asyncio.to_thread(handle.seek, first)
        while left > 0:
            chunk = await asyncio.to_thread(handle.read, min(FILE_CHUNK, left))
            if not chunk:
                break
            await resp.write(chunk)
            left -= len(chunk)
        await resp.write_eof()
        return resp
    finally:
        handle.close()


async def feed_deltas(request: web.Request) -> web.Response:
    """The deltas after ``since`` (an edge that installed a feed file catches up with these), signed
    like the MQTT messages; 410 when they cannot be served as deltas (take the newest file)."""
    from central.watchlists.feedfiles import MAX_DELTAS_SERVED

    try:
        since = int(request.query.get("since", ""))
        if since < 0:
            raise ValueError
    except ValueError:
        raise json_error(web.HTTPBadRequest, "since must be a feed version (a whole number >= 0)") from None
    store = request.app[keys.STORE]
    found = await asyncio.to_thread(
        store.read, lambda tx: store.watchlists.deltas_since(tx, since, MAX_DELTAS_SERVED)
    )
    if found is None:
        raise json_error(web.HTTPGone, "too far behind for deltas: fetch GET /api/v1/feed/file")
    version, bodies = found
    body = b'{"version":%d,"deltas":[%s]}' % (version, b",".join(bodies))
    sign = request.app[keys.FEED_FILES].sign_body
    return web.Response(body=sign(body) if sign is not None else body, content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(_import_jobs_ctx)
    r = app.router
    r.add_get("/api/v1/watchlists", watchlists, name="watchlists")
    r.add_post("/api/v1/watchlists", watchlist_save, name="watchlist_save")
    r.add_delete("/api/v1/watchlists/{list_id}", watchlist_delete, name="watchlist_delete")
    r.add_get("/api/v1/watchlists/{list_id}/entries", entries, name="entries")
    r.add_post("/api/v1/watchlists/{list_id}/entries", entry_save, name="entry_save")
    r.add_delete("/api/v1/entries/{entry_id}", entry_delete, name="entry_delete")
    r.add_post("/api/v1/entries/{entry_id}/expire", entry_expire, name="entry_expire")
    r.add_post("/api/v1/watchlists/{list_id}/import", watchlist_import, name="watchlist_import")
    r.add_get("/api/v1/watchlists/imports/{job}", watchlist_import_job, name="watchlist_import_job")
    r.add_get("/api/v1/watchlists/{list_id}/export", watchlist_export, name="watchlist_export")
    r.add_get("/api/v1/feed", feed_status, name="feed_status")
    r.add_get("/api/v1/upstream", upstream_status, name="upstream_status")
    r.add_get("/api/v1/feed/snapshot", feed_snapshot, name="feed_snapshot")
    r.add_get("/api/v1/feed/file", feed_file, name="feed_file")
    r.add_get("/api/v1/feed/deltas", feed_deltas, name="feed_deltas")
