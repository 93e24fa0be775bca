"""Property-based tests at every door: no payload makes a decoder raise anything but DecodeError.

Valid messages with one field mutated (type swapped, value pushed out of range, field dropped or
added), and arbitrary bytes. 1,000 examples per decoder here; `make fuzz` runs 10,000.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.ingest.listener import Recorder
from protocols.feed import EntryUpsert, FeedDelta, FeedVersion, ListUpsert
from protocols.kits import KitResult, MachineReading, PanelResult, Subject
from protocols.matching import Entry, Watchlist
from protocols.messages import (
    SCHEMA_VERSION,
    Ack,
    Alert,
    AlertHit,
    AlertRoute,
    CameraRead,
    CheckpointStatus,
    DecodeError,
    EdgeHit,
    EventBatch,
    EvidenceReply,
    EvidenceRequest,
    Gap,
    HubParameters,
    HubStatus,
    KitResultEvent,
    OfficerAccount,
    OfficerAccounts,
    Passage,
    PlateRead,
    decode,
    encode,
)

EXAMPLES = int(os.environ.get("CORDON_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NOW = 1_800_000_000.0
VALID = {
    EventBatch: EventBatch(
        v=SCHEMA_VERSION,
        checkpoint="SD-DZ-001",
        epoch=7,
        sent_at=NOW,
        events=[
            PlateRead(
                seq=1,
                camera_id="cam",
                captured_at=NOW,
                plate="鲁A12345",
                plate_raw="蓝鲁A12345",
                plate_valid=True,
                colour="blue",
                confidence=90.0,
                lane=1,
                direction="in",
                camera_event_id="e1",
                vehicle_colour="white",
                vehicle_brand="Volkswagen",
                has_evidence=True,
            ),
            Passage(
                seq=2,
                plate="鲁A12345",
                first_seen=NOW,
                last_seen=NOW,
                best_seq=1,
                read_seqs=[1],
                cameras=["cam"],
            ),
            EdgeHit(
                seq=3,
                read_seq=1,
                alert_id="A1",
                entry_id="e",
                list_id="l",
                kind="exact",
                score=1.0,
                explanation="x",
                feed_version=1,
                matcher_version="m",
                raised_at=NOW,
                thumbnail="/9j/2w==",
            ),
            Gap(seq=4, ranges=[(5, 9)], count=5, reason="quota", dropped_at=NOW, dropped_total=5),
            KitResultEvent(
                seq=5,
                checkpoint_officer="chen.officer",
                recorded_at=NOW,
                person_hits=["persons:1"],
                result=KitResult(
                    result_id="SD-DZ-001-1",
                    subject=Subject(id_hash="scrypt$n=32768,r=8,p=1$" + "ab" * 32, id_last4="002X"),
                    kit_model="SD-SAL6",
                    lot="L1",
                    expiry=dt.date(2027, 1, 1),
                    sample_type="saliva",
                    panels=[
                        PanelResult(
                            drug="MET",
                            officer_call="positive",
                            machine=MachineReading(call="uncertain", confidence=0.4),
                        )
                    ],
                    sampled_at=NOW,
                    read_at=NOW,
                    officers=["chen.officer", "002"],
                    source="manual",
                    needs_lab=True,
                    sample_a="A1",
                    sample_b="B1",
                ),
            ),
        ],
    ),
    Ack: Ack(v=SCHEMA_VERSION, epoch=7, ranges=[(1, 2), (4, 4)]),
    CheckpointStatus: CheckpointStatus(
        v=SCHEMA_VERSION,
        checkpoint="SD-DZ-001",
        online=True,
        sent_at=NOW,
        epoch=7,
        outbox_depth=3,
        dropped_reads=2,
        stale_cameras=["cam2"],
    ),
    HubStatus: HubStatus(v=SCHEMA_VERSION, online=True, sent_at=NOW, schema_versions=[1]),
    HubParameters: HubParameters(v=SCHEMA_VERSION, sent_at=NOW, fold_window_s=90.0),
    Alert: Alert(
        v=SCHEMA_VERSION,
        alert_id="A1",
        checkpoint="SD-DZ-001",
        epoch=7,
        seq=1,
        raised_at=NOW,
        captured_at=NOW,
        camera_id="cam",
        plate_read="鲁A12345",
        thumbnail="/9j/2w==",
        hit=AlertHit(
            entry_id="e",
            entry_plate="鲁A12345",
            list_id="l",
            list_name="n",
            action="intercept",
            priority=50,
            kind="exact",
            score=1.0,
            explanation="x",
        ),
        direction="out",
        routed_to=[AlertRoute(checkpoint="SD-DZ-002", why="approach")],
        folded=1,
        last_seen_at=NOW,
        last_seen_checkpoint="SD-DZ-002",
    ),
    CameraRead: CameraRead(
        plate="鲁A12345",
        colour="blue",
        captured_at=NOW,
        confidence=80.0,
        lane=2,
        direction="out",
        vehicle_type="car",
        event_id="x",
        vehicle_colour="white",
        vehicle_brand="Volkswagen",
    ),
    FeedDelta: FeedDelta(
        v=SCHEMA_VERSION,
        version=3,
        changes=[
            ListUpsert(watchlist=Watchlist(list_id="l", name="n")),
            EntryUpsert(entry=Entry(entry_id="l:鲁A12345", list_id="l", plate="鲁A12345")),
        ],
    ),
    FeedVersion: FeedVersion(v=SCHEMA_VERSION, version=3, entries=1),
    OfficerAccounts: OfficerAccounts(
        v=SCHEMA_VERSION,
        checkpoint="SD-DZ-001",
        sent_at=NOW,
        accounts=[
            OfficerAccount(
                username="chen", display_name="陈", password_hash="$argon2id$x", disabled=False, generation=1
            )
        ],
    ),
    EvidenceRequest: EvidenceRequest(
        v=SCHEMA_VERSION, request_id="R0123456789", epoch=7, seq=1, kinds=["scene"]
    ),
    EvidenceReply: EvidenceReply(
        v=SCHEMA_VERSION,
        request_id="R0123456789",
        checkpoint="SD-DZ-001",
        epoch=7,
        seq=1,
        kind="plate",
        error="not kept",
    ),
}

ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=300),
    st.lists(st.integers(), max_size=5),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def paths(node, prefix=()):
    """Every (path, value) inside a JSON document."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, (*prefix, i))


@st.composite
def mutated(draw, kind):
    doc = json.loads(encode(VALID[kind]))
    spots = [p for p, _ in paths(doc) if p]
    path = draw(st.sampled_from(spots))
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    how = draw(st.sampled_from(["replace", "drop", "add"]))
    if how == "replace" or not isinstance(parent, dict):
        parent[path[-1]] = draw(ODD_VALUES)
    elif how == "drop":
        del parent[path[-1]]
    else:
        parent[draw(st.text(min_size=1, max_size=8))] = draw(ODD_VALUES)
    return json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()


def door(kind, payload: bytes) -> None:
    try:
        decode(kind, payload)
    except DecodeError as exc:
        assert exc.reason, "a rejection always says why"


def test_every_valid_sample_decodes():
    for kind, message in VALID.items():
        assert decode(kind, encode(message)) == message


def make_tests(kind):
    @FUZZ
    @given(payload=mutated(kind))
    def mutated_field(payload):
        door(kind, payload)

    @FUZZ
    @given(payload=st.binary(max_size=4096))
    def arbitrary_bytes(payload):
        door(kind, payload)

    return mutated_field, arbitrary_bytes


for _kind in VALID:
    _m, _b = make_tests(_kind)
    globals()[f"test_{_kind.__name__}_mutated_field"] = _m
    globals()[f"test_{_kind.__name__}_arbitrary_bytes"] = _b


def test_hub_ingest_door_never_raises(tmp_path):
    """The hub's MQTT door: whatever arrives becomes stored data or a dead letter, never an exception."""
    from central.ingest.pipeline import Ingest
    from central.record.sqlite.store import HubStore
    from central.watchlists.index import HubWatchlists

    store = HubStore(tmp_path / "hub.db")
    store.start()
    try:
        ingest = Ingest(
            store,
            HubWatchlists(),
            publish=lambda t, p: None,
            listener=Recorder(),
        )

        @settings(max_examples=max(100, EXAMPLES // 5), deadline=None)
        @given(
            payload=st.one_of(mutated(EventBatch), mutated(CheckpointStatus), st.binary(max_size=2048)),
            topic=st.sampled_from(
                [
                    "cordon/v1/cp/SD-DZ-001/events",
                    "cordon/v1/cp/SD-DZ-001/status",
                    "cordon/v1/cp/SD-DZ-001/ack",
                    "nonsense/topic",
                ]
            ),
        )
        def run(payload, topic):
            result = ingest.handle(topic, payload, time.time()).result(10)
            assert result is not None

        run()
        assert ingest.metrics.commit_failures == 0
    finally:
        store.stop()


def _viid_doc() -> dict:
    from pathlib import Path

    path = Path(__file__).parent / "fixtures" / "cameras" / "viid" / "broken_image.json"
    return json.loads(path.read_text(encoding="utf-8"))


@st.composite
def mutated_viid(draw):
    doc = _viid_doc()
    spots = [p for p, _ in paths(doc) if p]
    path = draw(st.sampled_from(spots))
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()) or not isinstance(parent, dict):
        parent[path[-1]] = draw(ODD_VALUES)
    else:
        del parent[path[-1]]
    return doc


@FUZZ
@given(doc=mutated_viid())
def test_viid_records_parse_or_say_why(doc):
    """The GA/T 1400 door (edge MotorVehicles, hub notifications): a record parses or is a RecordError."""
    from protocols import viid

    try:
        objects = viid.motor_vehicle_objects(doc)
    except viid.RecordError as exc:
        assert str(exc)
        return
    for obj in objects:
        try:
            viid.parse_record(obj, 8 * 3600)
        except viid.RecordError as exc:
            assert str(exc)
    wrapped = {
        "SubscribeNotificationListObject": {"SubscribeNotificationObject": [{"MotorVehicleObjectList": doc}]}
    }
    for note in viid.notification_objects(wrapped):
        try:
            viid.parse_notification(note)
        except viid.RecordError as exc:
            assert str(exc)
