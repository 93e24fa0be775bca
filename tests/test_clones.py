"""Cloned plates: the rules (protocols/clones.py) and the check inside hub ingest (central/intel/clones.py)."""

from __future__ import annotations

import sqlite3
import time

import msgspec
import pytest

from central.ingest.listener import Recorder
from central.ingest.pipeline import Ingest
from central.intel.clones import CloneCheck, load_geography, recent_reads
from central.record.sqlite.store import HubStore
from central.settings import CloneSettings, load_settings
from central.watchlists.index import HubWatchlists
from protocols import clones
from protocols.clones import CloneRule, Geography, GeographyError, Sighting
from protocols.messages import SCHEMA_VERSION, Alert, EventBatch, PlateRead, encode

TANCHENG, LINQING, LINSHU = "SD-LY-001", "SD-LC-001", "SD-LY-002"
T0 = 1_767_000_000.0  # some day; times below are offsets from it
RULE = CloneRule()


@pytest.fixture(scope="module")
def geo() -> Geography:
    return load_geography(CloneSettings())


def read(
    seq: int,
    at: float,
    plate: str = "鲁Q8K2L1",
    *,
    raw: str | None = None,
    confidence: float | None = 97.0,
    valid: bool = True,
    **kw,
) -> PlateRead:
    return PlateRead(
        seq=seq,
        camera_id="cam1",
        captured_at=at,
        plate=plate,
        plate_raw=raw or plate,
        plate_valid=valid,
        confidence=confidence,
        **kw,
    )


def sight(checkpoint: str, seq: int, at: float, plate: str = "鲁Q8K2L1", **kw) -> Sighting:
    return clones.sighting(checkpoint, 1, read(seq, at, plate, **kw))


# -- the rules -----------------------------------------------------------------------------------


def test_trip_faster_than_possible_is_a_clone_and_explained(geo):
    km = geo.distance_km(TANCHENG, LINQING)
    assert km is not None and 400 < km < 600  # straight line x 1.3
    finding = clones.check(sight(TANCHENG, 1, T0), sight(LINQING, 2, T0 + 39 * 60), geo, RULE)
    assert finding is not None and finding.kind == "impossible_trip"
    assert finding.earlier.checkpoint == TANCHENG and finding.later.checkpoint == LINQING
    assert finding.min_trip_s == pytest.approx(km / 150 * 3600)
    en, zh = finding.explanation_en, finding.explanation_zh
    # each half in its own language, the checkpoints' names too
    assert "鲁Q8K2L1 at Tancheng G2 Expressway" in en and "Linqing G20 Expressway" in en
    assert "郯城京沪高速检查站" in zh and "临清青银高速检查站" in zh
    assert "the fastest trip is 3 h" in en and "it took 39 min" in en
    assert "两地最快车程 3小时" in zh and "实际间隔 39分钟" in zh
    assert len(finding.explanation) <= 500


def test_explanations_tell_clock_times_in_the_hubs_time_zone(geo):
    """The console shows every time in the hub's ``time_zone``; a clone's explanation says its clock
    times in the same zone, not in the record's fixed offset."""
    from central.intel.clones import rule_from

    at = 1_767_000_000.0  # 2025-12-29 09:20:00 UTC: 17:20 in Shanghai, 04:20 in New York
    pair = (sight(TANCHENG, 1, at), sight(LINQING, 2, at + 39 * 60))
    shanghai = clones.check(*pair, geo, rule_from(CloneSettings(), "+08:00", "Asia/Shanghai"))
    new_york = clones.check(*pair, geo, rule_from(CloneSettings(), "+08:00", "America/New_York"))
    assert (
        shanghai is not None
        and "17:20:00" in shanghai.explanation_zh
        and "17:20:00" in shanghai.explanation_en
    )
    assert (
        new_york is not None
        and "04:20:00" in new_york.explanation_zh
        and "04:20:00" in new_york.explanation_en
    )


def test_plausible_fast_trip_is_not_a_clone(geo):
    # 郯城 -> 临沭 is about 55 km by road: 30 minutes is a fast but possible drive.
    assert clones.check(sight(TANCHENG, 1, T0), sight(LINSHU, 2, T0 + 30 * 60), geo, RULE) is None
    # The far pair, given enough time (5 hours), is an ordinary trip too.
    assert clones.check(sight(TANCHENG, 1, T0), sight(LINQING, 2, T0 + 5 * 3600), geo, RULE) is None


def test_order_of_arrival_does_not_matter(geo):
    later, earlier = sight(LINQING, 2, T0 + 600), sight(TANCHENG, 1, T0)
    finding = clones.check(later, earlier, geo, RULE)  # the earlier read arrives last (a replay)
    assert finding is not None and finding.earlier.checkpoint == TANCHENG


def test_explicit_distance_matrix_wins_over_the_straight_line(geo):
    matrix = Geography(
        geo.checkpoints, distances=clones.parse_distances("from,to,km\nSD-LY-002,SD-LY-001,200\n")
    )
    # 30 minutes for 200 km (80 min at 150 km/h): impossible with the matrix, possible by the straight line.
    assert (
        clones.check(sight(TANCHENG, 1, T0), sight(LINSHU, 2, T0 + 1800), matrix, RULE).kind
        == "impossible_trip"
    )
    assert clones.check(sight(TANCHENG, 1, T0), sight(LINSHU, 2, T0 + 1800), geo, RULE) is None


def test_same_time_at_two_places(geo):
    finding = clones.check(sight(TANCHENG, 1, T0), sight(LINSHU, 2, T0 + 20), geo, RULE)
    assert finding is not None and finding.kind == "same_time"
    assert (
        "the same time at two places" in finding.explanation_en
        and "同一时间出现在两地" in finding.explanation_zh
    )
    # Checkpoints with no coordinates: the same time still tells, a longer gap says nothing.
    unknown = Geography({})
    assert clones.check(sight("X-1", 1, T0), sight("X-2", 2, T0 + 5), unknown, RULE).kind == "same_time"
    assert clones.check(sight("X-1", 1, T0), sight("X-2", 2, T0 + 3600), unknown, RULE) is None


def test_attribute_conflicts(geo):
    # Plate colour, in any of the names cameras use, compared as a colour.
    f = clones.check(
        sight(TANCHENG, 1, T0, colour="蓝"), sight(TANCHENG, 2, T0 + 7200, colour="yellow"), geo, RULE
    )
    assert (
        f is not None and f.kind == "attribute_conflict" and "plate colour blue vs yellow" in f.explanation_en
    )
    assert (
        clones.check(
            sight(TANCHENG, 1, T0, colour="蓝色"), sight(LINQING, 2, T0 + 9 * 3600, colour="Blue"), geo, RULE
        )
        is None
    )
    f = clones.check(
        sight(TANCHENG, 1, T0, vehicle_type="car"),
        sight(LINQING, 2, T0 + 9 * 3600, vehicle_type="truck"),
        geo,
        RULE,
    )
    assert f is not None and f.kind == "attribute_conflict" and "车辆类型car与truck不符" in f.explanation_zh
    # Unknown on one side is no conflict.
    assert (
        clones.check(sight(TANCHENG, 1, T0, vehicle_type="car"), sight(LINQING, 2, T0 + 9 * 3600), geo, RULE)
        is None
    )


def test_vehicle_colour_and_make_conflicts(geo):
    later = T0 + 9 * 3600  # a trip one vehicle can make: only the vehicles' looks can tell
    f = clones.check(
        sight(TANCHENG, 1, T0, vehicle_colour="白色"),
        sight(LINQING, 2, later, vehicle_colour="Red"),
        geo,
        RULE,
    )
    assert (
        f is not None and f.kind == "attribute_conflict" and "vehicle colour white vs red" in f.explanation_en
    )
    assert "车身颜色" in f.explanation_zh
    assert (
        clones.check(
            sight(TANCHENG, 1, T0, vehicle_colour="白"),
            sight(LINQING, 2, later, vehicle_colour="WHITE"),
            geo,
            RULE,
        )
        is None
    )
    # a colour name only one camera uses is unknown, not a second colour
    assert (
        clones.check(
            sight(TANCHENG, 1, T0, vehicle_colour="white"),
            sight(LINQING, 2, later, vehicle_colour="champagne"),
            geo,
            RULE,
        )
        is None
    )
    f = clones.check(
        sight(TANCHENG, 1, T0, vehicle_brand="Volkswagen"),
        sight(LINQING, 2, later, vehicle_brand="Audi"),
        geo,
        RULE,
    )
    assert f is not None and "vehicle make Volkswagen vs Audi" in f.explanation_en
    # a Hikvision logo code and a Dahua name cannot be compared; two codes can
    assert (
        clones.check(
            sight(TANCHENG, 1, T0, vehicle_brand="1036"),
            sight(LINQING, 2, later, vehicle_brand="Audi"),
            geo,
            RULE,
        )
        is None
    )
    assert (
        clones.check(
            sight(TANCHENG, 1, T0, vehicle_brand="1036"),
            sight(LINQING, 2, later, vehicle_brand="12"),
            geo,
            RULE,
        )
        is not None
    )


def test_misreads_do_not_take_part():
    assert clones.eligible(read(1, T0), RULE)
    assert not clones.eligible(read(1, T0, confidence=89.9), RULE)  # low confidence
    assert not clones.eligible(read(1, T0, confidence=None), RULE)  # a camera that gives none
    assert not clones.eligible(read(1, T0, valid=False), RULE)
    assert not clones.eligible(read(1, T0, "", raw="无牌", no_plate=True), RULE)
    # A plate that is not exactly what the camera read (a look-alike correction I->1): out.
    assert not clones.eligible(read(1, T0, "鲁Q8K2L1", raw="鲁Q8K2LI"), RULE)
    # Only cleaning (spaces, a colour word) is not a correction.
    assert clones.eligible(read(1, T0, "鲁Q8K2L1", raw="蓝 鲁Q8K2L1"), RULE)


def test_bad_geography_files_name_the_problem():
    with pytest.raises(GeographyError, match="lat"):
        clones.parse_checkpoints("id,name\nA,x\n")
    with pytest.raises(GeographyError, match="line 2"):
        clones.parse_checkpoints("id,lat,lon\nA,north,1\n")
    with pytest.raises(GeographyError, match="line 3"):
        clones.parse_distances("from,to,km\nA,B,3\nA,C,-1\n")


# -- inside ingest -----------------------------------------------------------------------------------


@pytest.fixture
def hub(tmp_path):
    store = HubStore(tmp_path / "hub.db")
    store.start()
    dispatched: list[Alert] = []
    ingest = Ingest(
        store,
        HubWatchlists(),
        publish=lambda t, p: None,
        listener=Recorder(alerts=dispatched),
        clones=CloneCheck(CloneSettings(), load_geography(CloneSettings())),
    )
    yield ingest, store, dispatched
    store.stop()


def send(ingest: Ingest, checkpoint: str, events: list[PlateRead], epoch: int = 1):
    body = encode(
        EventBatch(v=SCHEMA_VERSION, checkpoint=checkpoint, epoch=epoch, sent_at=time.time(), events=events)
    )
    return ingest.handle(f"cordon/v1/cp/{checkpoint}/events", body, time.time()).result(10)


def clone_alerts(store: HubStore) -> list[Alert]:
    with sqlite3.connect(store.path) as db:
        bodies = db.execute("SELECT body FROM alerts WHERE list_id='rule:clone'").fetchall()
    return [msgspec.json.decode(b[0], type=Alert) for b in bodies]


def test_ingest_raises_a_clone_alert_once_even_when_resent(hub):
    ingest, store, dispatched = hub
    now = time.time() - 3600
    send(ingest, TANCHENG, [read(1, now), read(2, now + 1, "鲁B12345")])
    assert clone_alerts(store) == [] and dispatched == []
    later = [read(7, now + 40 * 60)]
    result = send(ingest, LINQING, later)
    [alert] = clone_alerts(store)
    assert [a.alert_id for a in result.alerts] == [alert.alert_id] and [a.alert_id for a in dispatched] == [
        alert.alert_id
    ]
    assert alert.checkpoint == LINQING and alert.seq == 7 and alert.plate_read == "鲁Q8K2L1"
    assert alert.hit.list_id == "rule:clone" and alert.hit.kind == "clone" and alert.hit.action == "notify"
    assert alert.hit.entry_id == f"rule:clone:{TANCHENG}/1/1"  # the other read, the evidence
    assert "fastest trip" in alert.hit.explanation and "两地最快车程" in alert.hit.explanation
    # The edge sends the batch again (its ack was lost): nothing new is stored or dispatched.
    again = send(ingest, LINQING, later)
    assert again.duplicates == 1 and again.alerts == []
    assert len(clone_alerts(store)) == 1 and len(dispatched) == 1
    assert ingest.metrics.alerts_by_kind == {"clone": 1}


def test_ingest_ignores_misreads_and_plausible_trips(hub):
    ingest, store, dispatched = hub
    now = time.time() - 3600
    send(ingest, TANCHENG, [read(1, now)])
    # A misread near the plate at 临清 minutes later (low confidence, or corrected look-alike): no clone.
    send(
        ingest,
        LINQING,
        [
            read(1, now + 600, confidence=70.0),
            read(2, now + 660, raw="鲁Q8K2LI"),
            read(3, now + 700, valid=False),
        ],
    )
    # The real vehicle 35 minutes later at 临沭 (a possible drive): no clone.
    send(ingest, LINSHU, [read(1, now + 35 * 60)])
    assert clone_alerts(store) == [] and dispatched == []


def test_same_batch_and_attribute_conflict_at_one_checkpoint(hub):
    ingest, store, _ = hub
    now = time.time() - 3600
    send(
        ingest,
        TANCHENG,
        [
            read(1, now, colour="blue"),
            read(2, now + 5, colour="blue"),
            read(3, now + 6, "鲁B12345", colour="blue"),
            read(4, now + 7, "鲁B12345", colour="blue"),
        ],
    )
    # One camera calling the colour yellow once is not enough: a colour call is noisy too.
    assert send(ingest, TANCHENG, [read(6, now + 2 * 3600, "鲁B12345", colour="yellow")]).alerts == []
    assert ingest.clones is not None and ingest.clones.uncorroborated == 1
    # Two cameras agreeing on yellow, and two that agreed on blue: a clone.
    result = send(
        ingest,
        TANCHENG,
        [read(7, now + 3 * 3600, colour="yellow"), read(8, now + 3 * 3600 + 0.4, colour="yellow")],
    )
    [alert] = clone_alerts(store)
    assert [a.alert_id for a in result.alerts] == [alert.alert_id]
    assert "plate colour blue vs yellow" in alert.hit.explanation


def test_ingest_finds_a_vehicle_colour_conflict_the_cameras_reported(hub):
    ingest, store, _ = hub
    now = time.time() - 3600
    # Two cameras agree on each sighting (spelled their own way): an attribute conflict needs both sides
    # corroborated.
    send(
        ingest,
        TANCHENG,
        [
            read(1, now, vehicle_colour="white", vehicle_brand="Volkswagen"),
            read(2, now + 0.4, vehicle_colour="白色", vehicle_brand="volkswagen "),
        ],
    )
    assert clone_alerts(store) == []
    result = send(
        ingest,
        TANCHENG,
        [
            read(5, now + 20 * 3600, vehicle_colour="黑色", vehicle_brand="Volkswagen"),
            read(6, now + 20 * 3600 + 0.4, vehicle_colour="Black", vehicle_brand="Volkswagen"),
        ],
    )
    [alert] = clone_alerts(store)
    assert [a.alert_id for a in result.alerts] == [alert.alert_id]
    assert "vehicle colour white vs black" in alert.hit.explanation


def test_clone_settings_are_validated():
    settings = load_settings(
        None, {"CORDON_HUB_CLONES__ENABLED": "false", "CORDON_HUB_CLONES__ACTION": "intercept"}
    )
    assert settings.clones.enabled is False and settings.clones.action == "intercept"
    with pytest.raises(Exception, match="action"):
        load_settings(None, {"CORDON_HUB_CLONES__ACTION": "shout"})


def test_confident_misread_onto_a_look_alike_plate_on_the_road_is_not_a_clone(hub):
    ingest, store, dispatched = hub
    now = time.time() - 7200
    # 鲁QBK2L1 (a real plate, one look-alike character from 鲁Q8K2L1) was seen at 临清 an hour ago.
    send(ingest, LINQING, [read(1, now, "鲁QBK2L1", colour="blue")])
    # 鲁Q8K2L1 passes 郯城; a second camera there misreads it as 鲁QBK2L1, confidently.
    send(
        ingest,
        TANCHENG,
        [
            read(1, now + 3600, colour="yellow"),
            read(2, now + 3600.4, "鲁QBK2L1", confidence=96.0, colour="yellow"),
        ],
    )
    assert clone_alerts(store) == [] and dispatched == []
    assert ingest.clones is not None and ingest.clones.explained_as_misreads == 1
    # Without the look-alike vehicle nearby, the same two sightings of 鲁QBK2L1 are a clone.
    send(
        ingest,
        LINSHU,
        [
            read(1, now + 3700, "鲁QBK2L9", colour="blue"),
            read(2, now + 3700.4, "鲁QBK2L9", confidence=96.0, colour="blue"),
        ],
    )
    send(ingest, LINQING, [read(2, now + 3900, "鲁QBK2L9", colour="blue")])
    [alert] = clone_alerts(store)
    assert alert.plate_read == "鲁QBK2L9" and alert.checkpoint == LINQING


def test_a_misread_by_one_camera_of_a_passage_the_other_read_as_a_look_alike_is_not_a_clone(hub):
    ingest, store, dispatched = hub
    now = time.time() - 7200
    send(ingest, LINQING, [read(1, now)])  # the listed 鲁Q8K2L1 at 临清
    # Twenty minutes later 鲁QBK2L1 (never seen before) passes 郯城: one camera misreads it as
    # 鲁Q8K2L1 confidently, the other reads it right. Without the other camera this is a clone.
    send(
        ingest,
        TANCHENG,
        [read(1, now + 1200, confidence=93.0), read(2, now + 1200.4, "鲁QBK2L1", confidence=96.0)],
    )
    assert clone_alerts(store) == [] and dispatched == []
    assert ingest.clones is not None and ingest.clones.explained_as_misreads == 1
    # A look-alike read nearby that is itself unsure (the other camera's misread) explains nothing:
    # 鲁A12345 at 临清, then at 郯城 twenty minutes later (one camera sure, the other unsure of a 5).
    send(ingest, LINQING, [read(2, now + 3000, "鲁A12345")])
    send(
        ingest,
        TANCHENG,
        [read(3, now + 4200, "鲁A12345"), read(4, now + 4200.4, "鲁A1234S", confidence=70.0)],
    )
    [alert] = clone_alerts(store)
    assert alert.checkpoint == TANCHENG and alert.seq == 3 and alert.plate_read == "鲁A12345"
    assert alert.hit.entry_id == f"rule:clone:{LINQING}/1/2"
    assert f"{LINQING}/1/2" in alert.hit.reason and f"{TANCHENG}/1/3" in alert.hit.reason, (
        "both passages named"
    )


def _restarted(tmp_path, warm_hours: float):
    store = HubStore(tmp_path / "hub.db")
    store.start()
    dispatched: list[Alert] = []
    check = CloneCheck(CloneSettings(), load_geography(CloneSettings()))
    ingest = Ingest(
        store,
        HubWatchlists(),
        publish=lambda t, p: None,
        listener=Recorder(alerts=dispatched),
        clones=check,
    )
    learnt = check.warm_from(recent_reads(store.record, time.time() - warm_hours * 3600)) if warm_hours else 0
    return ingest, store, dispatched, learnt


@pytest.mark.parametrize("warm_hours", [24.0, 0.0])
def test_a_clone_spanning_a_hub_restart_is_found_once_the_index_is_warmed_from_the_record(
    tmp_path, warm_hours
):
    now = time.time() - 3600
    ingest, store, _, _ = _restarted(tmp_path, 0)
    send(ingest, TANCHENG, [read(1, now), read(2, now + 1, "鲁B12345"), read(3, now - 30 * 3600, "鲁C77777")])
    store.stop()
    # The hub restarts: a new (cold) index, warmed from the record's last hours before ingest goes on.
    ingest, store, dispatched, learnt = _restarted(tmp_path, warm_hours)
    try:
        send(ingest, LINQING, [read(7, now + 40 * 60), read(8, now + 40 * 60 + 5, "鲁C77777")])
        alerts = clone_alerts(store)
        if warm_hours:
            # Two plates from the last 24 h (the read 30 h old is beyond the window).
            assert learnt == 2 and ingest.clones.warmed_plates == 2
            [alert] = alerts
            assert alert.plate_read == "鲁Q8K2L1" and alert.hit.entry_id == f"rule:clone:{TANCHENG}/1/1"
            assert [a.alert_id for a in dispatched] == [alert.alert_id]
        else:
            assert alerts == [] and dispatched == []  # cold: the sighting before the restart is unknown
    finally:
        store.stop()


def test_a_vehicle_colour_conflict_spanning_a_restart_is_found_from_the_record(tmp_path):
    now = time.time() - 3 * 3600
    ingest, store, _, _ = _restarted(tmp_path, 0)
    send(
        ingest,
        TANCHENG,
        [
            read(1, now, vehicle_colour="白色", vehicle_brand="Volkswagen"),
            read(2, now + 0.4, vehicle_colour="White", vehicle_brand="volkswagen"),
        ],
    )
    store.stop()
    ingest, store, _, learnt = _restarted(tmp_path, 24.0)
    try:
        [warmed] = [(colour, make) for r, colour, make in recent_reads(store.record, now - 60) if r.seq == 1]
        assert warmed == ("白色", "Volkswagen")  # kept in the day file
        assert learnt == 1
        send(
            ingest,
            TANCHENG,
            [
                read(3, now + 2 * 3600, vehicle_colour="黑色", vehicle_brand="Volkswagen"),
                read(4, now + 2 * 3600 + 0.4, vehicle_colour="black", vehicle_brand="Volkswagen"),
            ],
        )
        [alert] = clone_alerts(store)
        assert alert.seq == 3 and "vehicle colour white vs black" in alert.hit.explanation
    finally:
        store.stop()


def test_warming_merges_with_sightings_ingest_made_meanwhile(tmp_path):
    now = time.time() - 3600
    ingest, store, _, _ = _restarted(tmp_path, 0)
    send(ingest, TANCHENG, [read(1, now)])
    store.stop()
    store = HubStore(tmp_path / "hub.db")
    store.start()
    check = CloneCheck(CloneSettings(), load_geography(CloneSettings()))
    ingest = Ingest(
        store,
        HubWatchlists(),
        publish=lambda t, p: None,
        listener=Recorder(),
        clones=check,
    )
    try:
        warmed = list(recent_reads(store.record, now - 60))
        # Ingest goes on before the background warm-up finishes: a plausible trip to 临沭 is seen first.
        send(ingest, LINSHU, [read(2, now + 30 * 60, "鲁B12345")])
        assert check.warm_from(warmed) == 1 and len(check.index) == 1  # not adopted until the next batch
        send(ingest, LINQING, [read(3, now + 40 * 60)])
        assert len(check.index) == 2 and len(clone_alerts(store)) == 1
    finally:
        store.stop()


GUANXIAN, WEIHAI = "SD-LC-002", "SD-WH-001"


def explained_conflict_with_a_twin(ingest: Ingest, store: HubStore, t: float) -> None:
    """鲁QBK2L1, one look-alike character from 鲁Q8K2L1, is a real vehicle seen at 威海 at two passages
    ten and nine hours before ``t``; 鲁Q8K2L1 passes 郯城 at ``t`` and is read 40 min later at 临清, hours
    away. One confident misread of 鲁QBK2L1 (which could have reached 临清 by then) explains it."""
    send(ingest, WEIHAI, [read(1, t - 10 * 3600, "鲁QBK2L1"), read(2, t - 9 * 3600, "鲁QBK2L1")])
    send(ingest, TANCHENG, [read(3, t)])
    send(ingest, LINQING, [read(4, t + 40 * 60)])
    assert (
        clone_alerts(store) == [] and ingest.clones is not None and ingest.clones.explained_as_misreads == 1
    )


def test_a_clone_of_a_plate_with_a_look_alike_on_the_road_is_raised_at_its_second_conflict(hub):
    ingest, store, dispatched = hub
    t = time.time() - 2 * 3600
    explained_conflict_with_a_twin(ingest, store, t)
    assert ingest.clones is not None
    send(ingest, LINSHU, [read(5, t + 60 * 60)])  # 鲁Q8K2L1 again near 郯城
    # The same single read at 临清 explains this conflict too: one misread, no clone.
    assert clone_alerts(store) == [] and ingest.clones.explained_as_misreads == 2
    # 冠县, near 临清, forty minutes after 临沭: a third conflict, and no one sighting explains all three
    # (临清 or 临沭 would both have to be misreads). Two vehicles carry the plate.
    send(ingest, GUANXIAN, [read(6, t + 100 * 60)])
    [alert] = clone_alerts(store)
    assert (
        alert.checkpoint == GUANXIAN and alert.seq == 6 and alert.hit.entry_id == f"rule:clone:{LINSHU}/1/5"
    )
    assert ingest.clones.misreads_ruled_out == 1 and [a.alert_id for a in dispatched] == [alert.alert_id]
    # Had that commit failed, the edge sends the batch again: the index and the memory of possible misreads
    # already hold it, and the same conflict is raised again, with the same alert id, not explained away.
    [again] = ingest.clones.batch(GUANXIAN, 1, [read(6, t + 100 * 60)])
    assert ingest.clones.alert(again, raised_at=time.time()).alert_id == alert.alert_id


def test_a_look_alike_seen_once_like_this_plates_own_vehicle_explains_nothing(hub):
    ingest, store, _ = hub
    now = time.time() - 12 * 3600
    # 鲁QBK2L1 seen once, by one camera, a blue car: as likely a misread of a blue-car 鲁Q8K2L1 as a vehicle.
    send(ingest, WEIHAI, [read(1, now, "鲁QBK2L1", colour="blue", vehicle_type="car")])
    t = now + 10 * 3600
    send(ingest, TANCHENG, [read(2, t, colour="blue", vehicle_type="car")])
    send(ingest, LINQING, [read(3, t + 40 * 60, colour="blue", vehicle_type="car")])
    [alert] = clone_alerts(store)
    assert alert.checkpoint == LINQING and alert.seq == 3
    # A look-alike seen once but of another description is another vehicle: it may explain a misread.
    send(ingest, WEIHAI, [read(4, now, "鲁QBK2L9", colour="yellow", vehicle_type="truck")])
    send(ingest, TANCHENG, [read(5, t + 3600, "鲁Q8K2L9", colour="blue", vehicle_type="car")])
    send(ingest, LINQING, [read(6, t + 3600 + 40 * 60, "鲁Q8K2L9", colour="yellow", vehicle_type="truck")])
    assert len(clone_alerts(store)) == 1
    assert ingest.clones is not None and ingest.clones.explained_as_misreads == 1


def test_the_look_alike_read_of_the_same_passage_explains_a_misread_from_an_earlier_batch(hub):
    ingest, store, _ = hub
    now = time.time() - 7200
    send(ingest, LINQING, [read(1, now)])  # 鲁Q8K2L1 at 临清
    # 鲁QBK2L1 (never seen before) passes 郯城 twenty minutes later; one camera's read of it arrives in
    # one batch, the other camera's confident misread as 鲁Q8K2L1 in the next.
    send(ingest, TANCHENG, [read(1, now + 1200, "鲁QBK2L1")])
    send(ingest, TANCHENG, [read(2, now + 1200.4, confidence=93.0)])
    assert clone_alerts(store) == []
    assert ingest.clones is not None and ingest.clones.explained_as_misreads == 1


def test_a_look_alike_misread_again_hours_later_is_put_down_to_a_misread_again(hub):
    ingest, store, _ = hub
    t = time.time() - 10 * 3600
    explained_conflict_with_a_twin(ingest, store, t)
    assert ingest.clones is not None
    # Six hours on, 鲁Q8K2L1 is back at 郯城 and 鲁QBK2L1 is misread the same way at 临清 again: a second
    # misread, but longer after the first than clones.misread_memory_s (3 h), when two misreads of one
    # look-alike are no longer unlikely. A clone's conflicts come at its next passages, an hour or two apart.
    assert ingest.clones.settings.misread_memory_s < 6 * 3600
    send(ingest, TANCHENG, [read(5, t + 6 * 3600)])
    send(ingest, LINQING, [read(6, t + 6 * 3600 + 40 * 60)])
    assert clone_alerts(store) == [] and ingest.clones.explained_as_misreads == 2


def test_a_read_sent_again_with_another_capture_time_does_not_back_its_own_sighting():
    check = CloneCheck(CloneSettings(), load_geography(CloneSettings()))
    now = time.time() - 4 * 3600
    assert check.batch(TANCHENG, 1, [read(1, now, colour="blue")]) == []
    assert (
        check.batch(TANCHENG, 1, [read(1, now + 0.4, colour="blue")]) == []
    )  # the same read, its time changed
    # Two cameras call the plate yellow: against one read of blue, the colours are not corroborated.
    assert (
        check.batch(
            TANCHENG,
            1,
            [read(7, now + 3 * 3600, colour="yellow"), read(8, now + 3 * 3600 + 0.4, colour="yellow")],
        )
        == []
    )
    assert check.uncorroborated == 1


def test_a_look_alike_seen_once_like_any_sighting_of_this_plate_explains_nothing():
    """The rule looks at every sighting the index holds for the plate, not only the other side of the
    conflict, however long since the plate was last seen (it once missed them when that was over an hour)."""
    check = CloneCheck(CloneSettings(), load_geography(CloneSettings()))
    now = time.time() - 20 * 3600
    blue, truck = {"colour": "blue", "vehicle_type": "car"}, {"colour": "yellow", "vehicle_type": "truck"}
    assert check.batch(WEIHAI, 1, [read(1, now, "鲁QBK2L1", **blue)]) == []  # one camera, once: a blue car
    t = now + 10 * 3600
    assert check.batch(TANCHENG, 1, [read(2, t, **blue), read(3, t + 0.4, **blue)]) == []
    [first] = check.batch(LINQING, 1, [read(4, t + 40 * 60, **truck)])  # 40 min from 郯城: a yellow truck
    assert first.kind == "impossible_trip" and first.later.seq == 4
    # A blue car with the plate at 临沭 (near 郯城) 90 minutes after 临清: the trip is too fast again. The
    # look-alike's one sighting is like the blue car seen at 郯城, so it may be a misread of this plate
    # itself and explains nothing: two vehicles carry the plate.
    [second] = check.batch(LINSHU, 1, [read(5, t + 130 * 60, **blue)])
    assert second.kind == "impossible_trip" and (second.earlier.seq, second.later.seq) == (4, 5)
    assert check.explained_as_misreads == 0


def test_reads_the_index_cannot_hold_are_left_out_and_odd_descriptions_do_not_grow_it(monkeypatch):
    from central.intel import cloneindex

    check = CloneCheck(CloneSettings(), load_geography(CloneSettings()))
    now = time.time() - 4 * 3600
    # Numbers past 64 bits cannot be stored in the record either: the check skips them, raising nothing.
    assert check.batch(TANCHENG, 1, [read(2**64, now)]) == [] and len(check.index) == 0
    assert check.batch(TANCHENG, 2**64, [read(1, now)]) == [] and len(check.index) == 0
    # A camera sending a new make with every read: past IDS_MAX numbers, its descriptions are unknown ones.
    monkeypatch.setattr(cloneindex, "IDS_MAX", 10)
    makes = [read(10 + i, now + 600 * i, f"鲁B1234{i}", vehicle_brand=f"make{i}") for i in range(8)]
    assert check.batch(TANCHENG, 1, makes) == []
    assert len(check.index._values) <= 12 and len(check.index) == 8
    assert check.index.get("鲁B12347")[0].desc == cloneindex.UNKNOWN
    assert check.index.get("鲁B12340")[0].desc[3] == "make0"
    # The same past the cap when sightings warmed from the record are packed.
    warmed = cloneindex.Seen(TANCHENG, 1, 99, now, "鲁B99999", "cam-new", ("blue", "car", "red", "odd make"))
    check.index.put("鲁B99999", (warmed,))
    assert (
        check.index.get("鲁B99999")[0].desc == cloneindex.UNKNOWN
        and check.index.get("鲁B99999")[0].camera == ""
    )
    assert len(check.index._values) <= 12


def test_past_max_plates_the_least_recently_seen_plates_are_forgotten_first(geo):
    from central.intel.cloneindex import REFRESH_S

    check = CloneCheck(CloneSettings(max_plates=3), geo)
    t = time.time() - 2 * 86400
    plates_ = ["鲁B10001", "鲁B10002", "鲁B10003"]
    check.batch(TANCHENG, 1, [read(i + 1, t + i, p) for i, p in enumerate(plates_)])
    # The oldest plate seen again, soon: it keeps its place (moving on every read would cost ingest).
    check.batch(TANCHENG, 1, [read(10, t + 60, plates_[0])])
    # The second plate seen again after REFRESH_S: it moves to the recently seen end.
    check.batch(LINSHU, 1, [read(11, t + REFRESH_S + 100, plates_[1])])
    check.batch(LINSHU, 1, [read(12, t + REFRESH_S + 200, "鲁B10004")])
    assert len(check.index) == 3 and check.index.get(plates_[0]) == ()
    check.batch(LINSHU, 1, [read(13, t + REFRESH_S + 300, "鲁B10005")])
    assert check.index.get(plates_[2]) == ()
    assert [s.cp for s in check.index.get(plates_[1])] == [TANCHENG, LINSHU]
    assert check.index.get("鲁B10004") and check.index.get("鲁B10005")


def test_an_attribute_conflict_looking_exactly_like_a_look_alike_vehicle_that_fits_is_a_misread():
    """Both cameras of a passage may misread one plate alike. A sighting that differs from the plate's
    vehicle and looks exactly like a look-alike plate's vehicle, which could be there then, is that
    vehicle; one that looks otherwise is still a clone."""
    check = CloneCheck(CloneSettings(), load_geography(CloneSettings()))
    now = time.time() - 20 * 3600
    car, truck = {"colour": "blue", "vehicle_type": "car"}, {"colour": "yellow", "vehicle_type": "truck"}
    for n, (plate, twin, twin_looks) in enumerate(
        [("鲁Q8K2L1", "鲁QBK2L1", truck), ("鲁Q8K2L9", "鲁QBK2L9", {**truck, "vehicle_type": "car"})]
    ):
        seq = 10 * n
        t = now + n * 3600
        # The look-alike at 威海 at two passages; the plate's blue car at 郯城, both cameras agreeing.
        assert (
            check.batch(
                WEIHAI, 1, [read(seq + 1, t, twin, **twin_looks), read(seq + 2, t + 3600, twin, **twin_looks)]
            )
            == []
        )
        assert (
            check.batch(
                TANCHENG,
                1,
                [read(seq + 3, t + 2 * 3600, plate, **car), read(seq + 4, t + 2 * 3600 + 0.4, plate, **car)],
            )
            == []
        )
        # Ten hours later at 临清 both cameras read the plate on a yellow truck: the vehicles differ.
        findings = check.batch(
            LINQING,
            1,
            [
                read(seq + 5, t + 12 * 3600, plate, **truck),
                read(seq + 6, t + 12 * 3600 + 0.4, plate, **truck),
            ],
        )
        if n == 0:  # the look-alike is a yellow truck that could have reached 临清: it is that truck
            assert findings == [] and check.explained_as_misreads == 1
        else:  # the look-alike is a yellow car: nothing on the road looks like this truck
            [finding] = findings
            assert finding.kind == "attribute_conflict" and finding.later.plate == plate
            assert check.explained_as_misreads == 1
