"""The test harness's own promises (tests/support.py), where a broken one would hide failures."""

from __future__ import annotations

import time

import pytest
from aiohttp import web

from tests.support import next_frame


async def test_next_frame_gives_up_at_its_deadline_while_the_server_pings(aiohttp_client):
    """aiohttp restarts a receive's own timeout after each ping it answers: with the apps' heartbeat
    (20 s, here 0.1 s) a frame that never came used to hang the test until pytest's timeout."""

    async def live(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=0.1)
        await ws.prepare(request)
        await ws.send_json({"type": "hello"})
        for i in range(5):
            await ws.send_json({"type": "status", "n": i})
        await ws.receive()  # then only pings, until the client goes
        return ws

    app = web.Application()
    app.router.add_get("/ws", live)
    client = await aiohttp_client(app)
    ws = await client.ws_connect("/ws")
    assert (await next_frame(ws, "hello"))["type"] == "hello"
    assert (await next_frame(ws, "status", where=lambda f: f["n"] == 3))["n"] == 3
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="no alert frame within 1s"):
        await next_frame(ws, "alert", timeout=1)  # status 4 arrives and is skipped; then pings only
    assert time.monotonic() - started < 5
    await ws.close()
