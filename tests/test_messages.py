import time

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.messages import (
    MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    Ack,
    Alert,
    CameraRead,
    CheckpointStatus,
    DecodeError,
    EventBatch,
    HubStatus,
    Passage,
    PlateRead,
    decode,
    encode,
)


def read(seq=1, **kw):
    base = dict(
        seq=seq,
        camera_id="cam-1",
        captured_at=time.time(),
        plate="鲁A12345",
        plate_raw="鲁A12345",
        plate_valid=True,
    )
    base.update(kw)
    return PlateRead(**base)


def batch(**kw):
    base = dict(
        v=SCHEMA_VERSION,
        checkpoint="SD-DZ-001",
        epoch=7,
        sent_at=time.time(),
        events=[
            read(1),
            Passage(
                seq=2,
                plate="鲁A12345",
                first_seen=1.0,
                last_seen=2.0,
                best_seq=1,
                read_seqs=[1],
                cameras=["cam-1"],
            ),
        ],
    )
    base.update(kw)
    return EventBatch(**base)


def test_round_trip_keeps_event_types():
    original = batch()
    decoded = decode(EventBatch, encode(original))
    assert isinstance(decoded.events[0], PlateRead) and isinstance(decoded.events[1], Passage)
    assert decoded == original


@pytest.mark.parametrize(
    "payload, needle",
    [
        (b"not json", "not valid JSON"),
        (
            b'{"v": 99, "checkpoint": "x", "epoch": 1, "sent_at": 1, "events": []}',
            "unsupported schema version 99",
        ),
        (b'{"v": 1, "checkpoint": "x", "epoch": 1, "sent_at": 1}', "missing required field `events`"),
        (b'{"v": 1, "checkpoint": "x", "epoch": 0, "sent_at": 1, "events": []}', "epoch"),
        (b'{"v": 1, "checkpoint": 5, "epoch": 1, "sent_at": 1, "events": []}', "Expected `str`"),
        (
            b'{"v": 1, "checkpoint": "x", "epoch": 1, "sent_at": 1, "events": [{"type": "read"}]}',
            "missing required field",
        ),
        (
            b'{"v": 1, "checkpoint": "x", "epoch": 1, "sent_at": 1, "events": [{"type": "bogus", "seq": 1}]}',
            "bogus",
        ),
    ],
)
def test_bad_batches_say_what_is_wrong(payload, needle):
    with pytest.raises(DecodeError) as err:
        decode(EventBatch, payload)
    assert needle in err.value.reason


def test_unknown_fields_are_ignored_on_the_wire():
    """The compatibility rule (tests/test_compat.py has every message at every depth)."""
    original = batch()
    data = msgspec.json.decode(encode(original))
    data["surprise"] = 1
    assert decode(EventBatch, msgspec.json.encode(data)) == original


def test_oversized_payload_refused_before_parsing():
    with pytest.raises(DecodeError, match="oversized"):
        decode(EventBatch, b" " * (MAX_PAYLOAD_BYTES + 1))


def test_camera_read_limits():
    assert decode(CameraRead, b'{"plate": "\xe9\xb2\x81A12345", "confidence": 88.5}').confidence == 88.5
    with pytest.raises(DecodeError, match="plate"):
        decode(CameraRead, b'{"colour": "blue"}')
    with pytest.raises(DecodeError):
        decode(CameraRead, b'{"plate": "' + b"A" * 40 + b'"}')
    with pytest.raises(DecodeError):
        decode(CameraRead, b'{"plate": "A", "confidence": 101}')
    with pytest.raises(DecodeError):
        decode(CameraRead, b'{"plate": "A", "direction": "sideways"}')


DECODERS = [EventBatch, Ack, CheckpointStatus, HubStatus, Alert, CameraRead]


@pytest.mark.parametrize("kind", DECODERS)
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000))
def test_decoders_never_raise_anything_but_decode_error(kind, data):
    try:
        decode(kind, data)
    except DecodeError:
        pass
