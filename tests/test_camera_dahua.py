"""Dahua ITC: the edge attaches to a fake camera (a real aiohttp server in the test, with digest login)
that streams recorded-format parts from tests/fixtures/cameras/dahua/."""

import asyncio
import hashlib
import json
import re
import sqlite3
from pathlib import Path

import pytest
from aiohttp import web

from edge import keys
from edge.app import create_app
from edge.settings import CameraSettings, EdgeSettings, MqttSettings
from edge.sources import dahua
from tests.support import until

FIX = Path(__file__).parent / "fixtures" / "cameras" / "dahua"
REALM = "Login to 5L0A1B2C3D4E5"
NONCE = "3ef8c5b2a1d4"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class FakeDahua:
    """Answers like an ITC camera: digest login, an endless event stream, snapshots."""

    def __init__(self, password: str = "admin123") -> None:
        self.password = password
        self.attaches = 0
        self.refused = 0
        self.snapshots = 0
        self.uris: list[str] = []

    def authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        p = dict(re.findall(r'(\w+)="?([^",]*)"?', header[7:]))
        ha1 = md5(f"{p.get('username')}:{REALM}:{self.password}")
        ha2 = md5(f"{request.method}:{p.get('uri')}")
        expected = md5(f"{ha1}:{p.get('nonce')}:{p.get('nc')}:{p.get('cnonce')}:{p.get('qop')}:{ha2}")
        ok = (
            p.get("username") == "admin"
            and p.get("nonce") == NONCE
            and p.get("response") == expected
            and p.get("uri") == request.raw_path
        )
        self.uris.append(p.get("uri", ""))
        return ok

    def challenge(self) -> web.Response:
        self.refused += 1
        return web.Response(
            status=401,
            headers={
                "WWW-Authenticate": f'Digest realm="{REALM}", qop="auth", nonce="{NONCE}", opaque="5ccc0", algorithm=MD5'
            },
        )

    async def attach(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return self.challenge()
        assert request.query["codes"] == "[TrafficJunction]" and request.query["action"] == "attach"
        self.attaches += 1
        resp = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=myboundary"})
        await resp.prepare(request)
        if self.attaches == 1:
            await resp.write((FIX / "stream_1.bin").read_bytes())
            return resp  # the camera drops the connection: the edge must come back
        await resp.write((FIX / "stream_2.bin").read_bytes())
        for _ in range(300):  # heartbeats until the edge hangs up (or a minute passes)
            await asyncio.sleep(0.2)
            if request.transport is None or request.transport.is_closing():
                break
            await resp.write(
                b"--myboundary\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nHeartbeat\r\n"
            )
        return resp

    async def snapshot(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self.challenge()
        self.snapshots += 1
        assert request.query["channel"] == "1"
        return web.Response(body=(FIX / "snapshot.jpg").read_bytes(), content_type="image/jpeg")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/eventManager.cgi", self.attach)
        app.router.add_get("/cgi-bin/snapshot.cgi", self.snapshot)
        return app


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(dahua, "RECONNECT_MIN_S", 0.05)
    monkeypatch.setattr(dahua, "RECONNECT_MAX_S", 0.2)


async def edge_for(aiohttp_client, aiohttp_server, tmp_path, dead_broker_url, camera, password="admin123"):
    server = await aiohttp_server(camera.app())
    settings = EdgeSettings(
        checkpoint="SD-DZ-001",
        data_dir=str(tmp_path / "edge"),
        mqtt=MqttSettings(url=dead_broker_url, reconnect_min_s=5),
        cameras=[
            CameraSettings(
                id="itc1", kind="dahua", url=str(server.make_url("/")), username="admin", password=password
            )
        ],
    )
    return settings, await aiohttp_client(create_app(settings))


def reads(settings):
    with sqlite3.connect(settings.data_path / "outbox.db") as db:
        return [
            json.loads(b) for (b,) in db.execute("SELECT body FROM outbox WHERE kind = 'read' ORDER BY seq")
        ]


async def test_events_become_reads_with_snapshots_across_a_torn_part_and_a_reconnect(
    aiohttp_client, aiohttp_server, tmp_path, dead_broker_url
):
    camera = FakeDahua()
    settings, client = await edge_for(aiohttp_client, aiohttp_server, tmp_path, dead_broker_url, camera)
    service = client.app[keys.SERVICE]
    await until(lambda: service.reads_total >= 3, timeout=20, what="three reads")
    await until(lambda: camera.snapshots >= 3, timeout=10, what="three snapshots")
    assert camera.attaches == 2  # the dropped stream was attached again
    got = reads(settings)
    assert [r["plate"] for r in got] == ["鲁A12345", "冀B8K2L1", ""]
    first = got[0]
    assert first["colour"] == "blue" and first["lane"] == 2 and first["direction"] == "in"
    assert first["captured_at"] == 1795832102 and first["camera_event_id"] == "dahua:10516"
    assert first["vehicle_type"] == "Saloon"
    assert first["vehicle_colour"] == "White" and first["vehicle_brand"] == "Volkswagen"
    assert got[1]["vehicle_colour"] == "Red" and got[1].get("vehicle_brand") is None
    assert got[1]["colour"] == "yellow" and got[1]["direction"] == "out"
    assert got[2]["no_plate"] is True and got[2]["plate_raw"] == "无车牌"
    health = service.cameras["itc1"]
    assert health.reads == 3 and health.errors >= 2  # the torn part and the dropped stream
    evidence = client.app[keys.EVIDENCE]
    epoch = client.app[keys.OUTBOX].epoch
    await until(lambda: evidence.path(epoch, got[2]["seq"], "thumb") is not None, timeout=10, what="evidence")
    assert evidence.path(epoch, got[0]["seq"], "snapshot").read_bytes() == (FIX / "snapshot.jpg").read_bytes()
    assert all(
        uri.startswith("/cgi-bin/") and "[TrafficJunction]" in uri or "snapshot" in uri for uri in camera.uris
    )
    await client.close()  # the edge hangs up first, so the fake camera's stream ends at once


async def test_wrong_password_is_counted_and_retried(
    aiohttp_client, aiohttp_server, tmp_path, dead_broker_url
):
    camera = FakeDahua()
    settings, client = await edge_for(
        aiohttp_client, aiohttp_server, tmp_path, dead_broker_url, camera, password="wrong"
    )
    health = client.app[keys.SERVICE].camera("itc1")
    await until(lambda: health.errors >= 3, timeout=20, what="three failed attaches")
    assert "refused the login" in health.last_error
    assert camera.attaches == 0 and camera.refused >= 3 and health.reads == 0


async def test_stream_parser_splits_on_boundaries_not_lengths():
    from aiohttp import StreamReader
    from aiohttp.base_protocol import BaseProtocol

    loop = asyncio.get_running_loop()
    reader = StreamReader(BaseProtocol(loop), 2**16, loop=loop)
    # A lying Content-Length, a preamble and a closing boundary.
    reader.feed_data(
        b"junk\r\n--myboundary\r\nContent-Length: 999\r\n\r\nHeartbeat\r\n"
        b"--myboundary\r\nContent-Type: text/plain\r\n\r\nCode=X;action=Start;index=0\r\n--myboundary--\r\n"
    )
    reader.feed_eof()
    parts = [p async for p in dahua.stream_parts(reader, b"myboundary")]
    assert parts == [b"Heartbeat", b"Code=X;action=Start;index=0"]
    assert dahua.parse_event(parts[1]) == ("X", {})
    with pytest.raises(ValueError, match="torn"):
        dahua.parse_event(b'Code=TrafficJunction;action=Pulse;index=0;data={"UTC": 1')
