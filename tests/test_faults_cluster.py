"""Fault suite with several hubs (issue 23): two real ``cordon hub`` processes on one PostgreSQL database
and one Mosquitto (a shared subscription), HAProxy in front of them, one real edge streaming camera reads,
a console signed in through the front door and the checkpoint's tablet watching, and a fault mid-stream:

1. one hub SIGKILLed while it holds at least 100 events it received and has not acknowledged (its
   ``events_unacknowledged`` health figure; otherwise the case fails as "fault missed"), with clone pairs
   around the kill whose findings must be complete: each pair found once, nothing else found;
2. one hub cut off from PostgreSQL (a relay between it and the database that resets and refuses) but not
   from the broker;
3. the hub holding the work that runs once SIGKILLed;
4. a rolling restart, one hub at a time.

Each settles as the single-hub suite does (tests/test_faults.py, ``Rig.settle``): every read a camera got
a 200 for is stored exactly once, every expected alert reached the console behind the front and the
tablet, none twice on one connection, the edge's outbox drained.

The front door here is the demo's HAProxy configuration (cordon.demo_cluster.front_door_config): the
deployed one's behaviour over plain HTTP, so the hubs need no PKI; tests/test_hub_cluster.py runs the
deployed file itself over TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cordon.bench.clonepairs import ClonePairs, clone_plates, count_findings
from cordon.demo_cluster import front_door_config
from cordon.testing import free_port
from tests.support import (
    Mosquitto,
    Service,
    UplinkCut,
    edge_service,
    get_health,
    hub_service,
    login,
    scrape,
    session,
    until,
    wait_port,
)
from tests.test_faults import (
    CAMERAS,
    CHECKPOINT,
    CONSOLE_CODE,
    FEED_TOKEN,
    KEEPALIVE_S,
    METRICS_TOKEN,
    TABLET_CODE,
    WATCHLIST,
    AlertWatch,
    Cameras,
    Rig,
    _hold_checkpoints_lock,
)

pytestmark = [pytest.mark.fault, pytest.mark.timeout(240)]

HAPROXY = "/usr/sbin/haproxy"
GROUP = "cordon-hubs"
#: What the killed hub must hold, received and not acknowledged, when it is killed.
HELD = 100
#: The edge's ack timeout in cases 1 and 3: longer than a case, so only a hub's will makes it send again.
LONG_ACK_S = 60.0
#: Clone pairs of each kind in case 1 (see there).
PAIRS = 10
BEAT_S, LEASE_S = 0.25, 1.0


@dataclass
class Front:
    """The front door's address, standing in for a service where a watcher wants one (``base``)."""

    base: str


@dataclass
class Cluster:
    broker: Mosquitto
    hubs: dict[str, Service]
    edge: Service
    front: Front
    dsn: str
    http: aiohttp.ClientSession
    haproxy: subprocess.Popen[bytes]
    hooks: dict[str, list[float]] = field(default_factory=dict)
    """When each webhook delivery arrived (monotonic), by idempotency key (the alert id)."""
    figures: dict[str, Any] = field(default_factory=dict)

    def rig(self, survivor: str) -> Rig:
        """The single-hub suite's rig over this cluster, to settle with (``survivor``: the hub whose log and
        metrics it reports)."""
        r = Rig(self.broker, self.hubs[survivor], self.edge, self.http, store_dsn=self.dsn)
        r.figures = self.figures
        return r

    async def health(self, name: str) -> dict[str, Any]:
        return await get_health(self.http, f"{self.hubs[name].base}/api/v1/health")

    async def metrics(self, name: str) -> dict[str, float]:
        return await scrape(self.http, self.hubs[name].base, METRICS_TOKEN)

    async def in_rotation(self) -> set[str]:
        """Which hubs answer through the front (ok or degraded), asked on fresh connections a few times."""
        seen: set[str] = set()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
            for _ in range(6):
                with contextlib.suppress(aiohttp.ClientError):
                    async with fresh.get(f"{self.front.base}/api/v1/health") as resp:
                        seen.add((await resp.json())["hub"])  # a degraded hub's 503 names it too
        return seen

    async def holding(self, name: str, at_least: int, within_s: float = 30.0) -> int:
        """Wait until hub ``name`` holds ``at_least`` unacknowledged events; "fault missed" otherwise."""
        deadline = time.monotonic() + within_s
        while True:
            held = (await self.health(name))["events_unacknowledged"]
            if held >= at_least:
                self.figures["held_at_fault"] = held
                return int(held)
            if time.monotonic() > deadline:
                pytest.fail(f"fault missed: hub {name} never held {at_least} unacknowledged events ({held})")
            await asyncio.sleep(0.02)

    def logs(self) -> str:
        return "".join(f"--- {n} log ---\n{h.log()[-2000:]}\n" for n, h in self.hubs.items())


@contextlib.asynccontextmanager
async def cluster(
    tmp_path: Path,
    pg_cluster: Any,
    *,
    ack_timeout_s: float = 2.0,
    relay_b: bool = False,
    hub_extra: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[Cluster, UplinkCut | None]]:
    """Two hubs (``a``, ``b``), broker, front door and edge, the edge's mirror in sync; ``relay_b``: hub b
    reaches PostgreSQL through an ``UplinkCut`` (returned) that the case can cut."""
    name = f"faults_{time.monotonic_ns()}"
    dsn = await asyncio.to_thread(pg_cluster.create_database, name)
    parts = conninfo_to_dict(dsn)
    secret = tmp_path / "db-password"
    secret.write_text(f"{parts.pop('password')}\n", encoding="utf-8")
    relay = UplinkCut(int(parts["port"])) if relay_b else None
    key = tmp_path / "session-key"
    key.write_text("s" * 48 + "\n")
    watchlist = tmp_path / "watchlist.csv"
    watchlist.write_text(WATCHLIST, encoding="utf-8")
    hooks: dict[str, list[float]] = {}

    async def hook(request: web.Request) -> web.Response:
        hooks.setdefault(request.headers["Idempotency-Key"], []).append(time.monotonic())
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    runner = web.AppRunner(receiver)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    broker = Mosquitto(tmp_path / "mosquitto")

    def hub(n: str) -> Service:
        store_parts = dict(parts, port=relay.port) if relay is not None and n == "b" else parts
        return hub_service(
            tmp_path / f"hub-{n}",
            broker.url,
            watchlist_csv=watchlist if n == "a" else None,  # hub b reads the lists from the store
            token=CONSOLE_CODE,
            extra={
                "mqtt": {"client_id": f"hub-{n}", "share_group": GROUP, "keepalive_s": KEEPALIVE_S},
                "metrics": {"token": METRICS_TOKEN},
                "feed": {"token": FEED_TOKEN},
                "console": {"recent_alerts": 1000, "session_key_file": str(key)},
                "alerts": {"fold_window_s": 0},  # every watched read its own alert, counted one by one
                "cluster": {"duty_beat_s": BEAT_S, "duty_lease_s": LEASE_S},  # its name: the client id
                "webhooks": [{"name": "sms", "url": f"http://127.0.0.1:{hook_port}/hook"}],
                "store": {
                    "backend": "postgresql",
                    "dsn": make_conninfo(**store_parts),
                    "password_file": str(secret),
                },
                **(hub_extra or {}),
            },
        )

    hubs = {"a": hub("a"), "b": hub("b")}
    front_port = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(front_door_config(front_port, [h.port for h in hubs.values()]))
    front = Front(f"http://127.0.0.1:{front_port}")
    edge = edge_service(
        tmp_path / "edge",
        CHECKPOINT,
        broker.url,
        cameras=CAMERAS,
        tablet_token=TABLET_CODE,
        extra={
            "mqtt": {"keepalive_s": KEEPALIVE_S, "ack_timeout_s": ack_timeout_s, "status_interval_s": 1.0},
            "hub": {"url": front.base, "token": FEED_TOKEN},  # the feed through the front door
            "metrics": {"token": METRICS_TOKEN},
            "passages": {"window_s": 1.0},
            "tablet": {"recent_alerts": 1000},
        },
    )
    http = session()
    haproxy: subprocess.Popen[bytes] | None = None
    try:
        await asyncio.to_thread(broker.start)
        if relay is not None:
            await relay.start()
        await asyncio.to_thread(hubs["a"].start)  # the first makes the tables and loads the list
        await asyncio.to_thread(hubs["b"].start)
        haproxy = subprocess.Popen(
            [HAPROXY, "-f", str(cfg), "-db"],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "haproxy.log").open("wb"),
        )
        await asyncio.to_thread(wait_port, front_port)
        await asyncio.to_thread(edge.start)
        c = Cluster(broker, hubs, edge, front, dsn, http, haproxy, hooks)
        await until(
            lambda: _eq(c.in_rotation(), {"hub-a", "hub-b"}), timeout=20, what="both hubs in the rotation"
        )
        await login(http, front.base, CONSOLE_CODE)
        version = (await c.metrics("a"))["cordon_hub_watchlist_version"]

        async def mirror_in_sync() -> bool:
            m = await scrape(http, edge.base, METRICS_TOKEN)
            return m["cordon_edge_watchlist_version"] >= version and m["cordon_edge_uplink_connected"] == 1

        await until(mirror_in_sync, timeout=30, what="the edge's watchlist mirror in sync")
        yield c, relay
    finally:
        await http.close()
        await asyncio.to_thread(edge.stop, 10)
        for h in hubs.values():
            await asyncio.to_thread(h.stop, 10)
        if haproxy is not None:
            haproxy.terminate()
            await asyncio.to_thread(haproxy.wait, 10)
        if relay is not None:
            await relay.close()
        broker.stop()
        await runner.cleanup()
        await asyncio.to_thread(pg_cluster.drop_database, name)


async def _eq(value: Any, expected: Any) -> bool:
    return await value == expected


@contextlib.asynccontextmanager
async def watched(c: Cluster) -> AsyncIterator[tuple[AlertWatch, AlertWatch]]:
    """A console signed in through the front door, and the checkpoint's tablet."""
    console = await AlertWatch("console", c.front, CONSOLE_CODE).start()  # type: ignore[arg-type]
    tablet = await AlertWatch("tablet", c.edge, TABLET_CODE).start()
    try:
        yield console, tablet
    finally:
        await console.stop()
        await tablet.stop()


@contextlib.asynccontextmanager
async def streaming(c: Cluster, tag: str) -> AsyncIterator[Cameras]:
    cams = await Cameras(c.edge, tag).start()
    try:
        yield cams
    finally:
        await cams.stop()


def _hooks_once(c: Cluster, console: AlertWatch) -> None:
    """Every alert the console was given went to the webhook (the duty of one hub at a time), and none
    more than twice: webhooks are at least once with the alert id as the idempotency key, and a hub that
    stops, dies or loses its database between a POST and its record leaves it for the next holder of the
    duty to send again: "a receiver sees the same key twice at worst" (central/alerts/webhooks.py)."""
    shown = {a for counts in console.connections for a in counts}
    missing = shown - set(c.hooks)
    assert not missing, f"alerts never delivered to the webhook: {sorted(missing)[:5]}"
    again = {k: at for k, at in c.hooks.items() if len(at) > 1}
    c.figures["webhook_repeats"] = len(again)
    thrice = {k: at for k, at in again.items() if len(at) > 2}
    assert not thrice, f"webhook deliveries made more than twice (at): {dict(list(thrice.items())[:3])}"


async def _hooks_caught_up(c: Cluster, console: AlertWatch) -> None:
    shown = {a for counts in console.connections for a in counts}
    await until(lambda: shown <= set(c.hooks), timeout=30, what="every alert at the webhook")


# -- 1. a hub killed while it holds 100 unacknowledged events ------------------------------------------------


async def test_a_hub_killed_holding_unacknowledged_events(tmp_path, pg_cluster):
    """The database is made slow (a session of the test's own holds the checkpoints table, which every
    batch's transaction updates), so both hubs go on receiving while they cannot commit; once hub a holds
    ``HELD`` events it is SIGKILLed and the table let go. The edge sends hub a's share again on hub a's
    will (its ack timeout is a minute), and hub b stores it.

    Meanwhile clone pairs (cordon.bench.clonepairs: a plate read at 郯城, then at 临清, each read a batch
    the shared subscription gives to either hub) straddle the kill: ``PAIRS`` whose first read is stored
    before the database is held and whose second comes after the kill, ``PAIRS`` whose first read is
    taken while it is held (hub a may die holding it) and whose second comes after the kill, and
    ``PAIRS`` whose both reads are taken while it is held. Every pair is found once, and nothing else."""
    async with (
        cluster(tmp_path, pg_cluster, ack_timeout_s=LONG_ACK_S) as (c, _),
        watched(c) as (console, tablet),
    ):
        pairs = await asyncio.to_thread(ClonePairs(c.broker.port).start)
        try:
            plates = clone_plates(3 * PAIRS)
            before, held, both_held = plates[:PAIRS], plates[PAIRS : 2 * PAIRS], plates[2 * PAIRS :]
            async with streaming(c, "hubkill") as cams:
                pairs.first(before)
                await cams.pushed(60)
                await until(lambda: pairs.unacknowledged() == 0, timeout=30, what="the first reads stored")
                locker = await asyncio.to_thread(_hold_checkpoints_lock, c.dsn)
                try:
                    pairs.first(held + both_held)
                    pairs.second(both_held)
                    await c.holding("a", HELD)
                    killed = time.monotonic()
                    c.hubs["a"].kill()
                finally:
                    locker.close()
                pairs.second(before + held)
                before_b = (await c.health("b"))["reads_total"]
                await cams.pushed(60, what="reads accepted after the kill")
                await until(
                    lambda: _eq(c.in_rotation(), {"hub-b"}), timeout=10, what="hub a out of the rotation"
                )
                c.figures["out_of_rotation_s"] = round(time.monotonic() - killed, 1)
            await c.rig("b").settle(cams, console, tablet)
            assert (await c.health("b"))["reads_total"] > before_b
            assert (await c.health("b"))["events_unacknowledged"] == 0
            assert "went offline: sending again" in c.edge.log(), (
                "the edge did not send again on hub a's will"
            )
            await _hooks_caught_up(c, console)
            _hooks_once(c, console)
            await until(
                lambda: pairs.unacknowledged() == 0, timeout=60, what="every clone pair's reads acknowledged"
            )
            await _clones_complete(c, pairs, console)
        finally:
            await asyncio.to_thread(pairs.stop)


async def _clones_complete(c: Cluster, pairs: ClonePairs, console: AlertWatch) -> None:
    """Every pair injected found once, no other finding, and every finding on the console, once on a
    connection."""
    findings = await asyncio.to_thread(count_findings, c.dsn, pairs.injected())
    c.figures["clone_findings"] = findings
    c.figures["clone_reads_resent"] = pairs.resent
    print(f"\nclone findings: {json.dumps(findings)}")
    assert findings["expected"] == 3 * PAIRS, findings
    assert findings["found"] == findings["expected"], f"clone pairs not found: {findings}\n{c.logs()}"
    assert findings["twice"] == 0 and findings["false"] == 0 and findings["elsewhere"] == 0, findings
    ids = {
        alert_id
        for (alert_id,) in await asyncio.to_thread(
            _sql, c.dsn, "SELECT alert_id FROM alerts WHERE entry_id LIKE 'rule:clone:%'"
        )
    }
    await until(
        lambda: ids <= {a for counts in console.connections for a in counts},
        timeout=30,
        what="every clone finding on the console",
    )
    twice = console.twice()
    assert not twice, "\n".join(twice[:10])


def _sql(dsn: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(statement).fetchall()


# -- 2. a hub cut off from PostgreSQL ------------------------------------------------------------------------


async def test_a_hub_cut_off_from_postgresql_leaves_the_rotation_and_acknowledges_nothing(
    tmp_path, pg_cluster
):
    """Hub b leaves the front's rotation (its health says degraded) and the shared events (its own status
    says offline, central/ingest/share.py): the broker gives hub a every batch, the edge sends again at
    once what b had not acknowledged, and b is given nothing more until a probe of its store commits."""
    async with cluster(tmp_path, pg_cluster, relay_b=True) as (c, relay), watched(c) as (console, tablet):
        assert relay is not None
        async with streaming(c, "pgcut") as cams:
            await cams.pushed(60)
            assert (await c.metrics("b"))["cordon_hub_batches_committed_total"] > 0, "hub b took no share"
            relay.cut(reset=True)
            cut = time.monotonic()

            async def b_degraded() -> bool:
                health = await c.health("b")
                return health["status"] == "degraded" and "store" in " ".join(health["reasons"])

            await until(b_degraded, timeout=15, what="hub b degraded by its store")
            c.figures["degraded_after_s"] = round(time.monotonic() - cut, 1)
            await until(lambda: _eq(c.in_rotation(), {"hub-a"}), timeout=10, what="hub b out of the rotation")
            c.figures["out_of_rotation_s"] = round(time.monotonic() - cut, 1)
            await until(lambda: _taking(c, "b", False), timeout=10, what="hub b to leave the events")
            left = time.monotonic()
            c.figures["left_events_s"] = round(left - cut, 1)

            # What b took and could not commit is sent again on its offline, not at the ack timeout: the
            # edge soon holds nothing unacknowledged from before b left.
            async def acknowledged_since_left() -> bool:
                m = await scrape(c.http, c.edge.base, METRICS_TOKEN)
                return bool(m.get("cordon_edge_outbox_oldest_seconds", 0.0) < time.monotonic() - left)

            await until(acknowledged_since_left, timeout=30, what="the events b held acknowledged by hub a")
            c.figures["acknowledged_after_leaving_s"] = round(time.monotonic() - left, 1)
            await asyncio.sleep(0.5)  # what the broker had sent b before its unsubscribe arrives meanwhile
            received = (await c.health("b"))["events_received_total"]
            committed = (await c.metrics("b"))["cordon_hub_batches_committed_total"]
            # Hub b out of the events: the broker gives hub a every batch, and every read accepted so far is
            # stored while hub b is still cut off. (Looked for in a thread: this loop serves the webhook's
            # receiver, which must not stall.)
            await cams.pushed(100, what="reads accepted with hub b cut off")
            owed = set(cams.accepted)
            await until(
                lambda: asyncio.to_thread(lambda: all(c.rig("a").stored()[e] for e in owed)),
                timeout=60,
                interval=0.5,
                what="hub a storing every read accepted so far",
            )
            c.figures["stored_by_a_while_cut_s"] = round(time.monotonic() - cut, 1)
            b = await c.metrics("b")
            assert b["cordon_hub_batches_committed_total"] == committed, "hub b committed while cut off"
            # Out of the shared subscription, hub b was given none of the 100 reads nor any resend.
            assert (await c.health("b"))["events_received_total"] == received, "hub b was given events"
            edge_log = c.edge.log_path.read_text(errors="replace")
            assert "hub hub-b went offline: sending again" in edge_log, "the edge waited for its timeout"
            assert (await c.health("b"))["status"] == "degraded"
            c.figures["b_failed_while_cut"] = b["cordon_hub_commit_failures_total"]
            assert c.hubs["b"].proc is not None and c.hubs["b"].proc.poll() is None, "hub b died"
            relay.restore()
            await until(
                lambda: _eq(c.in_rotation(), {"hub-a", "hub-b"}),
                timeout=30,
                what="hub b back in the rotation",
            )
            c.figures["back_after_restore_s"] = round(time.monotonic() - cut, 1)
            await until(lambda: _taking(c, "b", True), timeout=10, what="hub b to take events again")
            await cams.pushed(40, what="reads accepted after hub b came back")
        await c.rig("a").settle(cams, console, tablet)
        await _hooks_caught_up(c, console)
        _hooks_once(c, console)


async def _taking(c: Cluster, name: str, taking: bool) -> bool:
    return bool((await c.health(name))["taking_events"] is taking)


# -- 3. the hub doing the work that runs once is killed ------------------------------------------------------


async def test_the_hub_holding_the_duties_is_killed_and_the_other_takes_them_over(tmp_path, pg_cluster):
    async with (
        cluster(tmp_path, pg_cluster, ack_timeout_s=LONG_ACK_S) as (c, _),
        watched(c) as (console, tablet),
    ):
        async with streaming(c, "dutykill") as cams:

            async def held() -> dict[str, list[str]] | None:
                got = {n: (await c.health(n))["duties"] for n in c.hubs}
                return got if "webhooks" in got["a"] + got["b"] else None

            duties = await until(held, timeout=20, what="the duties held")
            assert not set(duties["a"]) & set(duties["b"]), f"a duty held by both: {duties}"
            holder, other = ("a", "b") if "webhooks" in duties["a"] else ("b", "a")
            # every duty but the dead hub's own life duty (hub:<name>), which dies with it
            everything = sorted(d for d in duties["a"] + duties["b"] if d != f"hub:hub-{holder}")
            await cams.pushed(60)
            await _hooks_caught_up(c, console)
            await c.rig(holder).work_in_flight()
            killed = time.monotonic()
            c.hubs[holder].kill()
            while sorted((await c.health(other))["duties"]) != everything:
                assert time.monotonic() - killed < 15, f"no takeover: {await c.health(other)}"
                await asyncio.sleep(0.02)
            c.figures["takeover_s"] = round(time.monotonic() - killed, 2)
            print(f"\nduties taken over {c.figures['takeover_s']} s after the holder's SIGKILL")
            await cams.pushed(60, what="reads accepted after the takeover")
        await c.rig(other).settle(cams, console, tablet)
        await _hooks_caught_up(c, console)
        _hooks_once(c, console)
        assert c.figures["takeover_s"] <= 5.0, c.figures


# -- 4. a rolling restart ------------------------------------------------------------------------------------


async def test_a_rolling_restart_of_the_hubs_under_load(tmp_path, pg_cluster):
    async with cluster(tmp_path, pg_cluster) as (c, _), watched(c) as (console, tablet):
        async with streaming(c, "rolling") as cams:
            await cams.pushed(60)
            for n, other in (("a", "b"), ("b", "a")):
                await c.rig(n).work_in_flight()
                await asyncio.to_thread(c.hubs[n].stop)  # SIGINT: as systemctl restart does
                await until(
                    lambda other=other: _eq(c.in_rotation(), {f"hub-{other}"}),
                    timeout=10,
                    what=f"hub {n} out of the rotation",
                )
                await cams.pushed(40, what=f"reads accepted with hub {n} stopped")
                await asyncio.to_thread(c.hubs[n].start)
                await until(
                    lambda: _eq(c.in_rotation(), {"hub-a", "hub-b"}), timeout=20, what=f"hub {n} back"
                )
                await cams.pushed(40, what=f"reads accepted after hub {n} came back")
        await c.rig("a").settle(cams, console, tablet)
        await _hooks_caught_up(c, console)
        _hooks_once(c, console)
        print(f"\nrolling restart: {json.dumps(c.figures)}")
