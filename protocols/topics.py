"""MQTT topic names: the only place topics are built and parsed.

Layout (MQTT 3.1.1, QoS 1 unless noted)::

    cordon/v1/cp/{checkpoint}/events   edge -> hub   event batches (reads, passages)
    cordon/v1/cp/{checkpoint}/status   edge -> all   retained birth / last will
    cordon/v1/cp/{checkpoint}/ack      hub -> edge   end-to-end acknowledgements by range
    cordon/v1/cp/{checkpoint}/alerts   hub -> edge   alerts for that checkpoint's tablets
    cordon/v1/cp/{checkpoint}/accounts hub -> edge   retained: the checkpoint's officer accounts
    cordon/v1/cp/{checkpoint}/evidence/request  hub -> edge  ask for a read's full evidence image
    cordon/v1/cp/{checkpoint}/evidence/reply    edge -> hub  the image (base64) or why not
    cordon/v1/cp/{checkpoint}/receipt  edge -> hub   an alarm shown on a tablet there, and acknowledged
    cordon/v1/hub/status               hub -> all    retained: the hub tier online / offline (last will)
    cordon/v1/hub/{hub}/status         hub -> all    retained: one hub of several online / offline (its last will)
    cordon/v1/hub/parameters           hub -> edges  retained: rules the edges apply alike (fold window)
    cordon/v1/feed/delta               hub -> edges  watchlist feed changes, one version each
    cordon/v1/feed/version             hub -> edges  retained current feed version

The checkpoint id is also the edge's MQTT username, so a broker ACL can pin each edge to
``cordon/v1/cp/%u/#``. Hubs that share the edges' events subscribe to the events as
``$share/{group}/cordon/v1/cp/+/events`` (:func:`shared`), so each batch reaches one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from .errors import CordonError

PREFIX = "cordon/v1"
_CHECKPOINT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class TopicKind(StrEnum):
    EVENTS = "events"
    STATUS = "status"
    ACK = "ack"
    ALERTS = "alerts"
    ACCOUNTS = "accounts"
    EVIDENCE_REQUEST = "evidence/request"
    EVIDENCE_REPLY = "evidence/reply"
    RECEIPT = "receipt"
    HUB_STATUS = "hub_status"
    ONE_HUB_STATUS = "one_hub_status"
    HUB_PARAMETERS = "hub_parameters"
    FEED_DELTA = "feed_delta"
    FEED_VERSION = "feed_version"


_CP_KINDS = (
    TopicKind.EVENTS,
    TopicKind.STATUS,
    TopicKind.ACK,
    TopicKind.ALERTS,
    TopicKind.ACCOUNTS,
    TopicKind.EVIDENCE_REQUEST,
    TopicKind.EVIDENCE_REPLY,
    TopicKind.RECEIPT,
)


class TopicError(CordonError, ValueError):
    """A topic (or checkpoint id) that does not follow Cordon's layout."""


@dataclass(frozen=True, slots=True)
class Topic:
    kind: TopicKind
    checkpoint: str | None
    hub: str | None = None
    """The hub's id on ``cordon/v1/hub/{hub}/status``."""


def valid_checkpoint_id(checkpoint: str) -> bool:
    """True when the id is safe inside a topic level (no wildcards, no separators)."""
    return bool(_CHECKPOINT_RE.match(checkpoint))


def valid_hub_id(hub: str) -> bool:
    """True when a hub's id (its MQTT client id) or a share group's name is safe as one topic level;
    the same rule as a checkpoint id."""
    return bool(_CHECKPOINT_RE.match(hub))


def _cp(checkpoint: str, kind: TopicKind) -> str:
    if not valid_checkpoint_id(checkpoint):
        raise TopicError(f"invalid checkpoint id {checkpoint!r}")
    return f"{PREFIX}/cp/{checkpoint}/{kind.value}"


def events(checkpoint: str) -> str:
    return _cp(checkpoint, TopicKind.EVENTS)


def is_events(topic: str) -> bool:
    """A cheap test that ``topic`` is some checkpoint's events topic (``parse`` checks it in full)."""
    return topic.startswith(f"{PREFIX}/cp/") and topic.endswith(f"/{TopicKind.EVENTS.value}")


def is_status(topic: str) -> bool:
    """A cheap test that ``topic`` is some checkpoint's status topic (``parse`` checks it in full)."""
    return topic.startswith(f"{PREFIX}/cp/") and topic.endswith(f"/{TopicKind.STATUS.value}")


def status(checkpoint: str) -> str:
    return _cp(checkpoint, TopicKind.STATUS)


def ack(checkpoint: str) -> str:
    return _cp(checkpoint, TopicKind.ACK)


def alerts(checkpoint: str) -> str:
    return _cp(checkpoint, TopicKind.ALERTS)


def accounts(checkpoint: str) -> str:
    return _cp(checkpoint, TopicKind.ACCOUNTS)


def evidence_request(checkpoint: str) -> str:
    return _cp(checkpoint, TopicKind.EVIDENCE_REQUEST)


def evidence_reply(checkpoint: str) -> str:
    return _cp(checkpoint, TopicKind.EVIDENCE_REPLY)


def receipt(checkpoint: str) -> str:
    return _cp(checkpoint, TopicKind.RECEIPT)


def hub_status() -> str:
    """The hub tier's status: the only hub status topic edges of release r1 know."""
    return f"{PREFIX}/hub/status"


def one_hub_status(hub: str) -> str:
    """One hub's own status, when several hubs share a broker (``mqtt.share_group``)."""
    if not valid_hub_id(hub):
        raise TopicError(f"invalid hub id {hub!r}")
    return f"{PREFIX}/hub/{hub}/status"


def every_hub_status() -> str:
    """Subscription filter for every hub's own status."""
    return f"{PREFIX}/hub/+/status"


def hub_parameters() -> str:
    return f"{PREFIX}/hub/parameters"


def feed_delta() -> str:
    return f"{PREFIX}/feed/delta"


def feed_version() -> str:
    return f"{PREFIX}/feed/version"


def all_checkpoints(kind: TopicKind) -> str:
    """Subscription filter for one kind of topic across every checkpoint."""
    if kind not in _CP_KINDS:
        raise TopicError(f"{kind} is not a per-checkpoint topic")
    return f"{PREFIX}/cp/+/{kind.value}"


def shared(group: str, topic_filter: str) -> str:
    """A shared subscription (``$share/<group>/<filter>``): the broker gives each message to one
    subscriber of the group. Mosquitto 2 does it for MQTT 3.1.1 clients too, and checks the ACL
    against the filter."""
    if not valid_hub_id(group):
        raise TopicError(f"invalid share group {group!r}")
    return f"$share/{group}/{topic_filter}"


def parse(topic: str) -> Topic:
    """Parse a topic into its kind and checkpoint; raise TopicError for anything else."""
    if topic == hub_status():
        return Topic(TopicKind.HUB_STATUS, None)
    if topic == hub_parameters():
        return Topic(TopicKind.HUB_PARAMETERS, None)
    if topic == feed_delta():
        return Topic(TopicKind.FEED_DELTA, None)
    if topic == feed_version():
        return Topic(TopicKind.FEED_VERSION, None)
    parts = topic.split("/")
    if len(parts) == 5 and f"{parts[0]}/{parts[1]}/{parts[2]}" == f"{PREFIX}/hub" and parts[4] == "status":
        if valid_hub_id(parts[3]):
            return Topic(TopicKind.ONE_HUB_STATUS, None, parts[3])
    if len(parts) in (5, 6) and f"{parts[0]}/{parts[1]}" == PREFIX and parts[2] == "cp":
        checkpoint, leaf = parts[3], "/".join(parts[4:])
        if valid_checkpoint_id(checkpoint):
            for kind in _CP_KINDS:
                if leaf == kind.value:
                    return Topic(kind, checkpoint)
    raise TopicError(f"not a Cordon topic: {topic[:200]!r}")
