"""The AsyncAPI document says what the code does: its schemas, its channels, its messages."""

from __future__ import annotations

import datetime as dt
import json
import re
from importlib import resources
from typing import Any

import jsonschema
import msgspec
import pytest
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT7, DRAFT202012, Specification

from protocols import asyncapi_gen, topics
from protocols.feed import EntryDelete, EntryUpsert, FeedDelta, FeedVersion, ListDelete, ListUpsert
from protocols.kits import KitResult, MachineReading, PanelResult, Subject
from protocols.matching import Entry, Watchlist
from protocols.messages import (
    SCHEMA_VERSION,
    WIRE_MESSAGES,
    Ack,
    Alert,
    AlertHit,
    AlertReceipt,
    AlertRoute,
    CheckpointStatus,
    DecodeError,
    EdgeHit,
    EventBatch,
    EvidenceReply,
    EvidenceRequest,
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
from protocols.topics import TopicKind

CP = "SD-DZ-001"
HUB = "cordon-hub-2"
EPOCH = 1718000000000123
REGENERATE = "regenerate it: see the docstring of protocols/asyncapi_gen.py"

#: Which message each kind of topic carries, and which of them the hub (the document's side) receives.
CARRIES = {
    TopicKind.EVENTS: "EventBatch",
    TopicKind.STATUS: "CheckpointStatus",
    TopicKind.ACK: "Ack",
    TopicKind.ALERTS: "Alert",
    TopicKind.ACCOUNTS: "OfficerAccounts",
    TopicKind.HUB_STATUS: "HubStatus",
    TopicKind.HUB_PARAMETERS: "HubParameters",
    TopicKind.ONE_HUB_STATUS: "HubStatus",
    TopicKind.FEED_DELTA: "FeedDelta",
    TopicKind.FEED_VERSION: "FeedVersion",
    TopicKind.EVIDENCE_REQUEST: "EvidenceRequest",
    TopicKind.EVIDENCE_REPLY: "EvidenceReply",
    TopicKind.RECEIPT: "AlertReceipt",
}
HUB_RECEIVES = {TopicKind.EVENTS, TopicKind.STATUS, TopicKind.EVIDENCE_REPLY, TopicKind.RECEIPT}
GLOBAL = {
    TopicKind.HUB_STATUS,
    TopicKind.ONE_HUB_STATUS,
    TopicKind.HUB_PARAMETERS,
    TopicKind.FEED_DELTA,
    TopicKind.FEED_VERSION,
}
RETAINED = {
    TopicKind.STATUS,
    TopicKind.HUB_STATUS,
    TopicKind.ONE_HUB_STATUS,
    TopicKind.HUB_PARAMETERS,
    TopicKind.FEED_VERSION,
    TopicKind.ACCOUNTS,
}
BUILDERS = {
    TopicKind.EVENTS: topics.events,
    TopicKind.STATUS: topics.status,
    TopicKind.ACK: topics.ack,
    TopicKind.ALERTS: topics.alerts,
    TopicKind.ACCOUNTS: topics.accounts,
    TopicKind.HUB_STATUS: lambda _cp: topics.hub_status(),
    TopicKind.ONE_HUB_STATUS: lambda _cp: topics.one_hub_status(HUB),
    TopicKind.HUB_PARAMETERS: lambda _cp: topics.hub_parameters(),
    TopicKind.FEED_DELTA: lambda _cp: topics.feed_delta(),
    TopicKind.FEED_VERSION: lambda _cp: topics.feed_version(),
    TopicKind.EVIDENCE_REQUEST: topics.evidence_request,
    TopicKind.EVIDENCE_REPLY: topics.evidence_reply,
    TopicKind.RECEIPT: topics.receipt,
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    # Read it the way an installed package would: it ships as package data of `protocols`.
    text = (resources.files("protocols") / "asyncapi.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are used, not {ref!r}"
    node: Any = doc
    for part in ref[2:].split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and key in node, f"unresolvable $ref {ref!r}"
        node = node[key]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def concrete(address: str) -> str:
    """A channel's address with its parameters filled in."""
    return address.replace("{checkpoint}", CP).replace("{hub}", HUB)


def channel_kind(address: str) -> TopicKind:
    return topics.parse(concrete(address)).kind


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[1]


# -- (a) the schemas are msgspec's ---------------------------------------------------------------
def test_schemas_are_generated_from_the_messages(doc):
    committed = doc["components"]["schemas"]
    generated = asyncapi_gen.schema_components()
    missing = sorted(set(generated) - set(committed))
    extra = sorted(set(committed) - set(generated))
    differ = sorted(name for name in set(generated) & set(committed) if generated[name] != committed[name])
    assert not missing, f"schemas missing from asyncapi.yaml: {missing}; {REGENERATE}"
    assert not extra, f"schemas in asyncapi.yaml that no wire message has: {extra}; {REGENERATE}"
    assert not differ, f"schemas that differ from the messages: {differ}; {REGENERATE}"
    assert set(WIRE_MESSAGES) <= set(generated)


def test_generator_prints_the_block(capsys):
    asyncapi_gen.main()
    printed = capsys.readouterr().out
    assert printed.startswith("  schemas:\n")
    assert yaml.safe_load(printed) == {"schemas": asyncapi_gen.schema_components()}


def test_generator_speaks_draft_07():
    tuple_schema = msgspec.json.schema(tuple[int, int])
    assert "prefixItems" in tuple_schema  # what msgspec writes (2020-12) ...
    converted = asyncapi_gen._draft07(tuple_schema, "pair")
    assert converted["items"] == [{"type": "integer"}] * 2 and converted["additionalItems"] is False
    assert "prefixItems" not in converted  # ... is what draft 07 says
    with pytest.raises(ValueError, match="unevaluatedProperties"):
        asyncapi_gen._draft07({"type": "object", "unevaluatedProperties": False}, "X")
    for schema in asyncapi_gen.schema_components().values():
        jsonschema.Draft7Validator.check_schema(schema)


# -- (b) channels are topics.py's topics -------------------------------------------------------------
def test_every_channel_is_a_topic_and_every_topic_a_channel(doc):
    seen: dict[TopicKind, str] = {}
    for name, channel in doc["channels"].items():
        address = channel["address"]
        assert set(re.findall(r"\{(\w+)\}", address)) == set(channel.get("parameters", {})), name
        parsed = topics.parse(concrete(address))
        assert parsed.checkpoint == (None if parsed.kind in GLOBAL else CP), name
        assert parsed.hub == (HUB if parsed.kind is TopicKind.ONE_HUB_STATUS else None), name
        assert BUILDERS[parsed.kind](CP) == concrete(address), name
        assert parsed.kind not in seen, f"{name} and {seen.get(parsed.kind)} are the same topic"
        seen[parsed.kind] = name
    assert set(seen) == set(TopicKind), f"topics without a channel: {sorted(set(TopicKind) - set(seen))}"


def test_operations_say_who_sends_what(doc):
    operated = set()
    for name, op in doc["operations"].items():
        channel = resolve(doc, op["channel"]["$ref"])
        kind = channel_kind(channel["address"])
        operated.add(kind)
        assert op["action"] == ("receive" if kind in HUB_RECEIVES else "send"), name
        assert op["bindings"]["mqtt"]["qos"] == 1, name
        assert op["bindings"]["mqtt"]["retain"] is (kind in RETAINED), name
        for ref in op["messages"]:
            assert ref["$ref"].startswith(op["channel"]["$ref"] + "/messages/"), (
                f"{name}: {ref} is not on its channel"
            )
    assert operated == set(TopicKind), "every channel has an operation"


# -- (c) messages ---------------------------------------------------------------------------------------
def test_every_wire_message_is_on_its_channel(doc):
    used = set()
    for name, channel in doc["channels"].items():
        for message_ref in channel["messages"].values():
            message = resolve(doc, message_ref["$ref"])
            schema_ref = message["payload"]["$ref"]
            assert schema_ref == asyncapi_gen.REF_TEMPLATE.format(name=ref_name(schema_ref)), name
            assert ref_name(schema_ref) in doc["components"]["schemas"], f"{name}: no schema {schema_ref}"
            assert ref_name(schema_ref) == CARRIES[channel_kind(channel["address"])], name
            used.add(ref_name(schema_ref))
    assert set(WIRE_MESSAGES) <= used, f"wire messages on no channel: {sorted(set(WIRE_MESSAGES) - used)}"
    assert set(doc["components"]["messages"]) == set(WIRE_MESSAGES)


def test_every_reference_resolves(doc):
    for ref in refs(doc):
        resolve(doc, ref)


# -- (d) real messages validate against the schemas --------------------------------------------------
def read(seq: int, **extra: Any) -> PlateRead:
    return PlateRead(
        seq=seq,
        camera_id="lane1",
        captured_at=1718000041.9,
        plate="鲁A12345",
        plate_raw="蓝鲁Ａ·12345",
        plate_valid=True,
        **extra,
    )


SAMPLES: dict[str, msgspec.Struct] = {
    "EventBatch": EventBatch(
        v=SCHEMA_VERSION,
        checkpoint=CP,
        epoch=EPOCH,
        sent_at=1718000042.5,
        events=[
            read(40),
            read(
                41,
                plate_problem=None,
                colour="blue",
                vehicle_type="car",
                confidence=91.5,
                lane=1,
                direction="in",
                camera_event_id="e-1",
                vehicle_colour="white",
                vehicle_brand="Volkswagen",
                has_evidence=True,
            ),
            EdgeHit(
                seq=44,
                read_seq=41,
                alert_id="A8d2403ac9ae3979f0220b5e8",
                entry_id="E17",
                list_id="stolen",
                kind="exact",
                score=1.0,
                explanation="exact match",
                feed_version=7,
                matcher_version="m1",
                raised_at=1718000042.0,
                thumbnail="/9j/4AAQSkZJRg==",
            ),
            PlateRead(
                seq=43,
                camera_id="lane2",
                captured_at=1718000043.0,
                plate="",
                plate_raw="无车牌",
                plate_valid=False,
                plate_problem="no plate",
                no_plate=True,
            ),
            Passage(
                seq=42,
                plate="鲁A12345",
                colour="blue",
                first_seen=1718000040.2,
                last_seen=1718000041.9,
                best_seq=41,
                read_seqs=[40, 41],
                cameras=["lane1"],
            ),
            KitResultEvent(
                seq=44,
                checkpoint_officer="chen.officer",
                recorded_at=1718000044.0,
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
                    sampled_at=1718000044.0,
                    read_at=1718000044.0,
                    officers=["chen.officer", "002"],
                    source="manual",
                    needs_lab=True,
                    sample_a="A1",
                    sample_b="B1",
                ),
            ),
        ],
    ),
    "Ack": Ack(v=SCHEMA_VERSION, epoch=EPOCH, ranges=[(1, 40), (42, 42)]),
    "CheckpointStatus": CheckpointStatus(
        v=SCHEMA_VERSION,
        checkpoint=CP,
        online=True,
        sent_at=1718000000.0,
        epoch=EPOCH,
        outbox_depth=3,
        oldest_unacked_s=1.5,
        feed_version=7,
        software="cordon 0.1.0",
        stale_cameras=["lane2"],
    ),
    "HubStatus": HubStatus(v=SCHEMA_VERSION, online=False, sent_at=1718000000.0, schema_versions=[1]),
    "HubParameters": HubParameters(v=SCHEMA_VERSION, sent_at=1718000000.0, fold_window_s=600.0),
    "Alert": Alert(
        v=SCHEMA_VERSION,
        alert_id="A8d2403ac9ae3979f0220b5e8",
        checkpoint=CP,
        epoch=EPOCH,
        seq=41,
        raised_at=1718000042.6,
        captured_at=1718000041.9,
        camera_id="lane1",
        plate_read="鲁A12345",
        lane=1,
        thumbnail="/9j/4AAQSkZJRg==",
        hit=AlertHit(
            entry_id="E17",
            entry_plate="鲁A12345",
            list_id="stolen",
            list_name="Stolen vehicles",
            action="intercept",
            priority=90,
            kind="exact",
            score=1.0,
            explanation="exact match",
        ),
        direction="in",
        routed_to=[
            AlertRoute(checkpoint=CP, why="read"),
            AlertRoute(checkpoint="SD-DZ-007", why="downstream"),
        ],
        folded=2,
        last_seen_at=1718000400.0,
        last_seen_checkpoint="SD-DZ-007",
    ),
    "FeedDelta": FeedDelta(
        v=SCHEMA_VERSION,
        version=8,
        sent_at=1718000050.0,
        changes=[
            ListUpsert(watchlist=Watchlist(list_id="stolen", name="Stolen vehicles", priority=90)),
            EntryUpsert(
                entry=Entry(entry_id="stolen:鲁A12345", list_id="stolen", plate="鲁A12345", reason="stolen")
            ),
            EntryDelete(entry_id="stolen:鲁B00001"),
            ListDelete(list_id="old-list"),
        ],
    ),
    "FeedVersion": FeedVersion(v=SCHEMA_VERSION, version=8, entries=120345, sent_at=1718000050.0),
    "OfficerAccounts": OfficerAccounts(
        v=SCHEMA_VERSION,
        checkpoint=CP,
        sent_at=1718000060.0,
        accounts=[
            OfficerAccount(
                username="chen.officer",
                display_name="陈警官",
                disabled=False,
                generation=2,
                password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            )
        ],
    ),
    "EvidenceRequest": EvidenceRequest(
        v=SCHEMA_VERSION, request_id="R3f9a1c2b4d5e6f70", epoch=EPOCH, seq=42, kinds=["scene", "plate"]
    ),
    "EvidenceReply": EvidenceReply(
        v=SCHEMA_VERSION,
        request_id="R3f9a1c2b4d5e6f70",
        checkpoint=CP,
        epoch=EPOCH,
        seq=42,
        kind="scene",
        data="/9j/4AAQSkZJRg==",
        reencoded=True,
    ),
    "AlertReceipt": AlertReceipt(
        v=SCHEMA_VERSION,
        checkpoint=CP,
        alert_id="A3f9a1c2b4d5e6f7081920a1b",
        sent_at=1718000095.0,
        shown_at=1718000031.2,
        shown_by="chen.officer",
        acknowledged_at=1718000094.8,
        outcome="intercepted",
        officer="chen.officer",
    ),
}


def validator(schemas: dict[str, Any], name: str, spec: Specification[Any]) -> jsonschema.protocols.Validator:
    """Validate against ``schemas[name]`` with its ``#/components/schemas/...`` references resolvable."""
    registry = Registry().with_resource(
        "urn:cordon:asyncapi", spec.create_resource({"components": {"schemas": schemas}})
    )
    cls = jsonschema.Draft7Validator if spec is DRAFT7 else jsonschema.Draft202012Validator
    return cls({"$ref": f"urn:cordon:asyncapi#/components/schemas/{name}"}, registry=registry)


@pytest.fixture(scope="module")
def validators(doc) -> dict[str, list[jsonschema.protocols.Validator]]:
    # The document's schemas (AsyncAPI's dialect, draft 07) and msgspec's own (2020-12) must agree.
    _, raw = msgspec.json.schema_components(
        list(WIRE_MESSAGES.values()), ref_template=asyncapi_gen.REF_TEMPLATE
    )
    schemas = doc["components"]["schemas"]
    return {
        name: [validator(schemas, name, DRAFT7), validator(raw, name, DRAFT202012)] for name in WIRE_MESSAGES
    }


def test_every_message_has_a_sample():
    assert set(SAMPLES) == set(WIRE_MESSAGES)
    assert all(type(sample) is WIRE_MESSAGES[name] for name, sample in SAMPLES.items())


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_encoded_message_validates(validators, name):
    payload = json.loads(encode(SAMPLES[name]))
    for check in validators[name]:
        check.validate(payload)
        assert check.is_valid({**payload, "surprise": 1}), "a field the receiver does not know is ignored"
        assert not check.is_valid({k: v for k, v in payload.items() if k != "v"}), "v is required"


def test_schema_rejects_what_the_decoder_rejects(validators):
    ack = json.loads(encode(SAMPLES["Ack"]))
    batch = json.loads(encode(SAMPLES["EventBatch"]))
    bad = [
        ("Ack", {**ack, "ranges": [[1, 2, 3]]}),
        ("Ack", {**ack, "ranges": [[1]]}),
        ("EventBatch", {**batch, "events": []}),
        ("EventBatch", {**batch, "events": [{**batch["events"][0], "type": "kit"}]}),
        ("EventBatch", {**batch, "events": [{**batch["events"][0], "seq": 0}]}),
        ("EventBatch", {**batch, "events": [{**batch["events"][0], "plate": "X" * 33}]}),
    ]
    for name, payload in bad:
        with pytest.raises(DecodeError):
            decode(WIRE_MESSAGES[name], json.dumps(payload).encode())
        for check in validators[name]:
            assert not check.is_valid(payload), (name, payload)


def test_document_examples_are_real_messages(doc, validators):
    examples = 0
    for name, message in doc["components"]["messages"].items():
        for example in message.get("examples", []):
            for check in validators[name]:
                check.validate(example["payload"])
            decode(WIRE_MESSAGES[name], json.dumps(example["payload"]).encode())
            examples += 1
    assert examples >= len(WIRE_MESSAGES)


# -- (e) versions ---------------------------------------------------------------------------------------
def test_document_is_asyncapi_3_over_mqtt_3_1_1(doc):
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["version"] == str(SCHEMA_VERSION), "info.version is the wire schema version"
    assert {"production", "demo"} <= set(doc["servers"])
    for name, server in doc["servers"].items():
        assert server["protocol"] == "mqtt", name
        assert server["protocolVersion"] == "3.1.1", name
