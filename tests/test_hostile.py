"""Hostile requests at the edge's doors: path traversal in picture requests, oversized bodies,
requests that are not well-formed HTTP."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edge.app import create_app
from edge.settings import CameraSettings, EdgeSettings, HttpSettings, MqttSettings, TabletSettings


@pytest.fixture
async def client(aiohttp_client, tmp_path, dead_broker_url):
    settings = EdgeSettings(
        checkpoint="SD-DZ-001",
        data_dir=str(tmp_path / "edge"),
        mqtt=MqttSettings(url=dead_broker_url, reconnect_min_s=5),
        http=HttpSettings(max_body_bytes=64 * 1024),
        cameras=[CameraSettings(id="lane1", token="cam-secret", lane=1)],
        tablet=TabletSettings(token="123456"),
    )
    (tmp_path / "secret.txt").write_text("not for cameras")
    return await aiohttp_client(create_app(settings))


async def test_picture_requests_cannot_leave_the_evidence_store(client):
    await client.post("/login", json={"code": "123456"})
    for path in (
        "/api/v1/evidence/1/../../../secret.txt",
        "/api/v1/evidence/1/..%2f..%2fsecret.txt",
        "/api/v1/evidence/..%2f..%2fsecret.txt/thumb",
        "/api/v1/evidence/1/thumb?epoch=../../x",
        "/api/v1/evidence/%2e%2e/%2e%2e",
        "/api/v1/evidence/1/snapshot%00.jpg",
    ):
        resp = await client.get(path)
        body = await resp.read()
        assert resp.status in (400, 404), f"{path}: {resp.status}"
        assert b"not for cameras" not in body


async def test_an_oversized_push_is_refused_and_nothing_is_recorded(client):
    resp = await client.post(
        "/api/v1/cameras/lane1/reads",
        headers={"X-Camera-Token": "cam-secret"},
        data=b'{"plate": "' + b"A" * 200_000 + b'"}',
    )
    assert resp.status == 413
    await client.post("/login", json={"code": "123456"})
    status = await (await client.get("/api/v1/status")).json()
    assert status["reads_total"] == 0, "no read was recorded (the outbox holds only the login's audit event)"
    assert status["outbox"]["depth"] == 1


@pytest.mark.parametrize(
    ("request_bytes", "problem"),
    [
        (b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Evil: a\x00b\r\n\r\n", "header"),
        ("GET /api/v1/check?plate=鲁A12345 HTTP/1.1\r\nHost: x\r\n\r\n".encode(), "url"),
    ],
    ids=["nul-in-header", "raw-non-ascii-in-query"],
)
async def test_a_malformed_request_is_a_400_and_one_warning_line(client, caplog, request_bytes, problem):
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(request_bytes)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    assert b" 400 " in status_line, status_line  # aiohttp logs before it answers: the records are in
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], (
        "a client's mistake is no server error"
    )
    assert not [r for r in caplog.records if r.exc_info or r.exc_text], "no traceback"
    (line,) = [r.getMessage() for r in caplog.records if "HTTP request" in r.getMessage()]
    assert [r.levelno for r in caplog.records if r.getMessage() == line] == [logging.WARNING]
    assert "\n" not in line and "bad HTTP request from 127.0.0.1" in line and problem in line.lower(), line


def test_a_server_failure_is_still_an_error_with_its_traceback(caplog):
    from runtime.web import log_malformed_requests_as_warnings

    log_malformed_requests_as_warnings()
    try:
        raise RuntimeError("a handler's own bug")
    except RuntimeError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "127.0.0.1")
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info, "only the client's mistakes are demoted"
