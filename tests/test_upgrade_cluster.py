"""A rolling upgrade of a cluster, one hub at a time, under load (docs/deploy.md, "Upgrades"): two hubs over one
PostgreSQL database and one broker (``mqtt.share_group``), both of an older commit of this repository's
main that has the cluster but not the newest PostgreSQL migration, take the reads two edges send while
cameras push to them. Hub A is stopped and this code starts in its place (its migration runs, once, under
the lock, while hub B of the older code goes on writing); the two versions serve side by side for a while;
then hub B is upgraded the same way. At the end every read a camera got a 200 for is in the record exactly
once, each listed read raised its alert and every alert was dispatched, nothing was dead-lettered, every migration is recorded once, the
audit chain verifies, and a console of the upgraded hub A was sent the alerts both versions raised. A list
entry added through the older hub while both serve is matched by the upgraded one too: the older code does
not log its list changes for the others (the log came with migration 12), so the upgraded hub notices the
feed version moving with nothing logged and loads its index anew (central/watchlists/follow.py).

The previous release (RELEASES: r1) has no PostgreSQL store and no shared subscriptions, so it cannot form a
cluster: the older side is ``OLDER``, the last commit of main before migration 12 (its environment is built
once, as the release's is, under ~/.cache/cordon-compat/<commit>)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import psycopg
import pytest

from central.record.postgresql.schema import MIGRATIONS
from cordon.testing import ReleaseError, previous_release_python
from tests.compat import CLUSTER_BEFORE_12
from tests.support import (
    Service,
    edge_service,
    get_json,
    hub_service,
    login,
    running,
    scrape,
    session,
    stored_camera_event_ids_postgresql,
    until,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent
OLDER = CLUSTER_BEFORE_12
GROUP = "cordon-hubs"
LISTED = "鲁Q8K2L1"
ADDED = "鲁N7X3K9"  # listed through the older hub while both versions serve
CHECKPOINTS = ("SD-DZ-001", "SD-LY-001")
CODE = "console-code"
METRICS = "metrics-secret"


@pytest.fixture(scope="session")
def older_python() -> str:
    try:
        return str(previous_release_python(ROOT, OLDER))
    except ReleaseError as exc:
        pytest.fail(str(exc), pytrace=False)


def stored(dsn: str) -> Counter[str]:
    try:
        return stored_camera_event_ids_postgresql(dsn)
    except psycopg.Error:  # the tables are being made
        return Counter()


async def batches(http: aiohttp.ClientSession, hub: Service) -> float:
    return (await scrape(http, hub.base, METRICS)).get("cordon_hub_batches_committed_total", 0.0)


async def upgrade(hub: Service) -> float:
    """As docs/deploy.md does it on one hub's box: stop it (SIGINT: it finishes what it took), start this
    release on the same configuration. When the older one had exited."""
    assert await asyncio.to_thread(hub.stop) == 0, hub.log()
    exited = time.time()
    hub.python = sys.executable
    await asyncio.to_thread(hub.start)
    return exited


async def test_a_cluster_upgraded_one_hub_at_a_time_under_load_loses_nothing(
    tmp_path, mosquitto, pg_dsn, older_python
):
    csv = tmp_path / "wl.csv"
    csv.write_text(f"plate,list,action,priority,reason\n{LISTED},drugs,intercept,90,test\n", encoding="utf-8")

    def hub(name: str) -> Service:
        return hub_service(
            tmp_path / name,
            mosquitto.url,
            watchlist_csv=csv if name == "hub-a" else None,  # hub B finds the list in the store
            token=CODE,
            python=older_python,
            extra={
                "mqtt": {"client_id": name, "share_group": GROUP},
                "store": {"backend": "postgresql", "dsn": pg_dsn},
                "metrics": {"token": METRICS},
                "feed": {"token": "feed-secret"},
                # Folding off: every listed read raises its own alert, counted below.
                "alerts": {"fold_window_s": 0},
            },
        )

    a, b = hub("hub-a"), hub("hub-b")
    edges = {
        cp: edge_service(
            tmp_path / cp,
            cp,
            mosquitto.url,
            cameras={"lane1": "cam"},
            extra={"hub": {"url": b.base, "token": "feed-secret"}},
        )
        for cp in CHECKPOINTS
    }
    pushed: list[str] = []
    added: list[str] = []  # reads of ADDED pushed once every hub should match it
    stop = asyncio.Event()
    added_listed = asyncio.Event()

    async def camera(cp: str) -> None:
        async with session() as http:
            n = 0
            while not stop.is_set():
                n += 1
                plate = LISTED if n % 25 == 0 else f"鲁A{n % 100000:05d}"
                if n % 25 == 12 and added_listed.is_set():
                    plate = ADDED
                body = {"plate": plate, "event_id": f"{cp}-{n}", "confidence": 95}
                try:
                    async with http.post(
                        f"{edges[cp].base}/api/v1/cameras/lane1/reads",
                        json=body,
                        headers={"X-Camera-Token": "cam"},
                    ) as resp:
                        if resp.status == 200:
                            pushed.append(f"{cp}-{n}")
                            if plate == ADDED:
                                added.append(f"{cp}-{n}")
                except (OSError, aiohttp.ClientError):
                    pass
                await asyncio.sleep(0.03)

    async def grows(by: int) -> None:
        before = len(await asyncio.to_thread(stored, pg_dsn))
        await until(lambda: _more(pg_dsn, before + by), timeout=60, what=f"{by} more reads in the record")

    alerts_seen: set[str] = set()
    console_since: list[float] = []

    async def console(hub: Service) -> None:
        """A console on an upgraded hub: the ids of the alerts it is sent, and since when it listens."""
        async with session() as http:
            await login(http, hub.base, CODE)
            async with http.ws_connect(f"{hub.base}/api/v1/ws") as ws:
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    frame = json.loads(msg.data)
                    if frame.get("type") == "hello":
                        console_since.append(time.time())
                    elif frame.get("type") == "alert":
                        alerts_seen.add(frame["alert"]["alert_id"])

    older_until = float("inf")  # when the last hub of the older code exited
    with running(a, b, *edges.values()):
        try:
            await asyncio.to_thread(a.start)  # the first start makes the tables (eleven migrations)
            await asyncio.to_thread(b.start)
            for edge in edges.values():
                await asyncio.to_thread(edge.start)
            load = [asyncio.create_task(camera(cp)) for cp in CHECKPOINTS]
            watching: asyncio.Task[None] | None = None
            try:
                await grows(100)
                with psycopg.connect(pg_dsn) as db:
                    older = [v for (v,) in db.execute("SELECT version FROM schema_migrations ORDER BY 1")]
                assert older == list(range(1, 12)), older
                # 1. Hub A: stopped, this code started; its migration runs while hub B writes.
                await upgrade(a)
                watching = asyncio.create_task(console(a))
                # 2. Mixed versions serve for a while: each hub takes batches, the record grows.
                async with session() as http:
                    taken = [await batches(http, a), await batches(http, b)]
                    # A list changed through the older hub while both serve: the upgraded hub matches
                    # it too (the older code does not log its changes for the others to follow).
                    await login(http, b.base, CODE)
                    async with http.post(
                        f"{b.base}/api/v1/watchlists/drugs/entries", json={"plate": ADDED, "reason": "new"}
                    ) as resp:
                        assert resp.status == 200, await resp.text()
                    # The edges match ADDED too (the feed reaches them) and the hubs raise what an edge
                    # hit: hub A's own index is what its metric counts.
                    await until(
                        lambda: _entries(http, a, 2), timeout=10, what="hub A to match the entry hub B added"
                    )
                    assert "lists changed without a logged change" in a.log()
                    added_listed.set()
                    await grows(150)
                    now = [await batches(http, a), await batches(http, b)]
                assert now[0] > taken[0] and now[1] > taken[1], f"both versions took batches: {taken} {now}"
                print(
                    f"\nbatches in the mixed window: hub A (new) {now[0] - taken[0]:.0f}, hub B (older) {now[1] - taken[1]:.0f}"
                )
                # 3. Hub B the same way.
                older_until = await upgrade(b)
                await grows(100)
            finally:
                stop.set()
                await asyncio.gather(*load)
            # 4. Nothing lost or doubled; the outboxes empty; every alert raised and seen.
            await until(
                lambda: _holds(pg_dsn, set(pushed)), timeout=90, what="every read a camera got a 200 for"
            )
            async with session() as http:
                for edge in edges.values():
                    await login(http, edge.base, "tablet-code")
                    await until(lambda e=edge: _outbox_empty(http, e.base), timeout=60, what="outbox empty")
            # Every alert was dispatched (to its checkpoint's tablets, the routes, the webhooks) by a hub.
            await until(lambda: _all_dispatched(pg_dsn), timeout=60, what="every alert dispatched")
            listed = {k for k in pushed if int(k.rsplit("-", 1)[1]) % 25 == 0}
            await asyncio.sleep(2)
            if watching is not None:
                watching.cancel()
        except BaseException:
            for service in (a, b, *edges.values()):
                print(f"--- {service.workdir.name} log:\n{service.log()[-5000:]}")
            raise
    counts = stored(pg_dsn)
    assert len(pushed) > 300 and set(counts) == set(pushed)
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1][:5]
    with psycopg.connect(pg_dsn) as db:
        dead = [
            (at, bytes(reason).decode())
            for at, reason in db.execute("SELECT received_at, reason FROM dead_letters ORDER BY id")
        ]
        versions = [v for (v,) in db.execute("SELECT version FROM schema_migrations")]
        alerts = db.execute("SELECT count(*) FROM alerts WHERE list_id = 'drugs'").fetchone()[0]
    # The older code stores an edge's other events (hits, gaps) with a check, then a plain insert: a resend
    # stored by the other hub in that moment failed on the unique key and went to the dead letters (the
    # batch was stored by that other hub). This code's insert waits for the other and finds the event
    # (tests/test_record_postgresql.py). So a dead letter is allowed only while an older hub ran, of that
    # race alone, and none after.
    older_race = [
        (at, why)
        for at, why in dead
        if at < older_until and "events_pkey" in why and "UniqueViolation" in why
    ]
    assert dead == older_race, dead
    assert sorted(versions) == list(range(1, len(MIGRATIONS) + 1))  # each once
    assert alerts == len(listed) + len(added), (alerts, len(listed), len(added))
    # A console of the upgraded hub A was sent every alert raised after it connected, by either hub: hub
    # B was of the older code for the first part of that time.
    assert console_since, "the console on hub A never got its hello"
    with psycopg.connect(pg_dsn) as db:
        raised = {
            i
            for (i,) in db.execute(
                "SELECT alert_id FROM alerts WHERE raised_at > %s", (console_since[0] + 1,)
            )
        }
    assert len(raised) > 5 and raised <= alerts_seen, sorted(raised - alerts_seen)[:5]
    print(f"\ndead letters of the older code's race: {len(older_race)}")
    print(f"\nreads {len(pushed)}, alerts {alerts} (seen by the console since it connected: {len(raised)})")
    verified = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cordon", "audit", "verify", "--config", str(a.workdir / "hub.toml")],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"], verified.stdout


async def _entries(http: aiohttp.ClientSession, hub: Service, n: int) -> bool:
    return (await scrape(http, hub.base, METRICS)).get("cordon_hub_watchlist_entries") == n


async def _all_dispatched(dsn: str) -> bool:
    def count() -> int:
        with psycopg.connect(dsn) as db:
            return db.execute("SELECT count(*) FROM alerts WHERE dispatched_at IS NULL").fetchone()[0]

    return await asyncio.to_thread(count) == 0


async def _more(dsn: str, n: int) -> bool:
    return len(await asyncio.to_thread(stored, dsn)) >= n


async def _holds(dsn: str, pushed: set[str]) -> bool:
    return pushed <= set(await asyncio.to_thread(stored, dsn))


async def _outbox_empty(http: aiohttp.ClientSession, base: str) -> bool:
    status = await get_json(http, f"{base}/api/v1/status")
    return status["outbox"]["depth"] == 0
