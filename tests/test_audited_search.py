"""The one guard of audited searches (central/web/guards.py): every route that looks into the record wants a
reason, keeps to the allowed range, opens old data to a commander only, and writes the audit record."""

from __future__ import annotations

import json
import time

import pytest

from central.app import create_app
from central.settings import ConsoleSettings, HubSettings, MqttSettings, RecordSettings
from tests.support import login

PASSWORD = "correct horse battery"
PLATE = "鲁Q8K2L1"
#: route, its action in the audit trail, its parameters besides the range and the reason, its range names
ROUTES = [
    ("/api/v1/reads", "record.search", {"plate": PLATE}, ("since", "until")),
    ("/api/v1/intel/route", "intel.route", {"plate": PLATE}, ("from", "to")),
    ("/api/v1/intel/companions", "intel.companions", {"plate": PLATE}, ("from", "to")),
]


@pytest.fixture
async def client(aiohttp_client, tmp_path, dead_broker_url):
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        console=ConsoleSettings(token="246810"),
        record=RecordSettings(search_max_days=400),  # so that old data is in range and only the role decides
    )
    client = await aiohttp_client(create_app(settings))
    await login(client.session, str(client.make_url("")), "246810")
    for username, role in (("li.analyst", "analyst"), ("zhao.cmd", "commander")):
        resp = await client.post(
            "/api/v1/users", json={"username": username, "role": role, "password": PASSWORD}
        )
        assert resp.status == 201, await resp.text()
    client.session.cookie_jar.clear()
    return client


async def as_user(client, username):
    client.session.cookie_jar.clear()
    assert (await client.post("/login", json={"username": username, "password": PASSWORD})).status == 200


async def trail(client, action):
    client.session.cookie_jar.clear()
    await login(client.session, str(client.make_url("")), "246810")
    return (await (await client.get("/api/v1/audit", params={"action": action})).json())["records"]


@pytest.mark.parametrize(("path", "action", "params", "names"), ROUTES)
async def test_every_search_of_the_record_is_guarded_alike(client, path, action, params, names):
    since_name, until_name = names
    now = time.time()
    recent = {**params, since_name: str(now - 3600), until_name: str(now)}
    old = {**params, since_name: str(now - 100 * 86400), until_name: str(now - 99 * 86400)}
    await as_user(client, "li.analyst")

    for bad in ({}, {"reason": "  "}, {"reason": "x" * 201}):
        resp = await client.get(path, params={**recent, **bad})
        assert resp.status == 400 and "reason" in (await resp.json())["error"], bad
    backwards = {**params, since_name: str(now), until_name: str(now - 3600), "reason": "r"}
    resp = await client.get(path, params=backwards)
    assert resp.status == 400 and f"{since_name} is after {until_name}" in (await resp.json())["error"]
    resp = await client.get(path, params={**params, since_name: "nan", "reason": "r"})
    assert resp.status == 400 and "finite" in (await resp.json())["error"]
    resp = await client.get(path, params={**old, "reason": "r"})
    assert resp.status == 403 and "90 days" in (await resp.json())["error"]
    assert (await client.get(path, params={**recent, "reason": "案件 2026-118"})).status == 200

    await as_user(client, "zhao.cmd")
    assert (await client.get(path, params={**old, "reason": "旧案 2025-7"})).status == 200

    records = await trail(client, action)
    assert sorted((r["actor"], r["reason"], r["target"]) for r in records) == sorted(
        [("li.analyst", "案件 2026-118", PLATE), ("zhao.cmd", "旧案 2025-7", PLATE)]
    ), "only the searches that ran are audited, each once, with who, why and what"
    assert all({"since", "until"} <= set(json.loads(r["detail"])) for r in records), records


async def test_the_statistics_export_wants_a_reason_and_is_audited(client):
    await as_user(client, "zhao.cmd")
    resp = await client.get("/api/v1/stats/export.csv")
    assert resp.status == 400 and "reason" in (await resp.json())["error"]
    assert (await client.get("/api/v1/stats/export.csv", params={"reason": "周报"})).status == 200
    records = await trail(client, "stats.export")
    assert [(r["actor"], r["reason"]) for r in records] == [("zhao.cmd", "周报")]
