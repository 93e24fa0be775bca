"""Who gets an alert (central/ingest/routing.py) and folding of repeated hits (central/ingest/folding.py), with a real
SQLite store and the real ingest."""

from __future__ import annotations

import sqlite3
import time

import msgspec
import pytest

from central.ingest.listener import Recorder
from central.ingest.pipeline import Ingest
from central.ingest.routing import Router
from central.record.sqlite.store import HubStore
from central.record.sqlite.watchlists import apply_changes
from central.settings import HubSettings, RoutingSettings
from central.watchlists.index import HubWatchlists, changes_for, parse_csv
from central.watchlists.lists import ListService
from protocols.messages import (
    SCHEMA_VERSION,
    Alert,
    AlertHit,
    AlertOutcome,
    EventBatch,
    PlateRead,
    encode,
)

ROUTING = msgspec.convert(
    {
        "approach": [{"source": "cam-ahead", "checkpoint": "CP02"}, {"source": "CP09", "checkpoint": "CP01"}],
        "downstream": [
            {"from": "CP01", "direction": "in", "to": ["CP07", "CP12"]},
            {"from": "CP01", "direction": "out", "to": ["CP03"]},
            {"from": "CP01", "to": ["CP05"]},
        ],
    },
    RoutingSettings,
)


def alert(checkpoint="CP01", camera="cam-1", direction=None, action="intercept", list_id="L1", aid="a1"):
    return Alert(
        v=SCHEMA_VERSION,
        alert_id=aid,
        checkpoint=checkpoint,
        epoch=1,
        seq=1,
        raised_at=1.0,
        captured_at=1.0,
        camera_id=camera,
        plate_read="鲁Q8K2L1",
        direction=direction,
        hit=AlertHit(
            entry_id="e1",
            entry_plate="鲁Q8K2L1",
            list_id=list_id,
            list_name="涉毒",
            action=action,
            priority=90,
            kind="exact",
            score=1.0,
            explanation="exact",
        ),
    )


def routes(router, a):
    return [(r.checkpoint, r.why) for r in router.routes(a)]


def test_settings_take_the_documented_toml_shape(tmp_path):
    path = tmp_path / "hub.toml"
    path.write_text(
        '[alerts]\nfold_window_s = 90\n[[routing.downstream]]\nfrom = "CP01"\ndirection = "in"\n'
        'to = ["CP07", "CP12"]\n[[routing.approach]]\nsource = "cam-ahead"\ncheckpoint = "CP02"\n',
        encoding="utf-8",
    )
    from central.settings import load_settings

    s = load_settings(path, environ={})
    assert isinstance(s, HubSettings) and s.alerts.fold_window_s == 90
    assert s.routing.downstream[0].from_ == "CP01" and s.routing.downstream[0].to == ["CP07", "CP12"]
    assert s.routing.approach[0].checkpoint == "CP02"


def test_the_reading_checkpoint_by_default():
    assert routes(Router(), alert()) == [("CP01", "read")]
    assert routes(Router(ROUTING), alert(checkpoint="CP04")) == [("CP04", "read")]


def test_an_approach_camera_warns_the_checkpoint_ahead():
    assert routes(Router(ROUTING), alert(checkpoint="CP08", camera="cam-ahead")) == [
        ("CP08", "read"),
        ("CP02", "approach"),
    ]
    # a whole checkpoint can be the approach of another
    assert ("CP01", "approach") in routes(Router(ROUTING), alert(checkpoint="CP09"))


def test_downstream_by_direction():
    r = Router(ROUTING)
    assert routes(r, alert(direction="in")) == [
        ("CP01", "read"),
        ("CP07", "downstream"),
        ("CP12", "downstream"),
        ("CP05", "downstream"),
    ]
    assert routes(r, alert(direction="out")) == [
        ("CP01", "read"),
        ("CP03", "downstream"),
        ("CP05", "downstream"),
    ]
    assert routes(r, alert(direction=None)) == [("CP01", "read"), ("CP05", "downstream")]


def test_covert_and_restricted_never_go_to_any_checkpoint():
    r = Router(ROUTING, restricted=lambda list_id: list_id == "secret")
    for a in (
        alert(direction="in", action="covert"),
        alert(direction="in", list_id="secret"),
        alert(checkpoint="CP08", camera="cam-ahead", action="covert"),
    ):
        assert r.routes(a) == [] and r.recipients(a) == []
    # also an alert stored with routes before its list turned restricted goes nowhere now
    stored = Router(ROUTING).route(alert(direction="in", list_id="secret"))
    assert stored.routed_to and r.recipients(stored) == []


def test_each_recipient_once_and_the_same_alert_id():
    settings = msgspec.convert(
        {
            "approach": [{"source": "cam-1", "checkpoint": "CP07"}],
            "downstream": [{"from": "CP01", "to": ["CP07", "CP01"]}],
        },
        RoutingSettings,
    )
    routed = Router(settings).route(alert(direction="in"))
    assert [(r.checkpoint, r.why) for r in routed.routed_to] == [("CP01", "read"), ("CP07", "approach")]
    assert routed.alert_id == "a1"


# -- folding, through the real ingest and store -------------------------------------------------------------

CSV = "plate,list,action,priority,reason\n鲁Q8K2L1,涉毒,intercept,90,线索\n鲁A0K88B,涉毒,intercept,90,线索\n"


@pytest.fixture
def hub(tmp_path):
    def start():
        store = HubStore(tmp_path / "hub.db")
        store.start()
        watchlists = HubWatchlists()
        ListService(store, watchlists, lambda *a, **k: None).load()
        alerts, folded = [], []
        ingest = Ingest(
            store,
            watchlists,
            publish=lambda t, p: None,
            listener=Recorder(alerts=alerts, folded=folded),
            router=Router(ROUTING),
            fold_window_s=600,
        )
        return ingest, store, watchlists, alerts, folded

    ingest, store, watchlists, alerts, folded = start()
    loaded = parse_csv(CSV)
    store.submit(
        lambda db: [op() for op in apply_changes(db, changes_for(loaded, {}), watchlists, "test").index_ops]
    ).result(5)
    running = [store]

    def restart():
        running[0].stop()
        parts = start()
        running[0] = parts[1]
        return parts

    yield (ingest, store, alerts, folded), restart
    running[0].stop()


T0 = time.time() - 3000


def send(ingest, checkpoint, seq, plate, at, direction="in", extra=()):
    read = PlateRead(
        seq=seq,
        camera_id="cam-1",
        captured_at=at,
        plate=plate,
        plate_raw=plate,
        plate_valid=True,
        direction=direction,
    )
    batch = EventBatch(
        v=SCHEMA_VERSION, checkpoint=checkpoint, epoch=1, sent_at=time.time(), events=[*extra, read]
    )
    return ingest.handle(f"cordon/v1/cp/{checkpoint}/events", encode(batch), time.time()).result(5)


def count(store, sql):
    with sqlite3.connect(store.path) as db:
        return db.execute(sql).fetchone()[0]


def test_a_new_alert_is_stored_with_its_routes(hub):
    (ingest, store, alerts, _), _ = hub
    send(ingest, "CP01", 1, "鲁Q8K2L1", T0)
    (a,) = alerts
    assert [(r.checkpoint, r.why) for r in a.routed_to] == [
        ("CP01", "read"),
        ("CP07", "downstream"),
        ("CP12", "downstream"),
        ("CP05", "downstream"),
    ]
    stored = store.recent_alerts()[0]
    assert stored.routed_to == a.routed_to and stored.direction == "in"


def test_repeated_hits_fold_and_another_vehicle_is_never_suppressed(hub):
    (ingest, store, alerts, folded), _ = hub
    send(ingest, "CP01", 1, "鲁Q8K2L1", T0)
    send(ingest, "CP07", 1, "鲁Q8K2L1", T0 + 60)
    send(ingest, "CP12", 1, "鲁Q8K2L1", T0 + 120)
    assert len(alerts) == 1 and count(store, "SELECT count(*) FROM alerts") == 1
    assert [f.folded for f in folded] == [1, 2]
    last = folded[-1]
    assert last.alert_id == alerts[0].alert_id and last.last_seen_checkpoint == "CP12"
    assert last.last_seen_at == T0 + 120
    assert store.recent_alerts()[0].folded == 2
    # another listed vehicle on the same list, inside the first one's window: its own alert
    send(ingest, "CP01", 2, "鲁A0K88B", T0 + 130)
    assert [a.plate_read for a in alerts] == ["鲁Q8K2L1", "鲁A0K88B"]
    # outside the window: a new alert
    send(ingest, "CP01", 3, "鲁Q8K2L1", T0 + 120 + 601)
    assert len(alerts) == 3


def test_an_outcome_closes_the_alert(hub):
    (ingest, store, alerts, folded), _ = hub
    send(ingest, "CP01", 1, "鲁Q8K2L1", T0)
    answer = AlertOutcome(
        seq=2, alert_id=alerts[0].alert_id, outcome="not_found", officer="li", acknowledged_at=T0 + 10
    )
    send(ingest, "CP01", 3, "鲁Q8K2L1", T0 + 20, extra=[answer])
    assert len(alerts) == 2 and folded == []


def test_folding_is_exactly_once_across_restarts_and_replays(hub):
    (ingest, store, alerts, folded), restart = hub
    send(ingest, "CP01", 1, "鲁Q8K2L1", T0)
    send(ingest, "CP07", 1, "鲁Q8K2L1", T0 + 60)
    ingest, store, _, alerts2, folded2 = restart()
    # the edges replay both reads after the restart: nothing raised, nothing folded again
    send(ingest, "CP01", 1, "鲁Q8K2L1", T0)
    send(ingest, "CP07", 1, "鲁Q8K2L1", T0 + 60)
    assert alerts2 == [] and folded2 == []
    assert store.recent_alerts()[0].folded == 1
    # a new hit after the restart folds into the alert raised before it
    send(ingest, "CP12", 1, "鲁Q8K2L1", T0 + 90)
    assert alerts2 == [] and [f.folded for f in folded2] == [2]
    assert count(store, "SELECT count(*) FROM alert_folds") == 2


# -- dispatch: one copy per routed checkpoint, marked dispatched only when the broker took every copy ------


async def test_dispatch_publishes_each_route_and_marks_after_every_copy(tmp_path):
    import asyncio

    from central.alerts.dispatch import AlertDispatcher
    from runtime.fanout import Fanout
    from tests.support import until

    store = HubStore(tmp_path / "hub.db")
    store.start()
    try:
        sent = []
        dispatcher = AlertDispatcher(
            store, lambda topic, payload, qos, on_delivered: sent.append((topic, on_delivered)), Fanout()
        )
        dispatcher.bind(asyncio.get_running_loop())
        marker = asyncio.create_task(dispatcher.run_marker())
        routed = Router(ROUTING).route(alert(direction="in"))
        covert = Router(ROUTING).route(alert(direction="in", action="covert", aid="a2"))
        for a in (routed, covert):
            await store.run(lambda db, a=a: store.insert_alert(db, a))
        dispatcher.dispatch([routed, covert])
        assert [t for t, _ in sent] == [
            f"cordon/v1/cp/{cp}/alerts" for cp in ("CP01", "CP07", "CP12", "CP05")
        ]

        def undispatched():
            return sorted(a.alert_id for a in store.undispatched_alerts())

        await until(lambda: undispatched() == ["a1"], what="the covert alert marked (nothing to send)")
        for _, delivered in sent[:3]:
            delivered()
        await until(lambda: dispatcher._copies.get("a1") == 1, what="three copies counted")
        assert dispatcher._delivered.empty() and undispatched() == ["a1"], "one copy is still out"
        sent[3][1]()
        await until(lambda: undispatched() == [], what="marked after the last copy")
        marker.cancel()
    finally:
        store.stop()


def test_an_edge_only_hit_is_routed_by_its_reads_direction(hub):
    """A hit the edge made with lists the hub did not have at that moment still becomes an alert, and is
    routed downstream like one the hub made (the direction comes from the stored read)."""
    from protocols.messages import EdgeHit, derive_alert_id

    (ingest, _, alerts, _), _ = hub
    aid = derive_alert_id("CP01", 1, 1, "本地:鲁C00001")
    hit = EdgeHit(
        seq=2,
        read_seq=1,
        alert_id=aid,
        entry_id="本地:鲁C00001",
        list_id="本地",
        kind="exact",
        score=1.0,
        explanation="exact",
        feed_version=1,
        matcher_version="m1",
        raised_at=T0,
    )
    send(ingest, "CP01", 1, "鲁C00001", T0, direction="in", extra=[hit])
    (a,) = alerts
    assert a.alert_id == aid and a.direction == "in"
    assert [(r.checkpoint, r.why) for r in a.routed_to] == [
        ("CP01", "read"),
        ("CP07", "downstream"),
        ("CP12", "downstream"),
        ("CP05", "downstream"),
    ]


def test_an_outcome_for_a_folded_hit_closes_the_open_alert(hub):
    """The edge that read the repeat alerted its own tablets under the repeat's id; the officer's outcome
    for that id closes the alert it was folded into."""
    from protocols.messages import derive_alert_id

    (ingest, store, alerts, folded), _ = hub
    send(ingest, "CP01", 1, "鲁Q8K2L1", T0)
    send(ingest, "CP07", 1, "鲁Q8K2L1", T0 + 60)
    assert len(alerts) == 1 and len(folded) == 1
    repeat_id = derive_alert_id("CP07", 1, 1, alerts[0].hit.entry_id)
    answer = AlertOutcome(
        seq=2, alert_id=repeat_id, outcome="intercepted", officer="zhao", acknowledged_at=T0 + 90
    )
    send(ingest, "CP07", 3, "鲁Q8K2L1", T0 + 120, extra=[answer])
    assert len(alerts) == 2 and len(folded) == 1


def test_the_folded_hits_outcome_is_the_open_alerts_on_the_console_and_stops_its_escalation(hub):
    from central.record.sqlite import escalation
    from protocols.messages import derive_alert_id

    (ingest, store, alerts, _), _ = hub
    outcomes = ingest.listener.outcomes  # what the console is told (app.py's HubEvents)
    send(ingest, "CP01", 1, "鲁Q8K2L1", T0)
    send(ingest, "CP07", 1, "鲁Q8K2L1", T0 + 60)
    open_id = alerts[0].alert_id
    repeat_id = derive_alert_id("CP07", 1, 1, alerts[0].hit.entry_id)
    answer = AlertOutcome(
        seq=2, alert_id=repeat_id, outcome="intercepted", officer="zhao", acknowledged_at=T0 + 90
    )
    ingest.handle(
        "cordon/v1/cp/CP07/events",
        encode(
            EventBatch(v=SCHEMA_VERSION, checkpoint="CP07", epoch=1, sent_at=time.time(), events=[answer])
        ),
        time.time(),
    ).result(5)
    assert [(cp, o.alert_id) for cp, o in outcomes] == [("CP07", open_id)]
    assert [o["outcome"] for o in store.outcomes([open_id])[open_id]] == ["intercepted"]
    assert store.submit(lambda db: escalation.escalate_due(db, 60.0, T0 + 10_000)).result(5) == []


def test_routes_naming_checkpoints_off_the_ring_are_reported():
    from central.ingest.routing import unknown_checkpoints

    assert unknown_checkpoints(ROUTING, {"CP01", "CP02", "CP03", "CP05", "CP07", "CP12"}) == []
    assert unknown_checkpoints(ROUTING, {"CP01", "CP02", "CP05"}) == ["CP03", "CP07", "CP12"]
