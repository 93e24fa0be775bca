"""What one hub of several on one PostgreSQL store leaves behind, or took, and another must see (issue 23):
alerts a hub that is gone left undispatched, and the state that lived in one hub's memory. Two real hub
processes on one real PostgreSQL database, each on its own real Mosquitto (so the test says which hub
takes an edge's message); one module fixture for every test here."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central.ingest.routing import Router
from central.record.postgresql.events import ALERT_LOCK
from central.record.postgresql.store import PgStores
from protocols import topics
from protocols.messages import (
    SCHEMA_VERSION,
    Alert,
    AlertHit,
    CheckpointStatus,
    EventBatch,
    EvidenceReply,
    EvidenceRequest,
    PlateRead,
    decode,
    encode,
)
from tests.support import (
    Mosquitto,
    Service,
    get_health,
    get_json,
    hub_service,
    login,
    session,
    until,
    wait_port,
)

CODE = "state-code"
LISTED = ["鲁Q7C5T1", "鲁Q7C5T2", "鲁Q7C5T3"]
FOLDED = [f"鲁R{n:03d}F8" for n in range(12)]  # listed: each seen by both hubs at once
GONE = "hub-gone"


@dataclass
class Cluster:
    hubs: dict[str, Service]
    brokers: dict[str, Mosquitto]
    dsn: str
    seqs: dict[str, int] = field(default_factory=dict)
    edges: dict[str, Any] = field(default_factory=dict)

    def publish_reads(self, hub: str, *plates: str, checkpoint: str = "SD-DZ-001") -> list[int]:
        """Reads of ``plates`` onto ``hub``'s broker in one batch, as an edge sends them: their seqs."""
        now = time.time()
        reads = []
        for plate in plates:
            seq = self.seqs[checkpoint] = self.seqs.get(checkpoint, 0) + 1
            reads.append(
                PlateRead(
                    seq=seq, camera_id="cam1", captured_at=now, plate=plate, plate_raw=plate, plate_valid=True
                )
            )
        batch = EventBatch(v=SCHEMA_VERSION, checkpoint=checkpoint, epoch=1, sent_at=now, events=reads)
        self.client(hub).publish(topics.events(checkpoint), encode(batch), qos=1).wait_for_publish(10)
        return [r.seq for r in reads]

    def client(self, hub: str) -> Any:
        """A connected MQTT client on ``hub``'s broker, standing for the checkpoints' edges."""
        if hub not in self.edges:
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fake-edges-{hub}")
            client.connect("127.0.0.1", self.brokers[hub].port)
            client.loop_start()
            self.edges[hub] = client
        return self.edges[hub]

    def sql(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(statement, args)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def close(self) -> None:
        for client in self.edges.values():
            client.loop_stop()
            client.disconnect()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, pg_cluster) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("state")
    dsn = pg_cluster.create_database(f"state_{time.monotonic_ns()}")
    wl = tmp / "wl.csv"
    wl.write_text(
        "plate,list,action,priority,reason\n"
        + "".join(f"{p},涉毒,intercept,90,线索\n" for p in [*LISTED, *FOLDED]),
        encoding="utf-8",
    )
    brokers = {name: Mosquitto(tmp / f"broker-{name}").start() for name in ("a", "b")}
    hubs = {
        name: hub_service(
            tmp / f"hub-{name}",
            brokers[name].url,
            token=CODE,
            watchlist_csv=wl if name == "a" else None,  # hub b learns the lists from the store
            extra={
                "mqtt": {"client_id": f"cordon-hub-{name}"},
                "cluster": {
                    "name": f"hub-{name}",
                    "duty_beat_s": 0.5,
                    "duty_lease_s": 2,
                    "redispatch_after_s": 1,
                },
                "console": {"session_key_file": str(tmp / "session-key")},
                "store": {"backend": "postgresql", "dsn": dsn},
            },
        )
        for name in ("a", "b")
    }
    (tmp / "session-key").write_text("s" * 48 + "\n")
    for hub in hubs.values():
        hub.start(wait=False)
    try:
        for hub in hubs.values():
            wait_port(hub.port, timeout=30)
        asyncio.run(_ready(hubs, len(LISTED) + len(FOLDED)))
        running = Cluster(hubs, brokers, dsn)
        yield running
        running.close()
    finally:
        for hub in hubs.values():
            hub.stop()
        for broker in brokers.values():
            broker.stop()
        pg_cluster.drop_database(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])


async def _ready(hubs: dict[str, Service], entries: int) -> None:
    """Both hubs connected to their brokers, holding their life duties, and matching every listed entry."""
    async with session() as http:
        for hub in hubs.values():
            await until(lambda hub=hub: _holds_duties(http, hub.base), timeout=30, what=f"{hub.base} ready")
            await login(http, hub.base, CODE)

            async def listed(hub: Service = hub) -> bool:
                lists = (await get_json(http, f"{hub.base}/api/v1/watchlists"))["watchlists"]
                return sum(wl["entries"] for wl in lists) == entries

            await until(listed, timeout=30, what=f"{hub.base} has the lists")


async def console(base: str) -> tuple[Any, Any]:
    """A signed-in console session on ``base`` and its live feed (after its hello frame)."""
    http = session()
    await login(http, base, CODE)
    ws = await http.ws_connect(f"{base}/api/v1/ws")
    hello = await ws.receive_json(timeout=10)
    assert hello["type"] == "hello"
    return http, ws


async def frames_for(ws: Any, seconds: float) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                frames.append(await ws.receive_json())
    except TimeoutError:
        return frames


class Watcher:
    """Records what arrives on ``topic`` at a broker."""

    def __init__(self, port: int, topic: str) -> None:
        self.got: list[bytes] = []
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{time.monotonic_ns()}")
        self._client.on_message = lambda _c, _u, msg: self.got.append(msg.payload)
        self._client.on_connect = lambda c, *_: c.subscribe(topic, 1)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


async def test_an_alert_a_gone_hub_left_undispatched_is_dispatched_by_another_once(cluster):
    """A hub that died between the commit of an alert and its dispatch left it in the store, its own to
    dispatch and not dispatched: the hub holding the redispatch duty takes it over after the grace and
    sends it to its checkpoint once; every console shows it once. (The state is written by the store's
    own code under the gone hub's name: a real kill cannot be timed between a commit and a publish.)"""
    watchers = {n: Watcher(b.port, topics.alerts("SD-DZ-009")) for n, b in cluster.brokers.items()}
    http_a, ws_a = await console(cluster.hubs["a"].base)
    http_b, ws_b = await console(cluster.hubs["b"].base)
    gone = PgStores(cluster.dsn, hub=GONE)
    gone.start()
    try:
        left = Router().route(_alert("gone-1", "SD-DZ-009", raised_at=time.time()))
        assert gone.submit(lambda tx: gone.insert_alert(tx, left)).result(10)
    finally:
        gone.stop()

    def state() -> tuple[Any, ...]:
        return cluster.sql(
            "SELECT dispatch_hub, dispatched_at IS NOT NULL FROM alerts WHERE alert_id = 'gone-1'"
        )[0]

    await until(lambda: state()[1], timeout=15, what="the gone hub's alert dispatched")
    taker, _ = state()
    assert taker in ("hub-a", "hub-b")
    try:
        frames = {"a": await frames_for(ws_a, 2.0), "b": await frames_for(ws_b, 0.1)}
        for name, got in frames.items():
            shown = [f for f in got if f["type"] == "alert" and f["alert"]["alert_id"] == "gone-1"]
            assert len(shown) == 1, f"hub {name}'s console shows the alert once: {shown}"
        copies = {n: [decode(Alert, p).alert_id for p in w.got] for n, w in watchers.items()}
        assert copies[taker[-1]] == ["gone-1"], copies  # the taker's broker had the one copy
        assert copies["b" if taker == "hub-a" else "a"] == []
    finally:
        for w in watchers.values():
            w.close()
        for http, ws in ((http_a, ws_a), (http_b, ws_b)):
            await ws.close()
            await http.close()


JPEG = b"\xff\xd8\xff\xe0" + b"cordon" * 50


def _status(checkpoint: str, online: bool = True) -> bytes:
    return encode(
        CheckpointStatus(v=SCHEMA_VERSION, checkpoint=checkpoint, online=online, sent_at=time.time())
    )


async def test_evidence_replies_on_any_hub_and_deferred_requests_asked_again_by_the_duty(cluster):
    """A picture asked through hub a whose reply reaches only hub b is kept by hub b for hub a, which
    answers with it (no warning at hub b); a picture asked of an offline checkpoint is asked again by
    whichever hub holds the evidence duty when the checkpoint's status reaches any hub."""
    a, b = cluster.hubs["a"], cluster.hubs["b"]
    cluster.client("a").publish(topics.status("SD-DZ-010"), _status("SD-DZ-010"), qos=1, retain=True)
    asked_a = Watcher(cluster.brokers["a"].port, topics.evidence_request("SD-DZ-010"))
    later = {n: Watcher(br.port, topics.evidence_request("SD-DZ-011")) for n, br in cluster.brokers.items()}
    http = session()
    try:
        await login(http, a.base, CODE)
        await until(
            lambda: _online_at(http, a.base, "SD-DZ-010"), timeout=10, what="SD-DZ-010 online at hub a"
        )
        await asyncio.sleep(0.3)  # the store's row is written before the hub's own view takes the status
        fetch = asyncio.create_task(http.get(f"{a.base}/api/v1/evidence/SD-DZ-010/1/5/scene"))
        await until(lambda: bool(asked_a.got), timeout=10, what="hub a asked the checkpoint")
        request = decode(EvidenceRequest, asked_a.got[0])
        for kind, data in (("scene", JPEG), ("plate", JPEG[:100])):
            reply = EvidenceReply(
                v=SCHEMA_VERSION,
                request_id=request.request_id,
                checkpoint="SD-DZ-010",
                epoch=1,
                seq=5,
                kind=kind,
                data=base64.b64encode(data).decode(),
            )
            cluster.client("b").publish(topics.evidence_reply("SD-DZ-010"), encode(reply), qos=1)
        resp = await fetch
        assert resp.status == 200, await resp.text()
        assert await resp.read() == JPEG
        assert "no request" not in b.log(), "hub b recognised the other hub's request"

        # Offline at hub a (it never had its status): deferred in the store, asked once it is online at b.
        resp = await http.get(f"{a.base}/api/v1/evidence/SD-DZ-011/1/6/scene")
        assert resp.status == 409 and (await resp.json())["pending"] is True
        assert cluster.sql("SELECT deferred FROM evidence_requests WHERE checkpoint = 'SD-DZ-011'") == [
            (True,)
        ]
        cluster.client("b").publish(topics.status("SD-DZ-011"), _status("SD-DZ-011"), qos=1, retain=True)
        await until(
            lambda: any(w.got for w in later.values()), timeout=10, what="SD-DZ-011 asked again by the duty"
        )
        await asyncio.sleep(1.5)  # a second ask would come within the duty's poll
        copies = [decode(EvidenceRequest, p) for w in later.values() for p in w.got]
        assert [(r.epoch, r.seq) for r in copies] == [(1, 6)], "asked again once, by one hub"
        assert cluster.sql(
            "SELECT bool_or(deferred) FROM evidence_requests WHERE checkpoint = 'SD-DZ-011'"
        ) == [(False,)]
    finally:
        await http.close()
        for w in (asked_a, *later.values()):
            w.close()


async def test_a_hub_sees_the_read_rates_statuses_and_import_jobs_the_other_took(cluster):
    """What hub a took, asked of hub b: the map's read rate of a checkpoint whose reads hub a ingested
    (and hub b some), a checkpoint's status only hub a received, and an import job hub a runs, polled
    through hub b until it is done (never a 404)."""
    a, b = cluster.hubs["a"], cluster.hubs["b"]
    http_b, ws_b = await console(b.base)
    try:
        cluster.publish_reads("a", "鲁A00001", "鲁A00002", "鲁A00003", checkpoint="SD-DZ-020")
        cluster.publish_reads("b", "鲁A00004", checkpoint="SD-DZ-020")
        # A status of SD-DZ-021 reaches hub a only: hub b's console gets it through the store.
        cluster.client("a").publish(topics.status("SD-DZ-021"), _status("SD-DZ-021"), qos=1)
        depth = 0
        seen: dict[str, dict[str, Any]] = {}

        async def rate_of_020_is_4() -> bool:
            nonlocal depth
            depth += 1  # a status that says something new each time (an edge's outbox depth moves)
            status = CheckpointStatus(
                v=SCHEMA_VERSION, checkpoint="SD-DZ-020", online=True, sent_at=time.time(), outbox_depth=depth
            )
            cluster.client("b").publish(topics.status("SD-DZ-020"), encode(status), qos=1)
            for frame in await frames_for(ws_b, 0.5):
                if frame["type"] == "checkpoint":
                    seen[frame["checkpoint"]["checkpoint"]] = frame["checkpoint"]
            return seen.get("SD-DZ-020", {}).get("reads_per_minute") == 4

        await until(rate_of_020_is_4, timeout=15, what="hub b's map counts hub a's reads of SD-DZ-020")
        assert seen.get("SD-DZ-021", {}).get("online") is True, "hub b's console has the status hub a took"

        http_a = session()
        await login(http_a, a.base, CODE)
        try:
            rows = "plate,reason\n" + "".join(f"冀F{n:05d},x\n" for n in range(300))
            resp = await http_a.post(
                f"{a.base}/api/v1/watchlists/via-a/import",
                params={"create": "1", "job": "1"},
                data=rows.encode(),
            )
            assert resp.status == 202, await resp.text()
            job = (await resp.json())["job"]
        finally:
            await http_a.close()
        states = []

        async def done_at_b() -> bool:
            resp = await http_b.get(f"{b.base}/api/v1/watchlists/imports/{job}")
            assert resp.status == 200, f"hub b does not know hub a's job: {resp.status}"
            status = await resp.json()
            states.append(status["state"])
            return status["state"] not in ("running", "applying")

        await until(done_at_b, timeout=20, what="the job done, seen through hub b")
        assert states[-1] == "done", states
    finally:
        await ws_b.close()
        await http_b.close()


async def test_two_hubs_folding_hits_of_one_vehicle_at_once_raise_one_alert(cluster):
    """Each listed vehicle read at two checkpoints at the same moment, one read taken by each hub: one
    alert per vehicle, the other hit folded into it, whichever hub commits first."""
    # The alerts' lock held here while one batch of every vehicle goes to each hub: both hubs' transactions
    # reach it (at their first hit), so they overlap for certain, as they may by chance in the field.
    with psycopg.connect(cluster.dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ALERT_LOCK,))
        sent = [
            cluster.client(hub).publish(topics.events(cp), _batch(cluster, cp, FOLDED), qos=1)
            for hub, cp in (("a", "SD-DZ-030"), ("b", "SD-DZ-031"))
        ]
        for info in sent:
            info.wait_for_publish(10)

        def both_waiting() -> bool:
            # The first at the alerts' lock, the second at it too, or at a row the first holds to its commit
            (n,) = holder.execute("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted").fetchone()  # type: ignore[misc]
            return n == 2

        await until(both_waiting, timeout=15, what="both hubs' transactions at the alerts' lock")
        holder.execute("SELECT pg_advisory_unlock(%s)", (ALERT_LOCK,))
    where = "checkpoint IN ('SD-DZ-030', 'SD-DZ-031')"

    def hits() -> int:
        (n,) = cluster.sql(
            f"SELECT (SELECT count(*) FROM alerts WHERE {where}) + (SELECT count(*) FROM alert_folds WHERE {where})"
        )[0]
        return int(n)

    await until(lambda: hits() >= 2 * len(FOLDED), timeout=20, what="every hit raised or folded")
    per_vehicle = cluster.sql(
        "SELECT plate_read, count(*) FROM (SELECT convert_from(body, 'UTF8')::json->>'plate_read' AS plate_read "
        f"FROM alerts WHERE {where}) a GROUP BY plate_read"
    )
    twice = {plate: n for plate, n in per_vehicle if n != 1}
    assert not twice and len(per_vehicle) == len(FOLDED), f"alerts raised twice for one vehicle: {twice}"


TANCHENG, LINQING = "SD-LY-001", "SD-LC-001"  # far apart on the ring: minutes between them is too fast


def _clone_read(cluster: Cluster, checkpoint: str, plate: str, at: float) -> bytes:
    seq = cluster.seqs[checkpoint] = cluster.seqs.get(checkpoint, 0) + 1
    read = PlateRead(
        seq=seq,
        camera_id="cam1",
        captured_at=at,
        plate=plate,
        plate_raw=plate,
        plate_valid=True,
        confidence=97.0,
        colour="blue",
    )
    return encode(
        EventBatch(v=SCHEMA_VERSION, checkpoint=checkpoint, epoch=1, sent_at=time.time(), events=[read])
    )


async def test_a_clone_whose_reads_two_hubs_took_is_found_once(cluster):
    """A plate read at 郯城 by hub a, then two minutes later at 临清 (hours away) by hub b: hub b's
    check learns hub a's committed read and finds the clone, once; and a pair whose two reads reach the
    two hubs at once is found too (the second transaction waits for the first's plate lock)."""
    now = time.time()
    cluster.client("a").publish(
        topics.events(TANCHENG), _clone_read(cluster, TANCHENG, "鲁K3C1N5", now - 300), qos=1
    ).wait_for_publish(10)
    await until(
        lambda: cluster.sql("SELECT count(*) FROM reads WHERE plate = '鲁K3C1N5'") == [(1,)],
        timeout=10,
        what="hub a stored the first read",
    )
    cluster.client("b").publish(
        topics.events(LINQING), _clone_read(cluster, LINQING, "鲁K3C1N5", now - 180), qos=1
    ).wait_for_publish(10)
    # At once: both hubs' transactions made to overlap at the alerts' lock (as in the folding test).
    with psycopg.connect(cluster.dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ALERT_LOCK,))
        for hub, cp, at in (("a", TANCHENG, now - 120), ("b", LINQING, now - 60)):
            cluster.client(hub).publish(
                topics.events(cp), _clone_read(cluster, cp, "鲁K3C1N6", at), qos=1
            ).wait_for_publish(10)
        await asyncio.sleep(1.0)  # both batches taken; one waits at the other's locks, or neither started yet
        holder.execute("SELECT pg_advisory_unlock(%s)", (ALERT_LOCK,))

    def clone_alerts(plate: str) -> list[tuple[Any, ...]]:
        return cluster.sql(
            "SELECT alert_id, checkpoint FROM alerts WHERE entry_id LIKE 'rule:clone:%%' "
            "AND convert_from(body, 'UTF8')::json->>'plate_read' = %s",
            plate,
        )

    await until(lambda: len(clone_alerts("鲁K3C1N5")) >= 1, timeout=10, what="the clone of 鲁K3C1N5 found")
    await until(lambda: len(clone_alerts("鲁K3C1N6")) >= 1, timeout=10, what="the clone of 鲁K3C1N6 found")
    await asyncio.sleep(1.0)  # a second finding would come with the later batch, already committed
    assert [cp for _, cp in clone_alerts("鲁K3C1N5")] == [LINQING], "found once, by the hub of the later read"
    assert len(clone_alerts("鲁K3C1N6")) == 1, "found once"


def _batch(cluster: Cluster, checkpoint: str, plates: list[str]) -> bytes:
    now = time.time()
    reads = []
    for plate in plates:
        seq = cluster.seqs[checkpoint] = cluster.seqs.get(checkpoint, 0) + 1
        reads.append(
            PlateRead(
                seq=seq, camera_id="cam1", captured_at=now, plate=plate, plate_raw=plate, plate_valid=True
            )
        )
    return encode(EventBatch(v=SCHEMA_VERSION, checkpoint=checkpoint, epoch=1, sent_at=now, events=reads))


async def test_a_quick_test_result_one_hub_took_reaches_the_other_hubs_console_once(cluster):
    from tests.test_kits_hub import kit_event

    http_a, ws_a = await console(cluster.hubs["a"].base)
    http_b, ws_b = await console(cluster.hubs["b"].base)
    try:
        event = kit_event(cluster.seqs.get("SD-DZ-040", 0) + 1, call="positive", sampled_at=time.time() - 5)
        cluster.seqs["SD-DZ-040"] = event.seq
        batch = EventBatch(
            v=SCHEMA_VERSION, checkpoint="SD-DZ-040", epoch=1, sent_at=time.time(), events=[event]
        )
        cluster.client("a").publish(topics.events("SD-DZ-040"), encode(batch), qos=1).wait_for_publish(10)
        frames = {"a": await frames_for(ws_a, 2.0), "b": await frames_for(ws_b, 0.5)}
        for name, got in frames.items():
            kits = [f["kit"] for f in got if f["type"] == "kit"]
            assert [(k["result_id"], k["result"], k["alert"]) for k in kits] == [
                (event.result.result_id, "positive", True)
            ], f"hub {name}'s console has the result once: {kits}"
    finally:
        for http, ws in ((http_a, ws_a), (http_b, ws_b)):
            await ws.close()
            await http.close()


async def _online_at(http: Any, base: str, checkpoint: str) -> bool:
    body = await get_json(http, f"{base}/api/v1/checkpoints")
    rows = body if isinstance(body, list) else body.get("checkpoints", [])
    return any(c["checkpoint"] == checkpoint and c.get("online") for c in rows)


async def _holds_duties(http: Any, base: str) -> bool:
    try:
        body = await get_health(http, f"{base}/api/v1/health")
    except aiohttp.ClientError:
        return False
    return body["status"] == "ok" and any(d.startswith("hub:") for d in body.get("duties", []))


def _alert(alert_id: str, checkpoint: str, raised_at: float) -> Alert:
    return Alert(
        v=SCHEMA_VERSION,
        alert_id=alert_id,
        checkpoint=checkpoint,
        epoch=1,
        seq=1,
        raised_at=raised_at,
        captured_at=raised_at - 1,
        camera_id="cam1",
        plate_read="鲁Q7C5T9",
        hit=AlertHit(
            entry_id="涉毒:鲁Q7C5T9",
            entry_plate="鲁Q7C5T9",
            list_id="涉毒",
            list_name="涉毒",
            action="intercept",
            priority=90,
            kind="exact",
            score=1.0,
            explanation="完全一致",
        ),
    )
