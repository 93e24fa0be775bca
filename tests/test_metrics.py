"""/metrics on hub and edge: Prometheus text, behind the metrics token (or a signed-in person)."""

import asyncio
import re
import time

from central.app import create_app as create_hub
from central.settings import ConsoleSettings, HubSettings, MetricsSettings, WatchlistSettings
from central.settings import MqttSettings as HubMqtt
from central.web import keys as hub_keys
from edge.app import create_app as create_edge
from edge.settings import CameraSettings, EdgeSettings
from edge.settings import MetricsSettings as EdgeMetrics
from edge.settings import MqttSettings as EdgeMqtt
from protocols.messages import SCHEMA_VERSION, EventBatch, PlateRead, encode
from runtime.metrics import Metric, render

SAMPLE = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+$')


def parse(text):
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        assert SAMPLE.match(line), f"not Prometheus text: {line!r}"
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    return values


def test_render_escapes_label_values():
    text = render([Metric("x_total", "counter", "x").add(3, camera='a"b\\c')])
    assert 'x_total{camera="a\\"b\\\\c"} 3' in text and "# TYPE x_total counter" in text


async def test_hub_metrics(aiohttp_client, tmp_path, dead_broker_url):
    wl = tmp_path / "wl.csv"
    wl.write_text("plate,list\n鲁Q8K2L1,drugs\n", encoding="utf-8")
    app = create_hub(
        HubSettings(
            data_dir=str(tmp_path / "hub"),
            mqtt=HubMqtt(url=dead_broker_url),
            console=ConsoleSettings(token="c"),
            metrics=MetricsSettings(token="scrape"),
            watchlists=WatchlistSettings(csv=[str(wl)]),
        )
    )
    client = await aiohttp_client(app)
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
    batch = EventBatch(
        v=SCHEMA_VERSION,
        checkpoint="SD-DZ-001",
        epoch=1,
        sent_at=time.time(),
        events=[
            PlateRead(
                seq=1,
                camera_id="c",
                captured_at=time.time(),
                plate="鲁Q8K2LI",
                plate_raw="鲁Q8K2LI",
                plate_valid=True,
            )
        ],
    )
    app[hub_keys.INGEST].handle("cordon/v1/cp/SD-DZ-001/events", encode(batch), time.time()).result(5)
    app[hub_keys.INGEST].handle("cordon/v1/cp/SD-DZ-001/events", b"junk", time.time()).result(5)
    resp = await client.get("/metrics", headers={"Authorization": "Bearer scrape"})
    assert resp.status == 200 and resp.content_type == "text/plain"
    values = parse(await resp.text())
    assert values["cordon_hub_reads_ingested_total"] == 1
    assert values['cordon_hub_alerts_total{kind="equivalent"}'] == 1
    assert values["cordon_hub_dead_letters_total"] == 1
    assert values["cordon_hub_broker_connected"] == 0
    assert values["cordon_hub_watchlist_entries"] == 1 and values["cordon_hub_watchlist_version"] == 1
    # the metrics token opens nothing else
    assert (await client.get("/api/v1/alerts", headers={"Authorization": "Bearer scrape"})).status == 401


async def test_edge_metrics(aiohttp_client, tmp_path, dead_broker_url):
    app = create_edge(
        EdgeSettings(
            checkpoint="SD-DZ-001",
            data_dir=str(tmp_path / "edge"),
            mqtt=EdgeMqtt(url=dead_broker_url, reconnect_min_s=5),
            cameras=[CameraSettings(id="lane1", token="t")],
            metrics=EdgeMetrics(token="s"),
        )
    )
    client = await aiohttp_client(app)
    for body in ({"plate": "鲁A12345"}, {"plate": "鲁B12345"}):
        assert (
            await client.post("/api/v1/cameras/lane1/reads", headers={"X-Camera-Token": "t"}, json=body)
        ).status == 200
    await client.post("/api/v1/cameras/lane1/reads", headers={"X-Camera-Token": "nope"}, json={"plate": "x"})
    assert (await client.get("/metrics")).status == 401
    values = parse(await (await client.get("/metrics", headers={"Authorization": "Bearer s"})).text())
    assert values["cordon_edge_reads_total"] == 2
    assert values["cordon_edge_outbox_depth"] == 2, "nothing acknowledged: the uplink is down"
    assert values["cordon_edge_uplink_connected"] == 0
    assert values['cordon_edge_camera_reads_total{camera="lane1"}'] == 2
    assert values["cordon_edge_outbox_oldest_seconds"] >= 0


async def test_what_the_alert_rules_need_is_exposed(aiohttp_client, tmp_path, dead_broker_url):
    """deploy/prometheus/cordon.rules.yml reads these: the hub degraded, each checkpoint online, a stale
    camera, certificate ends and the CRL's next update (tests/test_prometheus.py fires each rule)."""
    from cordon.pki import Pki

    pki = Pki(tmp_path / "pki")
    pki.init()
    pki.issue("cordon-hub", ["127.0.0.1"], days=40)
    hub_dir = tmp_path / "pki" / "cordon-hub"
    app = create_hub(
        HubSettings(
            data_dir=str(tmp_path / "hub"),
            mqtt=HubMqtt(url=dead_broker_url),
            metrics=MetricsSettings(token="scrape"),
        )
    )
    app[hub_keys.SETTINGS].http.cert_file = str(hub_dir / "server.crt")
    app[hub_keys.SETTINGS].http.crl_file = str(tmp_path / "pki" / "crl.pem")
    app[hub_keys.CHECKPOINTS]["SD-DZ-001"] = {"checkpoint": "SD-DZ-001", "online": False}
    client = await aiohttp_client(app)
    values = parse(await (await client.get("/metrics", headers={"Authorization": "Bearer scrape"})).text())
    assert values["cordon_hub_degraded"] == 1, "the broker link is down"
    assert values['cordon_hub_checkpoint_online{checkpoint="SD-DZ-001"}'] == 0
    ends = values['cordon_tls_certificate_expiry_timestamp_seconds{key="http.cert_file"}']
    assert 39 * 86400 < ends - time.time() < 41 * 86400
    assert values['cordon_tls_crl_next_update_timestamp_seconds{key="http.crl_file"}'] > time.time()

    edge = create_edge(
        EdgeSettings(
            checkpoint="SD-DZ-001",
            data_dir=str(tmp_path / "edge"),
            mqtt=EdgeMqtt(url=dead_broker_url, reconnect_min_s=5),
            cameras=[CameraSettings(id="lane1", token="t", stale_after_s=0.2)],
            metrics=EdgeMetrics(token="s"),
        )
    )
    client = await aiohttp_client(edge)
    assert (
        await client.post(
            "/api/v1/cameras/lane1/reads", headers={"X-Camera-Token": "t"}, json={"plate": "鲁A12345"}
        )
    ).status == 200
    values = parse(await (await client.get("/metrics", headers={"Authorization": "Bearer s"})).text())
    assert values['cordon_edge_camera_stale{camera="lane1"}'] == 0
    # Stale once 0.2 s pass without a read: ask until it says so (a camera that never turns stale fails).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        values = parse(await (await client.get("/metrics", headers={"Authorization": "Bearer s"})).text())
        if values['cordon_edge_camera_stale{camera="lane1"}'] == 1:
            break
    assert values['cordon_edge_camera_stale{camera="lane1"}'] == 1
