import pytest

from protocols import topics
from protocols.topics import TopicError, TopicKind


@pytest.mark.parametrize(
    "build, kind",
    [
        (topics.events, TopicKind.EVENTS),
        (topics.status, TopicKind.STATUS),
        (topics.ack, TopicKind.ACK),
        (topics.alerts, TopicKind.ALERTS),
        (topics.receipt, TopicKind.RECEIPT),
    ],
)
def test_build_and_parse_round_trip(build, kind):
    topic = build("SD-DZ-001")
    assert topic == f"cordon/v1/cp/SD-DZ-001/{kind.value}"
    parsed = topics.parse(topic)
    assert parsed.kind is kind and parsed.checkpoint == "SD-DZ-001"


def test_hub_status():
    assert topics.parse(topics.hub_status()).kind is TopicKind.HUB_STATUS


def test_one_hubs_status_names_the_hub():
    topic = topics.one_hub_status("cordon-hub-2")
    assert topic == "cordon/v1/hub/cordon-hub-2/status"
    parsed = topics.parse(topic)
    assert (
        parsed.kind is TopicKind.ONE_HUB_STATUS and parsed.hub == "cordon-hub-2" and parsed.checkpoint is None
    )
    assert topics.every_hub_status() == "cordon/v1/hub/+/status"
    # A hub called like another topic's level is still a hub; the tier's topic stays the tier's.
    assert topics.parse("cordon/v1/hub/parameters/status").hub == "parameters"
    assert topics.parse("cordon/v1/hub/status").kind is TopicKind.HUB_STATUS
    for bad in ("a/b", "+", "#", "", "鲁"):
        with pytest.raises(TopicError):
            topics.one_hub_status(bad)


def test_shared_subscription():
    events = topics.all_checkpoints(TopicKind.EVENTS)
    assert topics.shared("cordon-hubs", events) == "$share/cordon-hubs/cordon/v1/cp/+/events"
    for bad in ("a/b", "+", "", "#"):
        with pytest.raises(TopicError):
            topics.shared(bad, events)


@pytest.mark.parametrize("bad", ["SD/DZ", "+", "#", "", "a" * 65, "鲁-1", "SD DZ"])
def test_checkpoint_ids_that_would_break_topics_are_refused(bad):
    with pytest.raises(TopicError):
        topics.events(bad)


@pytest.mark.parametrize(
    "topic",
    [
        "cordon/v1/cp/SD-DZ-001/other",
        "cordon/v2/cp/SD-DZ-001/events",
        "cordon/v1/cp/+/events",
        "cordon/v1/cp/SD-DZ-001/events/x",
        "x",
        "",
        "cordon/v1/hub/other",
        "cordon/v1/hub/+/status",
        "cordon/v1/hub/a/b/status",
        "cordon/v1/hub/a/other",
    ],
)
def test_parse_refuses_foreign_topics(topic):
    with pytest.raises(TopicError):
        topics.parse(topic)


def test_subscription_filters():
    assert topics.all_checkpoints(TopicKind.EVENTS) == "cordon/v1/cp/+/events"
    with pytest.raises(TopicError):
        topics.all_checkpoints(TopicKind.HUB_STATUS)
