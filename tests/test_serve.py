"""``cordon.cli.serve_apps``, what every ``cordon hub`` and ``cordon edge`` process runs."""

from __future__ import annotations

import asyncio
import gc

from aiohttp import web

from cordon.cli import serve_apps
from cordon.testing import free_port


async def test_what_start_up_made_is_frozen_out_of_the_collectors_full_walks():
    """A full collection walks every tracked object: on the edge under load it came every few seconds,
    walked what start-up had made and held reads and alerts 60 to 110 ms each time. Once the sites are up,
    what exists is frozen: a full collection then walks only what was made since."""
    made_at_start: list[dict[str, int]] = []

    async def start_up(app: web.Application) -> None:
        made_at_start.extend({"n": i} for i in range(10_000))  # tracked by the collector

    app = web.Application()
    app.on_startup.append(start_up)
    ready, stop = asyncio.Event(), asyncio.Event()
    gc.unfreeze()
    try:
        server = asyncio.create_task(serve_apps([(app, "127.0.0.1", free_port())], ready=ready, stop=stop))
        await asyncio.wait_for(ready.wait(), 30)
        assert gc.get_freeze_count() >= len(made_at_start)
        walked = {id(o) for o in gc.get_objects(2)}
        assert not any(id(x) in walked for x in made_at_start)
        stop.set()
        await asyncio.wait_for(server, 30)
    finally:
        gc.unfreeze()
