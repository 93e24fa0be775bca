"""Watchlist management through the hub API and the `cordon watchlist` command."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import datetime

import pytest

from central.app import create_app
from central.settings import ConsoleSettings, HubSettings, MqttSettings
from central.web import keys
from tests.support import get_json, hub_service, login, session

CODE = "135790"


@pytest.fixture
async def client(aiohttp_client, tmp_path, dead_broker_url):
    app = create_app(
        HubSettings(
            data_dir=str(tmp_path / "hub"),
            mqtt=MqttSettings(url=dead_broker_url),
            console=ConsoleSettings(token=CODE),
        )
    )
    c = await aiohttp_client(app)
    assert (await c.post("/login", json={"code": CODE})).status == 200
    return c


def matches(client, plate):
    return [
        h.entry_id
        for h in client.app[keys.WATCHLISTS].match(plate, now=time.time(), colour=None, vehicle_type=None)
    ]


async def test_lists_and_entries_crud(client):
    resp = await client.post(
        "/api/v1/watchlists", json={"list_id": "stolen", "name": "被盗抢车辆", "priority": 80}
    )
    assert resp.status == 200 and (await resp.json())["feed_version"] == 1
    resp = await client.post(
        "/api/v1/watchlists/stolen/entries", json={"plate": "豫N·6B823", "reason": "被盗"}
    )
    assert resp.status == 200
    entry = (await resp.json())["entry"]
    assert entry["plate"] == "豫N6B823" and entry["entry_id"] == "stolen:豫N6B823"
    assert matches(client, "豫N6B8Z3") == ["stolen:豫N6B823"]
    resp = await client.post("/api/v1/watchlists/stolen/entries", json={"plate": "鲁A*23?5"})
    assert (await resp.json())["entry"]["plate"] == "鲁A*23?5", "wildcards survive normalization"
    listed = (await (await client.get("/api/v1/watchlists")).json())["watchlists"]
    assert listed[0]["entries"] == 2 and listed[0]["watchlist"]["name"] == "被盗抢车辆"
    found = (await (await client.get("/api/v1/watchlists/stolen/entries", params={"q": "6B8"})).json())[
        "entries"
    ]
    assert [e["plate"] for e in found] == ["豫N6B823"]
    assert (await client.post("/api/v1/entries/stolen:豫N6B823/expire")).status == 200
    assert matches(client, "豫N6B823") == [], "expired entries never match"
    assert (await client.delete("/api/v1/entries/stolen:豫N6B823")).status == 200
    assert (await client.delete("/api/v1/entries/stolen:豫N6B823")).status == 404
    assert (await client.post("/api/v1/watchlists/nope/entries", json={"plate": "鲁A1"})).status == 404
    assert (await client.post("/api/v1/watchlists", json={"list_id": "x"})).status == 400
    assert (
        await client.post("/api/v1/watchlists/stolen/entries", json={"plate": "鲁A1", "colour": "pink"})
    ).status == 400
    assert (await client.delete("/api/v1/watchlists/stolen")).status == 200
    assert (await (await client.get("/api/v1/watchlists")).json())["watchlists"] == []


CSV = "plate,reason\n鲁Q8K2L1,线索一\n冀F7M395,线索二\n"


async def test_import_replace_merge_reject_and_export(client):
    resp = await client.post("/api/v1/watchlists/drugs/import", data=CSV.encode())
    assert resp.status == 404, "a missing list is not created unless asked"
    resp = await client.post("/api/v1/watchlists/drugs/import", params={"create": "1"}, data=CSV.encode())
    body = await resp.json()
    assert resp.status == 200 and body["entries"] == 2 and body["added_or_updated"] == 2
    version = body["feed_version"]
    # Bad rows: refused as a whole, every line named, nothing changed.
    bad = "plate,reason\n鲁A12345,ok\n,empty\n鲁B12345,ok\n苏C1,x\n"
    resp = await client.post("/api/v1/watchlists/drugs/import", data=bad.encode())
    assert resp.status == 422
    problems = (await resp.json())["problems"]
    assert 3 in [p["line"] for p in problems]
    assert matches(client, "鲁A12345") == [] and client.app[keys.WATCHLISTS].index.feed_version == version
    # With skip_invalid the good rows are applied and the bad ones reported.
    resp = await client.post(
        "/api/v1/watchlists/drugs/import", params={"skip_invalid": "1", "mode": "merge"}, data=bad.encode()
    )
    body = await resp.json()
    assert resp.status == 200 and body["skipped"] and body["removed"] == 0
    assert matches(client, "鲁A12345") == ["drugs:鲁A12345"] and matches(client, "鲁Q8K2L1")
    # Replace: the list becomes the file.
    resp = await client.post("/api/v1/watchlists/drugs/import", data=CSV.encode())
    body = await resp.json()
    assert body["removed"] >= 2 and matches(client, "鲁A12345") == []
    exported = await (await client.get("/api/v1/watchlists/drugs/export")).text()
    assert "鲁Q8K2L1" in exported and "冀F7M395" in exported and "鲁A12345" not in exported
    resp = await client.post("/api/v1/watchlists/drugs/import", data=exported.encode())
    assert (await resp.json())["added_or_updated"] == 0, "an exported file imports as no change"


@pytest.mark.system
def test_cli_import_and_export_against_a_hub(tmp_path, mosquitto):
    hub = hub_service(tmp_path / "hub", mosquitto.url, token=CODE).start()
    try:
        f = tmp_path / "list.csv"
        f.write_text(
            "plate,reason\n" + "".join(f"鲁B{i:05d},r{i}\n" for i in range(25_000)), encoding="utf-8"
        )
        run = [sys.executable, "-m", "cordon", "watchlist"]
        out = subprocess.run(
            [*run, "import", str(f), "--list", "bulk", "--create", "--hub", hub.base, "--code", CODE],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert '"entries": 25000' in out.stdout and "checking [" in out.stderr, (
            "a progress bar for long files"
        )
        bad = tmp_path / "bad.csv"
        bad.write_text("plate,colour\n鲁A12345,blue\n鲁A23456,pink\n", encoding="utf-8")
        out = subprocess.run(
            [*run, "import", str(bad), "--list", "bulk", "--hub", hub.base, "--code", CODE],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 1 and "line 3" in out.stderr and "nothing was changed" in out.stderr
        out = subprocess.run(
            [
                *run,
                "export",
                "--list",
                "bulk",
                "--hub",
                hub.base,
                "--code",
                CODE,
                "-o",
                str(tmp_path / "out.csv"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert (tmp_path / "out.csv").read_text(encoding="utf-8").count("\n") == 25_001
        out = subprocess.run(
            [*run, "export", "--list", "bulk", "--hub", hub.base, "--code", "wrong"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 1 and "refused" in out.stderr
        # a list created by the command takes its settings from the command line
        small = tmp_path / "small.csv"
        small.write_text("plate\n鲁A*23?5\n", encoding="utf-8")
        settings = [
            "--name",
            "部分号牌",
            "--action",
            "notify",
            "--alert-kinds",
            "wildcard,edit",
            "--max-swaps",
            "1",
        ]
        out = subprocess.run(
            [
                *run,
                "import",
                str(small),
                "--list",
                "part",
                "--create",
                *settings,
                "--hub",
                hub.base,
                "--code",
                CODE,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr

        async def lists():
            async with session() as http:
                await login(http, hub.base, CODE)
                return (await get_json(http, f"{hub.base}/api/v1/watchlists"))["watchlists"]

        (part,) = [w["watchlist"] for w in asyncio.run(lists()) if w["watchlist"]["list_id"] == "part"]
        assert (part["name"], part["action"], sorted(part["alert_kinds"]), part["max_swaps"]) == (
            "部分号牌",
            "notify",
            ["edit", "wildcard"],
            1,
        )
    finally:
        hub.stop()


async def test_upstream_file_source_is_applied_as_one_version_per_change(
    aiohttp_client, tmp_path, dead_broker_url
):
    from central.watchlists.upstream import UpstreamSettings
    from tests.support import until

    source = tmp_path / "upstream.csv"
    source.write_text("plate,reason\n鲁Q8K2L1,a\n冀F7M395,b\n", encoding="utf-8")
    app = create_app(
        HubSettings(
            data_dir=str(tmp_path / "hub"),
            mqtt=MqttSettings(url=dead_broker_url),
            console=ConsoleSettings(token=CODE),
            upstream=[
                UpstreamSettings(name="省厅下发", list_id="province", path=str(source), interval_s=0.1)
            ],
        )
    )
    client = await aiohttp_client(app)
    await client.post("/login", json={"code": CODE})
    wl = app[keys.WATCHLISTS]
    await until(lambda: len(wl) == 2, timeout=10, what="first poll applied")
    first = wl.index.feed_version
    assert wl.lists["province"].name == "省厅下发"
    source.write_text("plate,reason\n鲁Q8K2L1,a\n苏C5H0D8,c\n", encoding="utf-8")
    await until(lambda: wl.index.feed_version > first, timeout=10, what="change applied")
    assert wl.index.feed_version == first + 1, "one change of the source is one feed version"
    assert [h.entry_id for h in wl.match("苏C5H0D8", now=time.time(), colour=None, vehicle_type=None)]
    assert not wl.match("冀F7M395", now=time.time(), colour=None, vehicle_type=None)
    source.write_text(
        "plate,colour\n鲁A1,pink\n", encoding="utf-8"
    )  # a bad upstream file: never half-applied
    status = await until(lambda: _upstream_error(client), timeout=10, what="error reported")
    assert "pink" in status["state"]["last_error"] and wl.index.feed_version == first + 1
    assert len(wl) == 2


async def _upstream_error(client):
    (source,) = (await (await client.get("/api/v1/upstream")).json())["sources"]
    return source if source["state"]["last_error"] else None


async def test_entries_are_paged_and_searched_server_side(client):
    await client.post("/api/v1/watchlists", json={"list_id": "big", "name": "big"})
    rows = "plate,reason\n" + "".join(f"鲁A{n:05d},r{n}\n" for n in range(250))
    assert (await client.post("/api/v1/watchlists/big/import", data=rows.encode())).status == 200
    page = await (
        await client.get("/api/v1/watchlists/big/entries", params={"limit": "100", "offset": "200"})
    ).json()
    assert page["total"] == 250 and len(page["entries"]) == 50 and page["offset"] == 200
    assert page["entries"][0]["plate"] == "鲁A00200"
    found = await (
        await client.get("/api/v1/watchlists/big/entries", params={"q": "A0012", "limit": "5"})
    ).json()
    assert found["total"] == 10 and len(found["entries"]) == 5
    assert (await client.get("/api/v1/watchlists/big/entries", params={"offset": "x"})).status == 400


async def _job(client, job_id):
    from tests.support import until

    status = {}

    async def finished():
        status.update(await (await client.get(f"/api/v1/watchlists/imports/{job_id}")).json())
        return status["state"] not in ("running", "applying")

    await until(finished, timeout=30)
    return status


async def test_import_as_a_job_reports_progress_and_line_errors(client, monkeypatch):
    from central.watchlists import files as importer

    monkeypatch.setattr(importer, "PROGRESS_EVERY", 7)
    rows = "plate,reason\n" + "".join(f"冀F{n:05d},x\n" for n in range(40))
    resp = await client.post(
        "/api/v1/watchlists/jobs/import", params={"create": "1", "job": "1"}, data=rows.encode()
    )
    assert resp.status == 202
    started = await resp.json()
    assert started["rows_total"] == 40 and started["state"] in ("running", "applying", "done")
    done = await _job(client, started["job"])
    assert done["state"] == "done" and done["rows_done"] == 40 and done["result"]["entries"] == 40
    listed = (await (await client.get("/api/v1/watchlists")).json())["watchlists"]
    assert listed[0]["entries"] == 40
    # A bad file: rejected whole, every bad line named, the list untouched.
    bad = "plate,reason\n鲁A12345,ok\n,empty\n,also empty\n"
    resp = await client.post("/api/v1/watchlists/jobs/import", params={"job": "1"}, data=bad.encode())
    failed = await _job(client, (await resp.json())["job"])
    assert failed["state"] == "rejected" and failed["result"] is None
    assert {p["line"] for p in failed["problems"]} >= {3, 4}
    assert matches(client, "鲁A12345") == []
    assert (await client.get("/api/v1/watchlists/imports/nope")).status == 404


async def test_a_pattern_entry_alerts_on_its_pattern_by_default(client):
    """A list made without naming its alert kinds alerts on what its patterns match: a wildcard entry
    such as 鲁A*23?5 was written to be alerted on (it never alerted unless the list was changed by hand)."""
    assert (await client.post("/api/v1/watchlists", json={"list_id": "p", "name": "部分号牌"})).status == 200
    assert (await client.post("/api/v1/watchlists/p/entries", json={"plate": "鲁A*23?5"})).status == 200
    assert matches(client, "鲁AK2385") == ["p:鲁A*23?5"]
    listed = (await (await client.get("/api/v1/watchlists")).json())["watchlists"][0]["watchlist"]
    assert sorted(listed["alert_kinds"]) == ["equivalent", "exact", "wildcard"]
    # the same through an import that creates its list
    resp = await client.post(
        "/api/v1/watchlists/q/import", params={"create": "1"}, data="plate\n鲁B*88?9\n".encode()
    )
    assert resp.status == 200, await resp.text()
    assert matches(client, "鲁BQ8819") == ["q:鲁B*88?9"]


async def test_an_import_that_creates_its_list_takes_every_list_setting(client):
    params = {
        "create": "1",
        "name": "专案关注",
        "kind": "vehicle",
        "action": "covert",
        "priority": "70",
        "restricted": "1",
        "alert_kinds": "exact,edit,province,wildcard",
        "max_swaps": "1",
        "valid_until": "2031-01-01T00:00:00+08:00",
        "source": "专案组",
        "owner": "wang.analyst",
    }
    resp = await client.post("/api/v1/watchlists/case7/import", params=params, data=CSV.encode())
    assert resp.status == 200, await resp.text()
    (got,) = [w["watchlist"] for w in (await (await client.get("/api/v1/watchlists")).json())["watchlists"]]
    got["alert_kinds"] = sorted(got["alert_kinds"])
    assert got == {
        "list_id": "case7",
        "name": "专案关注",
        "kind": "vehicle",
        "action": "covert",
        "priority": 70,
        "restricted": True,
        "alert_kinds": ["edit", "exact", "province", "wildcard"],
        "max_swaps": 1,
        "valid_from": None,
        "valid_until": datetime.fromisoformat("2031-01-01T00:00:00+08:00").timestamp(),
        "source": "专案组",
        "owner": "wang.analyst",
    }
    # a bad setting is a clear 400 and changes nothing; settings for a list that exists are refused
    bad = await client.post(
        "/api/v1/watchlists/other/import", params={"create": "1", "alert_kinds": "fuzzy"}, data=CSV.encode()
    )
    assert bad.status == 400 and "list settings" in (await bad.json())["error"]
    again = await client.post("/api/v1/watchlists/case7/import", params={"priority": "10"}, data=CSV.encode())
    assert again.status == 409 and "POST /api/v1/watchlists" in (await again.json())["error"]
    assert len((await (await client.get("/api/v1/watchlists")).json())["watchlists"]) == 1
