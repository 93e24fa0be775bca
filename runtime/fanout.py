"""Live fan-out of frames to many slow consumers (browser WebSockets), stdlib asyncio only.

Each client gets a bounded queue and its own sender task; a client whose queue is full has
fallen behind and is dropped, so it can never stall the others. Hub console and edge tablet
both use it; the transport (aiohttp WebSocket) stays in their web modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Send = Callable[[Any], Awaitable[None]]
#: A client's first frames: a list, or a coroutine function read once the client is subscribed.
First = list[Any] | Callable[[], Awaitable[list[Any]]] | None


class Subscriber:
    def __init__(self, name: str, send: Send, maxsize: int) -> None:
        self.name = name
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._send = send
        self.dropped = asyncio.Event()

    async def run(self) -> None:
        while True:
            frame = await self.queue.get()
            await self._send(frame)


class Fanout:
    """Broadcast frames to subscribers without letting one slow subscriber hold up the rest."""

    def __init__(self, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: set[Subscriber] = set()

    def __len__(self) -> int:
        return len(self._subscribers)

    def publish(self, frame: Any) -> None:
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(frame)
            except asyncio.QueueFull:
                log.warning("live client %s fell behind; dropping it", sub.name)
                self._subscribers.discard(sub)
                sub.dropped.set()

    async def serve(self, name: str, send: Send, first: First = None) -> None:
        """Feed one client until it disconnects or falls behind; ``first`` frames go out first. Given as a
        coroutine function, ``first`` is read after the client is subscribed: what is published while it
        reads (the store, say) queues behind it instead of being missed."""
        sub = Subscriber(name, send, self._queue_size)
        if callable(first):
            self._subscribers.add(sub)
            try:
                for frame in await first():
                    await send(frame)
            except BaseException:
                self._subscribers.discard(sub)
                raise
        else:
            for frame in (first or [])[-self._queue_size :]:
                sub.queue.put_nowait(frame)
            self._subscribers.add(sub)
        sender = asyncio.create_task(sub.run(), name=f"fanout-{name}")
        dropped = asyncio.create_task(sub.dropped.wait())
        try:
            await asyncio.wait({sender, dropped}, return_when=asyncio.FIRST_COMPLETED)
            if sender.done() and not sender.cancelled() and sender.exception() is not None:
                log.info("live client %s send failed: %s", name, sender.exception())
        finally:
            self._subscribers.discard(sub)
            for task in (sender, dropped):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
