"""Background work that lives as long as a web app: started with it, cancelled and awaited when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web


async def stop(task: asyncio.Task[Any]) -> None:
    """Cancel a task and wait until it has ended."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def background(
    name: str, run: Callable[[web.Application], Awaitable[None]]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An ``app.cleanup_ctx`` entry that runs ``run(app)`` as a task named ``name`` for the app's lifetime."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run(app), name=name)  # type: ignore[arg-type]
        yield
        await stop(task)

    return context


async def poll(
    step: Callable[[], Awaitable[bool]],
    every_s: float,
    log: logging.Logger,
    what: str,
    wake: asyncio.Event | None = None,
) -> None:
    """Run ``step`` every ``every_s`` for ever, again at once while it says there is more, and at once
    when ``wake`` is set (a wake-up during a step makes one more). A failure is logged once, with its
    traceback, until a step succeeds again (not at every turn of an outage)."""
    failing = False
    while True:
        if wake is not None:
            wake.clear()
        try:
            while await step():
                pass
            if failing:
                log.info("%s again", what)
            failing = False
        except Exception:
            if not failing:
                log.exception("%s failed; trying again every %.2f s", what, every_s)
            failing = True
        if wake is None:
            await asyncio.sleep(every_s)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), every_s)
