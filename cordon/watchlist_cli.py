"""``cordon watchlist import|export``: a thin client of the hub's watchlist API.

The file is checked here first with the same parser the hub uses (so a bad file is refused with
every line number before anything is sent, with a progress bar for long files); the hub parses it
again and applies it as one versioned change, or not at all.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp

from central.watchlists import files as importer
from protocols.errors import CordonError


class CliError(CordonError, RuntimeError):
    """A failure to report in one line."""


def progress_bar(total: int, out: Any = sys.stderr) -> Any:
    def show(done: int) -> None:
        share = min(1.0, done / total) if total else 1.0
        filled = int(share * 30)
        out.write(f"\r  checking [{'#' * filled}{'.' * (30 - filled)}] {done:>9,} / {total:,} rows")
        out.flush()

    return show


async def _login(session: aiohttp.ClientSession, hub: str, code: str) -> None:
    async with session.post(f"{hub}/login", json={"code": code}) as resp:
        if resp.status != 200:
            raise CliError(f"the hub refused the access code ({resp.status})")


def _code(code: str | None, code_file: str | None) -> str:
    if code_file:
        return Path(code_file).read_text(encoding="utf-8").strip()
    if code:
        return code
    raise CliError("give the console access code with --code or --code-file")


async def import_file(
    path: str,
    list_id: str,
    *,
    hub: str,
    code: str,
    fmt: str | None = None,
    merge: bool = False,
    skip_invalid: bool = False,
    create: bool = False,
    show_progress: bool = True,
    list_settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Check the file locally, then send it to the hub; return the hub's answer. ``list_settings`` are the
    settings of a list the import creates (query parameters of the import, named as the list's fields)."""
    data = await asyncio.to_thread(Path(path).read_bytes)
    fmt = fmt or ("json" if path.lower().endswith((".json", ".jsonl", ".ndjson")) else "csv")
    total = max(0, data.count(b"\n") - (1 if fmt == "csv" else 0))
    progress = progress_bar(total) if show_progress and total >= importer.PROGRESS_EVERY else None
    try:
        result = await asyncio.to_thread(
            importer.parse_entries,
            data,
            fmt,
            list_id,  # type: ignore[arg-type]
            created_by="cli",
            skip_invalid=skip_invalid,
            progress=progress,
        )
    finally:
        if progress is not None:
            sys.stderr.write("\n")
    if result.problems:
        print(f"  skipping {len(result.problems)} bad row(s)", file=sys.stderr)
    params = {"format": fmt, "mode": "merge" if merge else "replace"}
    if skip_invalid:
        params["skip_invalid"] = "1"
    if create:
        params["create"] = "1"
    params.update(list_settings or {})  # the new list's settings: the hub checks them
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=3600)) as session:
        await _login(session, hub, code)
        print(f"  sending {len(data):,} bytes to {hub} ...", file=sys.stderr)
        async with session.post(
            f"{hub}/api/v1/watchlists/{list_id}/import", params=params, data=data
        ) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200:
                raise CliError(
                    f"{resp.status}: {body.get('error')}"
                    + "".join(f"\n  line {p['line']}: {p['reason']}" for p in body.get("problems", [])[:50])
                )
            return dict(body)


async def export_list(list_id: str, *, hub: str, code: str, fmt: str = "csv") -> bytes:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        await _login(session, hub, code)
        async with session.get(f"{hub}/api/v1/watchlists/{list_id}/export", params={"format": fmt}) as resp:
            if resp.status != 200:
                raise CliError(f"{resp.status}: {(await resp.text())[:300]}")
            return await resp.read()
