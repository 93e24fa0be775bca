"""The wire-compatibility rule (docs/protocol.md, "Schema versions and compatibility"), message by message.

Within a major version a receiver ignores the fields it does not know, at any depth of a message; a
message of a major version it does not read is refused with a reason that says so, and the edge keeps
it as a dead letter (the hub's side: tests/test_hub_ingest.py). HTTP input stays strict.
The same rule between real releases: tests/test_compat_system.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from cordon import testing
from edge.kits.api import PanelInput
from edge.settings import MqttSettings
from edge.uplink import EdgeUplink
from protocols import topics
from protocols.feed import FeedSnapshot, PermitRules
from protocols.matching import Entry, PermitRule, Watchlist
from protocols.messages import (
    SCHEMA_VERSION,
    SUPPORTED_VERSIONS,
    WIRE_MESSAGES,
    AlertOutcome,
    AuditEvent,
    CameraRead,
    DecodeError,
    EventBatch,
    Gap,
    decode,
    encode,
)
from runtime.deadletters import DeadLetterStore
from tests.test_asyncapi import CP, EPOCH, SAMPLES

ROOT = Path(__file__).resolve().parents[1]
#: Every wire message, and beside the samples of the AsyncAPI test the events and changes they lack.
MORE = {
    "EventBatch (gap, outcome, audit)": EventBatch(
        v=SCHEMA_VERSION,
        checkpoint=CP,
        epoch=EPOCH,
        sent_at=1718000100.0,
        events=[
            Gap(seq=50, ranges=[(1, 3)], count=3, reason="quota", dropped_at=1.0, dropped_total=3),
            AlertOutcome(
                seq=51,
                alert_id="A1",
                outcome="misread",
                officer="chen.officer",
                acknowledged_at=2.0,
                note="看错了",
                alert_raised_at=1.5,
            ),
            AuditEvent(seq=52, action="login", actor="chen.officer", at=3.0, role="officer"),
        ],
    ),
    "FeedDelta (permit rules)": msgspec.structs.replace(
        SAMPLES["FeedDelta"],
        changes=[
            PermitRules(
                rules=[PermitRule(rule_id="hazmat", list_id="permits", colours=frozenset({"yellow"}))]
            )
        ],
    ),
}
CASES: dict[str, tuple[type[msgspec.Struct], msgspec.Struct]] = {
    **{name: (WIRE_MESSAGES[name], sample) for name, sample in SAMPLES.items()},
    **{name: (type(sample), sample) for name, sample in MORE.items()},
}


def with_unknown_fields(node: Any) -> Any:
    """The JSON of a message with a field no release knows added to every object in it, at every depth."""
    if isinstance(node, dict):
        return {**{k: with_unknown_fields(v) for k, v in node.items()}, "zz_future": {"nested": [1, "x"]}}
    if isinstance(node, list):
        return [with_unknown_fields(v) for v in node]
    return node


def as_json(message: msgspec.Struct) -> dict[str, Any]:
    return json.loads(encode(message))


def test_every_wire_message_and_what_it_nests_is_covered():
    assert set(WIRE_MESSAGES) <= set(CASES)
    kinds = {type(e).__name__ for _, m in CASES.values() if isinstance(m, EventBatch) for e in m.events}
    assert kinds == {"PlateRead", "Passage", "EdgeHit", "Gap", "AlertOutcome", "AuditEvent", "KitResultEvent"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_field_the_receiver_does_not_know_is_ignored_at_every_depth(name):
    kind, sample = CASES[name]
    newer = with_unknown_fields(as_json(sample))
    assert "zz_future" in newer
    assert decode(kind, json.dumps(newer).encode()) == sample


def test_the_snapshot_an_edge_fetches_over_http_ignores_unknown_fields_too():
    snapshot = FeedSnapshot(
        version=3,
        watchlists=[Watchlist(list_id="stolen", name="Stolen", priority=90)],
        entries=[Entry(entry_id="stolen:鲁A12345", list_id="stolen", plate="鲁A12345")],
        permit_rules=[PermitRule(rule_id="hazmat", list_id="permits", colours=frozenset({"yellow"}))],
    )
    newer = with_unknown_fields(json.loads(msgspec.json.encode(snapshot)))
    assert msgspec.json.decode(json.dumps(newer).encode(), type=FeedSnapshot) == snapshot


@pytest.mark.parametrize("name", sorted(WIRE_MESSAGES))
def test_a_major_version_the_receiver_does_not_read_is_refused_with_the_reason(name):
    assert SUPPORTED_VERSIONS == {SCHEMA_VERSION} == {1}
    kind, sample = CASES[name]
    data = as_json(sample)
    for payload in (
        {**data, "v": 2},  # the same fields: the version alone decides
        {"v": 2, "something": "else"},  # a new major may look nothing like this one
    ):
        with pytest.raises(DecodeError) as refused:
            decode(kind, json.dumps(payload).encode())
        assert refused.value.reason.startswith(f"unsupported schema version 2 of {name}: "), refused.value
        assert "reads major version 1" in refused.value.reason


def test_http_input_still_refuses_unknown_fields():
    """A camera's push and the tablet's kit result are answered at once: a misspelt field is a 400."""
    with pytest.raises(DecodeError, match="platee"):
        decode(CameraRead, b'{"plate": "\xe9\xb2\x81A12345", "platee": "x"}')
    panel = {"drug": "MET", "officer_call": "positive", "machine": {"call": "positive", "confidnce": 0.9}}
    with pytest.raises(msgspec.ValidationError, match="confidnce"):
        msgspec.json.decode(json.dumps(panel).encode(), type=PanelInput)
    del panel["machine"]["confidnce"]
    assert msgspec.json.decode(json.dumps(panel).encode(), type=PanelInput).machine.call == "positive"


async def test_the_edge_shows_a_newer_hubs_alert_and_dead_letters_a_major_it_does_not_read(tmp_path):
    """The edge's side: an alert with fields this release does not know reaches the tablets; one of an
    unknown major version is kept as a dead letter with the reason, and the edge goes on."""
    from edge.outbox import OutboxStore

    outbox, dead = OutboxStore(tmp_path / "outbox.db"), DeadLetterStore(tmp_path / "dead.db")
    outbox.start()
    dead.start()
    shown = []

    async def on_alert(alert):
        shown.append(alert)

    try:
        uplink = EdgeUplink(CP, MqttSettings(), outbox, on_alert=on_alert, dead=dead)
        alert = SAMPLES["Alert"]
        newer = json.dumps(with_unknown_fields(as_json(alert))).encode()
        major2 = json.dumps({**as_json(alert), "v": 2}).encode()
        await uplink._on_message(topics.alerts(CP), major2)
        await uplink._on_message(topics.alerts(CP), newer)
        assert shown == [alert]
        assert uplink.bad_messages == 1 and dead.count == 1
        (letter,) = await dead.recent()
        assert letter.source == "hub:alerts" and letter.checkpoint == CP
        assert letter.reason.startswith("unsupported schema version 2 of Alert")
        assert letter.raw_bytes == len(major2)
    finally:
        dead.stop()
        outbox.stop()


def test_the_previous_release_is_named_by_a_commit_this_clone_has():
    """RELEASES names the first release, the commit the edges in the field run (docs/protocol.md)."""
    previous = testing.previous_release(ROOT)
    assert previous.commit.startswith("aedf3f6") and len(previous.commit) == 40
    testing.check_release(ROOT, previous)


def test_a_release_missing_from_the_clone_fails_with_what_to_do():
    with pytest.raises(testing.ReleaseError, match=r"not in this clone's history.*git fetch --unshallow"):
        testing.check_release(ROOT, testing.Release("0" * 40, "r0"))
