"""The hub behind the real HAProxy running deploy/haproxy/cordon.cfg (``send-proxy-v2``, TLS passed through)
sees each client's own address (runtime/proxy_protocol.py, ``http.proxy_protocol_from``): two clients on two
addresses get separate login limits through the front door, the hub's log and audit name the client, a
connection from the front without a PROXY header is refused with a log line, and a client reaching the hub
directly from elsewhere is served as before. The header's parser on its own too."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import subprocess
import time

import aiohttp
import pytest

from cordon.pki import Pki
from cordon.testing import free_port
from runtime.proxy_protocol import ProxyHeaderError, build, parse
from tests.support import hub_service, until, wait_port
from tests.test_hub_cluster import FRONT_SOURCE, HAPROXY, ROOT, render_front_door

CODE = "proxy-code"


def test_the_header_parser():
    header = build(("192.0.2.7", 50123), ("10.0.0.11", 8443))
    assert parse(header + b"\x16\x03\x01") == parse(header)
    assert parse(header).client == ("192.0.2.7", 50123) and parse(header).length == len(header)
    v6 = build(("2001:db8::5", 4000), ("2001:db8::1", 8443))
    assert parse(v6).client == ("2001:db8::5", 4000)
    local = header[:12] + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    assert parse(local).client is None  # the front's own health check
    for bad, why in (
        (b"\x16\x03\x01\x02\x00" + b"\x00" * 11, "no PROXY protocol v2 header"),  # a TLS ClientHello
        (b"PROXY TCP4 192.0.2.7 10.0.0.11 1 2\r\n", "no PROXY protocol v2 header"),  # version 1, text
        (header[:12] + bytes([0x31]) + header[13:], "version 3"),
        (header[:-3], "cut short"),
        (header[:14] + struct.pack("!H", 5000), "5000 bytes"),
    ):
        with pytest.raises(ProxyHeaderError, match=why):
            parse(bad)


@pytest.mark.system
@pytest.mark.timeout(120)
async def test_two_clients_through_the_front_door_have_their_own_login_limits(tmp_path, mosquitto):
    pki = Pki(tmp_path / "pki")
    pki.init()
    pki.issue("cordon-hub", ["127.0.0.1", "hub.ring.example"])
    hub = hub_service(
        tmp_path / "hub",
        mosquitto.url,
        token=CODE,
        extra={
            "http": {
                "cert_file": str(pki.root / "cordon-hub" / "server.crt"),
                "key_file": str(pki.root / "cordon-hub" / "server.key"),
                "proxy_protocol_from": [FRONT_SOURCE],
            }
        },
    )
    port = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        render_front_door(
            (ROOT / "deploy" / "haproxy" / "cordon.cfg").read_text(encoding="utf-8"),
            port=port,
            servers={"a": hub.port},
            ca=pki.root / "ca.crt",
        )
    )
    checked = await asyncio.to_thread(
        subprocess.run, [HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    hub.start()
    front = subprocess.Popen(
        [HAPROXY, "-f", str(cfg), "-db"],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "haproxy.log").open("wb"),
    )
    tls = ssl.create_default_context(cafile=str(pki.root / "ca.crt"))
    tls.check_hostname = False
    base = f"https://127.0.0.1:{port}"

    def client(source: str) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=tls, local_addr=(source, 0), force_close=True)
        return aiohttp.ClientSession(connector=connector)

    async def attempt(http: aiohttp.ClientSession, user: str) -> int:
        async with http.post(f"{base}/login", json={"username": user, "password": "wrong"}) as resp:
            return resp.status

    try:
        wait_port(port)
        async with client("127.0.0.1") as one, client("127.0.0.2") as two:

            async def front_serves() -> bool:
                try:
                    async with one.get(f"{base}/api/v1/health") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            # The front's checks carry the header too: the hub is up in its rotation only if they do.
            await until(front_serves, timeout=30, what="the hub in the front door's rotation")
            # 20 failures a window from one address (different accounts: each account has a limit of its
            # own), then that address is held back; the other, behind the same front, is not.
            statuses = [await attempt(two, f"officer{i}") for i in range(20)]
            assert statuses == [401] * 20, statuses
            assert await attempt(two, "officer-next") == 429
            assert await attempt(one, "someone") == 401, "one client's failures held the other back"
            async with one.post(f"{base}/login", json={"code": CODE}) as resp:
                assert resp.status == 200  # the one at 127.0.0.1 signs in through the front
        log = hub.log()
        assert "failed login for 'officer0' from 127.0.0.2" in log, log[-2000:]
        assert "failed login for 'someone' from 127.0.0.1" in log, log[-2000:]
        assert not [line for line in log.splitlines() if "login" in line and FRONT_SOURCE in line]

        # Directly from the front's address without a header: refused, and the hub says why.
        with socket.create_connection(("127.0.0.1", hub.port), source_address=(FRONT_SOURCE, 0)) as raw:
            raw.sendall(b"\x16\x03\x01\x00\x05hello")  # the start of a TLS handshake, no PROXY header
            raw.settimeout(10)
            assert raw.recv(100) == b""  # closed without a word
        deadline = time.monotonic() + 10
        while "must begin with a PROXY protocol v2 header" not in hub.log():
            assert time.monotonic() < deadline, hub.log()[-2000:]
            await asyncio.sleep(0.1)
        # From any other address the hub is reached directly, as before (Prometheus, an operator).
        async with client("127.0.0.2") as direct:
            async with direct.get(f"https://127.0.0.1:{hub.port}/api/v1/health") as resp:
                assert resp.status == 200
    finally:
        front.terminate()
        front.wait(10)
        hub.stop()
