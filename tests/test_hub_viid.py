"""A 视图库 as an upstream of the hub: subscription, notifications through the ingest (a duplicate stored
once), renewal, re-subscription after either side restarts, hits reported back. The platform is a small
simulated one (tests/viid_platform.py), a real aiohttp server; the hub is the real app."""

import json
from pathlib import Path

import aiohttp
import pytest

from central.app import create_app
from central.settings import (
    ConsoleSettings,
    HubSettings,
    MqttSettings,
    ViidPlatformSettings,
    WatchlistSettings,
)
from central.web import keys
from tests.support import free_port, stored_camera_event_ids, until
from tests.viid_platform import PASSWORD, PLATFORM_ID, USER, SimulatedPlatform

FIX = Path(__file__).parent / "fixtures" / "cameras" / "viid"
CAMERA = "37142800001190000001"
HUB_ID = "37140000002000000001"
CSV = "plate,list,action,priority,reason\n鲁N8K2L1,涉毒,intercept,90,线索\n鲁A7XG66,秘密,covert,50,观察\n"


def records(name):
    return json.loads((FIX / name).read_text(encoding="utf-8"))["MotorVehicleListObject"][
        "MotorVehicleObject"
    ]


@pytest.fixture
async def platform(aiohttp_server):
    sim = SimulatedPlatform()
    sim.server = await aiohttp_server(sim.app())
    return sim


@pytest.fixture
def hub_settings(tmp_path, dead_broker_url, platform):
    wl = tmp_path / "wl.csv"
    wl.write_text(CSV, encoding="utf-8")
    port = free_port()
    return HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        watchlists=WatchlistSettings(csv=[str(wl)]),
        console=ConsoleSettings(token="246810"),
        viid=[
            ViidPlatformSettings(
                name="dezhou",
                url=str(platform.server.make_url("/")),
                platform_id=PLATFORM_ID,
                hub_id=HUB_ID,
                username=USER,
                password=PASSWORD,
                receive_url=f"http://127.0.0.1:{port}/VIID/SubscribeNotifications",
                notify_token="notify-secret",
                checkpoints={CAMERA: "SD-DZ-001"},
                keepalive_s=0.05,
                subscribe_ttl_s=3600,
                renew_before_s=60,
                report_hits=True,
                disposition_id="371400000000032026112800001",
            )
        ],
    ), port


async def start_hub(aiohttp_server, hub_settings):
    settings, port = hub_settings
    return await aiohttp_server(create_app(settings), port=port)


async def test_a_platform_is_subscribed_and_its_records_are_stored_once(
    aiohttp_server, platform, hub_settings
):
    hub = await start_hub(aiohttp_server, hub_settings)
    await until(lambda: platform.subscriptions, timeout=10, what="a subscription")
    (sub,) = platform.subscriptions.values()
    assert sub["SubscribeDetail"] == "13" and sub["ResourceURI"] == CAMERA
    assert sub["ReceiveAddr"].endswith("/VIID/SubscribeNotifications?token=notify-secret")
    assert platform.registrations == 1 and HUB_ID in platform.registered

    batch = records("batch.json")
    status, answer = await platform.notify(batch, "N1")
    assert status == 200, answer
    assert [s["StatusCode"] for s in answer["ResponseStatusListObject"]["ResponseStatusObject"]] == [0]
    status, _ = await platform.notify(batch, "N1")  # the same notification again
    assert status == 200
    stored = stored_camera_event_ids(hub_settings[0].data_path)
    assert sorted(stored.values()) == [1, 1, 1]
    assert set(stored) == {r["MotorVehicleID"] for r in batch}
    state = hub.app[keys.VIID_PLATFORMS][0].state
    assert state.records == 3 and state.duplicates == 3 and state.notifications == 2
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as console:
        assert (await console.post(hub.make_url("/login"), json={"code": "246810"})).status == 200
        async with console.get(hub.make_url("/api/v1/upstream")) as resp:
            (shown,) = (await resp.json())["viid"]
    assert shown["state"]["subscribe_id"] == sub["SubscribeID"] and shown["state"]["records"] == 3
    assert "password" not in json.dumps(shown) and PASSWORD not in json.dumps(shown)


async def test_hits_are_reported_back_but_never_a_covert_one(aiohttp_server, platform, hub_settings):
    await start_hub(aiohttp_server, hub_settings)
    await until(lambda: platform.subscriptions, timeout=10, what="a subscription")
    status, _ = await platform.notify(records("single.json") + records("batch.json"), "N2")
    assert status == 200
    await until(lambda: platform.dispositions, timeout=10, what="a disposition notification")
    (report,) = platform.dispositions  # 鲁N8K2L1 (intercept); 鲁A7XG66 is on a covert list: not told
    assert report["DispositionID"] == "371400000000032026112800001"
    assert (
        report["MotorVehicleObject"]["PlateNo"] == "鲁N8K2L1"
        and "SubImageList" not in report["MotorVehicleObject"]
    )


async def test_the_platform_restarts_and_the_hub_subscribes_again(aiohttp_server, platform, hub_settings):
    await start_hub(aiohttp_server, hub_settings)
    await until(lambda: platform.subscriptions, timeout=10, what="a subscription")
    platform.restart()
    await until(lambda: platform.subscriptions, timeout=10, what="a subscription after the restart")
    assert platform.registrations == 2 and platform.subscribes == 2
    status, answer = await platform.notify(records("single.json"), "N3")
    assert status == 200 and answer["ResponseStatusListObject"]["ResponseStatusObject"][0]["StatusCode"] == 0
    assert sum(stored_camera_event_ids(hub_settings[0].data_path).values()) == 1


async def test_the_hub_restarts_and_subscribes_again_old_notifications_still_stored_once(
    aiohttp_server, platform, hub_settings
):
    first = await start_hub(aiohttp_server, hub_settings)
    await until(lambda: platform.subscriptions, timeout=10, what="a subscription")
    (old,) = platform.subscriptions
    assert (await platform.notify(records("single.json"), "N4"))[0] == 200
    await first.close()
    await start_hub(aiohttp_server, hub_settings)
    await until(lambda: len(platform.subscriptions) == 2, timeout=10, what="a second subscription")
    new = next(s for s in platform.subscriptions if s != old)
    # The old subscription still runs at the platform until it ends: the same record through both.
    assert (await platform.notify(records("single.json"), "N5", old))[0] == 200
    assert (await platform.notify(records("single.json"), "N6", new))[0] == 200
    assert list(stored_camera_event_ids(hub_settings[0].data_path).values()) == [1]


async def test_the_subscription_is_renewed_before_it_ends(aiohttp_server, platform, hub_settings):
    settings, port = hub_settings
    import msgspec

    short = msgspec.structs.replace(settings.viid[0], subscribe_ttl_s=30, renew_before_s=29.9)
    await start_hub(aiohttp_server, (msgspec.structs.replace(settings, viid=[short]), port))
    await until(lambda: platform.renewals >= 2, timeout=10, what="renewals")
    assert platform.subscribes == 1  # the same subscription, its EndTime moved on


@pytest.mark.parametrize(
    "headers, query, status",
    [
        ({"User-Identify": PLATFORM_ID}, "", 401),  # no token
        ({"User-Identify": PLATFORM_ID}, "?token=wrong", 401),
        ({"User-Identify": "37142800005030000077"}, "?token=notify-secret", 401),  # not a configured platform
        ({}, "?token=notify-secret", 401),
    ],
)
async def test_notifications_from_strangers_are_refused(
    aiohttp_server, platform, hub_settings, headers, query, status
):
    hub = await start_hub(aiohttp_server, hub_settings)
    body = {"SubscribeNotificationListObject": {"SubscribeNotificationObject": []}}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            hub.make_url(f"/VIID/SubscribeNotifications{query}"), json=body, headers=headers
        ) as resp:
            assert resp.status == status


async def test_a_bad_notification_is_a_400_and_a_dead_letter_and_a_bad_record_costs_only_itself(
    aiohttp_server, platform, hub_settings
):
    hub = await start_hub(aiohttp_server, hub_settings)
    url = hub.make_url("/VIID/SubscribeNotifications?token=notify-secret")
    async with aiohttp.ClientSession(headers={"User-Identify": PLATFORM_ID}) as session:
        async with session.post(url, data=b"{not json") as resp:
            assert resp.status == 400
            assert (await resp.json(content_type=None))["ResponseStatusObject"]["StatusCode"] == 7
    await until(lambda: platform.subscriptions, timeout=10, what="a subscription")
    bad, good = records("bad_record.json")
    stranger = dict(good, MotorVehicleID=good["MotorVehicleID"] + "9", DeviceID="37142800001190000055")
    status, _ = await platform.notify([bad, good, stranger], "N7")
    assert status == 200
    assert list(stored_camera_event_ids(hub_settings[0].data_path)) == [good["MotorVehicleID"]]
    assert hub.app[keys.VIID_PLATFORMS][0].state.dead_letters == 3  # the body, the bad record, the stranger's
