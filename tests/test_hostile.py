"""Hostile requests at the edge's doors: path traversal in picture requests, oversized bodies."""

from __future__ import annotations

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
