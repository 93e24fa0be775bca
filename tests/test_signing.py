"""Ed25519 signatures on MQTT messages: a signed message opens only with the sender's key, and a
compromised broker can forge neither a batch of reads for the hub nor an ack or a delta for an edge."""

from __future__ import annotations

import json
import sqlite3
import time

import paho.mqtt.client as paho
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cordon.pki import Pki
from protocols import signing, topics
from protocols.feed import EntryUpsert, FeedDelta
from protocols.matching import Entry
from protocols.messages import SCHEMA_VERSION, Ack, CheckpointStatus, EventBatch, PlateRead, encode
from runtime.signkeys import private_key
from tests.support import edge_service, get_json, hub_service, login, running, session, until


def test_a_signed_message_opens_only_with_the_senders_key():
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    message = b'{"v":1,"x":"\xe9\xb2\x81A12345"}'
    signed = signing.sign(message, key)
    assert signed.startswith(message[:-1]) and signed.endswith(b'"}')
    assert json.loads(signed)["x"] == json.loads(message)["x"], "still one JSON object"
    assert signing.open_signed(signed, key.public_key(), required=True) == message
    with pytest.raises(signing.SignatureError, match="does not verify"):
        signing.open_signed(signed, other.public_key(), required=True)
    tampered = signed.replace(b"A12345", b"A12346")
    with pytest.raises(signing.SignatureError, match="does not verify"):
        signing.open_signed(tampered, key.public_key(), required=True)
    with pytest.raises(signing.SignatureError, match="unsigned"):
        signing.open_signed(message, key.public_key(), required=True)
    assert signing.open_signed(message, key.public_key(), required=False) == message
    with pytest.raises(ValueError):
        signing.sign(b"[1,2]", key)


def forge(broker_port: int, topic: str, payload: bytes, client_id: str) -> None:
    """What a compromised broker (or anyone on it) could publish."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.connect("127.0.0.1", broker_port)
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


@pytest.mark.system
async def test_forged_batches_acks_and_deltas_are_refused(tmp_path, mosquitto):
    pki = Pki(tmp_path / "pki")
    pki.init()
    pki.issue("SD-DZ-001")
    pki.issue("cordon-hub")
    wl = tmp_path / "wl.csv"
    wl.write_text("plate,list,action,priority,reason\n鲁Q8K2L1,涉毒,intercept,90,线索\n", encoding="utf-8")
    hub = hub_service(
        tmp_path / "hub",
        mosquitto.url,
        watchlist_csv=wl,
        extra={
            "feed": {"token": "feed-secret"},
            "signing": {
                "key_file": str(tmp_path / "pki" / "cordon-hub" / "signing.key"),
                "keys_dir": str(tmp_path / "pki"),
                "required": True,
            },
        },
    )
    edge = edge_service(
        tmp_path / "edge",
        "SD-DZ-001",
        mosquitto.url,
        cameras={"cam": "t"},
        extra={
            "hub": {"url": "", "token": ""},
            "signing": {
                "key_file": str(tmp_path / "pki" / "SD-DZ-001" / "signing.key"),
                "hub_public_key_file": str(tmp_path / "pki" / "cordon-hub" / "signing.pub"),
                "required": True,
            },
        },
    )
    hub.start()
    edge.start()
    stranger = Ed25519PrivateKey.generate()
    with running(hub, edge):
        async with session() as http, session() as console:  # one cookie jar per service: same host
            await login(console, hub.base, "console-code")
            await login(http, edge.base, "tablet-code")
            # the honest path, every message signed: a read is stored and acknowledged
            async with http.post(
                f"{edge.base}/api/v1/cameras/cam/reads",
                json={"plate": "鲁A12345", "event_id": "e1"},
                headers={"X-Camera-Token": "t"},
            ) as resp:
                assert resp.status == 200
                seq = (await resp.json())["seq"]
            await until(lambda: _depth(http, edge, 0), timeout=30, what="the signed read acknowledged")
            # the evidence round trip is signed too: the hub takes the edge's signed reply (this read has
            # no picture, so the reply is a reason; a refused signature would leave the hub waiting: 504)
            epoch = (await get_json(http, f"{edge.base}/api/v1/status"))["epoch"]
            async with console.get(f"{hub.base}/api/v1/evidence/SD-DZ-001/{epoch}/{seq}/scene") as resp:
                assert resp.status == 404 and "not kept" in (await resp.json())["error"]

            # a forged batch in the checkpoint's name: dead-lettered, never stored, never acknowledged
            batch = EventBatch(
                v=SCHEMA_VERSION,
                checkpoint="SD-DZ-001",
                epoch=7,
                sent_at=time.time(),
                events=[
                    PlateRead(
                        seq=1,
                        camera_id="cam",
                        captured_at=time.time(),
                        plate="鲁A99999",
                        plate_raw="鲁A99999",
                        plate_valid=True,
                        camera_event_id="forged",
                    )
                ],
            )
            forge(
                mosquitto.port, topics.events("SD-DZ-001"), signing.sign(encode(batch), stranger), "forger-1"
            )
            letters = await until(
                lambda: _letters(console, hub), timeout=30, what="the forged batch's dead letter"
            )
            assert "signature does not verify" in letters[0]["reason"]

            # a forged ack: the edge drops it and keeps the read it has not had acknowledged
            await http.post(
                f"{edge.base}/api/v1/cameras/cam/reads",
                json={"plate": "鲁A54321"},
                headers={"X-Camera-Token": "t"},
            )
            hub.stop()  # so no honest ack races the forged one
            status = await get_json(http, f"{edge.base}/api/v1/status")
            epoch = status["epoch"]
            forge(
                mosquitto.port,
                topics.ack("SD-DZ-001"),
                signing.sign(encode(Ack(v=SCHEMA_VERSION, epoch=epoch, ranges=[(1, 100)])), stranger),
                "forger-2",
            )
            # a forged delta: the edge's mirror does not take it
            delta = FeedDelta(
                v=SCHEMA_VERSION,
                version=99,
                changes=[EntryUpsert(entry=Entry(entry_id="x:鲁A77777", list_id="x", plate="鲁A77777"))],
            )
            forge(mosquitto.port, topics.feed_delta(), signing.sign(encode(delta), stranger), "forger-3")
            await until(lambda: _bad_signatures(http, edge, 2), timeout=30, what="both forgeries dropped")
            status = await get_json(http, f"{edge.base}/api/v1/status")
            assert status["outbox"]["depth"] >= 1, "the forged ack deleted nothing"
            assert status["feed"]["version"] != 99
    with sqlite3.connect(tmp_path / "hub" / "data" / "hub.db") as db:
        assert (
            db.execute("SELECT count(*) FROM dead_letters WHERE reason LIKE 'signature%'").fetchone()[0] == 1
        )
    assert private_key(tmp_path / "pki" / "SD-DZ-001" / "signing.key")


async def _depth(http, edge, want):
    return (await get_json(http, f"{edge.base}/api/v1/status"))["outbox"]["depth"] == want


async def _letters(http, hub):
    letters = (await get_json(http, f"{hub.base}/api/v1/dead-letters"))["dead_letters"]
    return [d for d in letters if "signature" in d["reason"]] or None


async def _bad_signatures(http, edge, want):
    async with http.get(f"{edge.base}/metrics") as resp:
        text = await resp.text()
    line = next(x for x in text.splitlines() if x.startswith("cordon_edge_bad_signatures_total"))
    return float(line.split()[-1]) >= want


#: Every topic the hub publishes on (the edges publish the others: events, status, evidence replies).
HUB_PUBLISHES = {
    topics.TopicKind.ACK,
    topics.TopicKind.ALERTS,
    topics.TopicKind.ACCOUNTS,
    topics.TopicKind.EVIDENCE_REQUEST,
    topics.TopicKind.HUB_STATUS,
    topics.TopicKind.HUB_PARAMETERS,
    topics.TopicKind.FEED_DELTA,
    topics.TopicKind.FEED_VERSION,
}


def _kind(topic: str) -> topics.TopicKind | None:
    try:
        return topics.parse(topic).kind
    except topics.TopicError:
        return None


@pytest.mark.system
async def test_everything_the_hub_publishes_is_signed(tmp_path, mosquitto):
    """Acks, alerts, officer accounts, evidence requests, hub status and parameters, feed deltas and versions: with a
    signing key, the hub signs every one (an unsigned account set is dropped by edges that require
    signatures, so disabling an officer would never reach the checkpoint)."""
    pki = Pki(tmp_path / "pki")
    pki.init()
    pki.issue("SD-DZ-001")
    pki.issue("cordon-hub")
    hub_public = private_key(tmp_path / "pki" / "cordon-hub" / "signing.key").public_key()
    edge_key = private_key(tmp_path / "pki" / "SD-DZ-001" / "signing.key")
    wl = tmp_path / "wl.csv"
    wl.write_text("plate,list,action,priority,reason\n鲁Q8K2L1,涉毒,intercept,90,线索\n", encoding="utf-8")
    seen: list[tuple[str, bytes]] = []
    sniffer = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="sniffer")
    sniffer.on_message = lambda c, u, m: seen.append((m.topic, bytes(m.payload)))
    sniffer.connect("127.0.0.1", mosquitto.port)
    sniffer.subscribe(topics.PREFIX + "/#", qos=1)
    sniffer.loop_start()
    hub = hub_service(
        tmp_path / "hub",
        mosquitto.url,
        watchlist_csv=wl,
        extra={
            "evidence": {"wait_s": 0.5},
            "signing": {
                "key_file": str(tmp_path / "pki" / "cordon-hub" / "signing.key"),
                "keys_dir": str(tmp_path / "pki"),
                "required": True,
            },
        },
    )
    hub.start()
    try:
        with running(hub):
            async with session() as console:
                await login(console, hub.base, "console-code")
                # a listed plate from the checkpoint, signed with its key: an ack and an alert
                now = time.time()
                read = PlateRead(
                    seq=1,
                    camera_id="cam",
                    captured_at=now,
                    plate="鲁Q8K2L1",
                    plate_raw="鲁Q8K2L1",
                    plate_valid=True,
                )
                batch = EventBatch(
                    v=SCHEMA_VERSION, checkpoint="SD-DZ-001", epoch=7, sent_at=now, events=[read]
                )
                forge(
                    mosquitto.port, topics.events("SD-DZ-001"), signing.sign(encode(batch), edge_key), "edge"
                )
                # an officer account for the checkpoint, and a watchlist change: accounts, delta, version
                async with console.post(
                    f"{hub.base}/api/v1/users",
                    json={
                        "username": "chen.officer",
                        "role": "officer",
                        "checkpoint": "SD-DZ-001",
                        "password": "checkpoint night 02",
                    },
                ) as resp:
                    assert resp.status == 201, await resp.text()
                async with console.post(
                    f"{hub.base}/api/v1/watchlists/涉毒/entries", json={"plate": "鲁A77777"}
                ) as resp:
                    assert resp.status < 300, await resp.text()
                # a picture asked of the checkpoint, online (nobody answers: the request is what counts)
                status = CheckpointStatus(v=SCHEMA_VERSION, checkpoint="SD-DZ-001", online=True, sent_at=now)
                forge(
                    mosquitto.port, topics.status("SD-DZ-001"), signing.sign(encode(status), edge_key), "edge"
                )

                async def online() -> bool:
                    listed = (await get_json(console, f"{hub.base}/api/v1/checkpoints"))["checkpoints"]
                    return any(c["checkpoint"] == "SD-DZ-001" and c.get("online") for c in listed)

                await until(online, timeout=30, what="the checkpoint online at the hub")
                async with console.get(f"{hub.base}/api/v1/evidence/SD-DZ-001/7/1/scene") as resp:
                    assert resp.status in (404, 504)

                def kinds() -> set:
                    return {_kind(t) for t, p in seen if p}

                await until(
                    lambda: HUB_PUBLISHES <= kinds() or None, timeout=30, what=f"every hub topic ({kinds()})"
                )
    finally:
        sniffer.loop_stop()
        sniffer.disconnect()
    from_hub = [(t, p) for t, p in seen if p and _kind(t) in HUB_PUBLISHES]
    unsigned = []
    for topic, payload in from_hub:
        try:
            signing.open_signed(payload, hub_public, required=True)
        except signing.SignatureError as exc:
            unsigned.append((topic, str(exc)))
    assert not unsigned, f"published by the hub without a valid signature: {unsigned}"
