"""Wire messages between cameras, edges and the hub: typed, versioned, tolerant of what they do not know.

Compatibility rule (docs/protocol.md, "Schema versions and compatibility"): every MQTT message
carries ``v``, the *major* schema version. Within a major version a receiver ignores the fields it
does not know, so a release may add an optional field whose absence means what the previous release
did, and a receiver one release behind decodes the message as before. A new required field, a field
removed, retyped or given another meaning, a new event type or a new value in an enumeration is a new
major version: a receiver dead-letters a major version it does not read. The hub serves edges one
release behind: it is upgraded first and reads (and writes to each edge) the major versions of the
previous release too, and announces the ones it reads in its retained status.

Strictness stays where it protects: the HTTP input a camera pushes (``CameraRead``) still refuses an
unknown field, because there a misspelt field name is a mistake that would silently lose data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Annotated, Literal, TypeVar

import msgspec

from .errors import CordonError
from .feed import FeedDelta, FeedVersion
from .kits import KitResult

SCHEMA_VERSION = 1
"""The major schema version this release writes in ``v``."""
SUPPORTED_VERSIONS: frozenset[int] = frozenset({1})
"""The major versions this release reads; anything else is dead-lettered (the hub announces these)."""
MAX_PAYLOAD_BYTES = 512 * 1024
MAX_BATCH_EVENTS = 1000

Text32 = Annotated[str, msgspec.Meta(max_length=32)]
Text128 = Annotated[str, msgspec.Meta(max_length=128)]
Text500 = Annotated[str, msgspec.Meta(max_length=500)]
Seq = Annotated[int, msgspec.Meta(ge=1)]
Confidence = Annotated[float, msgspec.Meta(ge=0, le=100)]
Lane = Annotated[int, msgspec.Meta(ge=0, le=99)]
Direction = Literal["in", "out"]
THUMBNAIL_MAX_BYTES = 12 * 1024
"""Largest thumbnail JPEG that travels with a hit or an alert (its base64 text is 4/3 of that)."""
Thumbnail = Annotated[
    str, msgspec.Meta(max_length=(THUMBNAIL_MAX_BYTES + 2) // 3 * 4, pattern="^[A-Za-z0-9+/]*={0,2}$")
]

T = TypeVar("T")

_STRICT = {"forbid_unknown_fields": True, "kw_only": True}
"""HTTP input: an unknown field is an error."""
_WIRE = {"kw_only": True}
"""Wire messages: a field this release does not know is ignored (the compatibility rule above)."""


class CameraRead(msgspec.Struct, **_STRICT):
    """The generic JSON read a camera (or integration) pushes to an edge over HTTP."""

    plate: Text32
    colour: Text32 | None = None
    captured_at: float | str | None = None
    """Unix seconds or ISO 8601 with offset; absent means the edge's receive time."""
    confidence: Confidence | None = None
    lane: Lane | None = None
    direction: Direction | None = None
    vehicle_type: Text32 | None = None
    event_id: Text128 | None = None
    """The camera's own id for this read, kept for tracing and duplicate detection."""
    vehicle_colour: Text32 | None = None
    """The vehicle's body colour as the camera named it (e.g. ``white``), when it says."""
    vehicle_brand: Text32 | None = None
    """The vehicle's make as the camera named it (e.g. ``Volkswagen``), when it says."""


class PlateRead(msgspec.Struct, tag="read", **_WIRE):
    """One camera's recognition of one plate, as the edge recorded it."""

    seq: Seq
    camera_id: Text128
    captured_at: float
    plate: Text32
    """Canonical form; empty when no plate was readable."""
    plate_raw: Text128
    plate_valid: bool
    plate_problem: Text500 | None = None
    no_plate: bool = False
    colour: Text32 | None = None
    vehicle_type: Text32 | None = None
    confidence: Confidence | None = None
    lane: Lane | None = None
    direction: Direction | None = None
    camera_event_id: Text128 | None = None
    vehicle_colour: Text32 | None = None
    vehicle_brand: Text32 | None = None
    has_evidence: bool = False
    """The edge kept a picture of this read (plain reads never carry pictures: ask for it by request)."""


class Passage(msgspec.Struct, tag="passage", **_WIRE):
    """One vehicle passing one checkpoint: several reads merged, with the best one named."""

    seq: Seq
    plate: Text32
    first_seen: float
    last_seen: float
    best_seq: Seq
    read_seqs: Annotated[list[Seq], msgspec.Meta(min_length=1, max_length=64)]
    cameras: Annotated[list[Text128], msgspec.Meta(max_length=64)]
    no_plate: bool = False
    colour: Text32 | None = None
    vehicle_type: Text32 | None = None


class EdgeHit(msgspec.Struct, tag="hit", **_WIRE):
    """The edge matched one of its reads against its mirror and alerted its tablets."""

    seq: Seq
    read_seq: Seq
    alert_id: Text128
    entry_id: Text128
    list_id: Text128
    kind: Text32
    score: float
    explanation: Text500
    feed_version: int
    matcher_version: Text32
    raised_at: float
    thumbnail: Thumbnail | None = None
    """Base64 of a small JPEG of the read's picture, when the edge had one at the moment of the hit."""


class Gap(msgspec.Struct, tag="gap", **_WIRE):
    """Plain reads the edge had to drop from its outbox (disk quota), by sequence range, so the
    hub's record shows the hole and why instead of silently missing it. Hits are never dropped."""

    seq: Seq
    ranges: Annotated[list[tuple[Seq, Seq]], msgspec.Meta(min_length=1, max_length=1000)]
    """Inclusive sequence ranges of the dropped reads (of this epoch)."""
    count: Annotated[int, msgspec.Meta(ge=1)]
    reason: Text500
    dropped_at: float
    dropped_total: Annotated[int, msgspec.Meta(ge=0)]
    """Reads this outbox has dropped since it was created, this gap included."""


Outcome = Literal["intercepted", "not_found", "misread", "released"]
OUTCOMES: tuple[str, ...] = ("intercepted", "not_found", "misread", "released")


class AlertOutcome(msgspec.Struct, tag="outcome", **_WIRE):
    """An officer acknowledged an alert at the tablet and said what came of it.

    ``misread`` means the camera misread the plate and the match was false: per match kind, these
    are the real false-alarm rate of fuzzy matching."""

    seq: Seq
    alert_id: Text128
    outcome: Outcome
    officer: Text128
    acknowledged_at: float
    note: Text500 = ""
    alert_raised_at: float | None = None
    """When the alert was raised at this edge, so the hub can tell how long acknowledgement took."""


class AuditEvent(msgspec.Struct, tag="audit", **_WIRE):
    """Something the hub's audit trail must hold that happened at the edge (an officer's login at the
    tablet, a retention run): it travels like any event, exactly once, and the hub appends it to its
    hash-chained trail with the checkpoint named."""

    seq: Seq
    action: Text128
    actor: Text128
    at: float
    role: Text32 = ""
    target: Text500 = ""
    detail: Annotated[str, msgspec.Meta(max_length=4000)] = "{}"
    """A JSON object as text."""


class KitResultEvent(msgspec.Struct, tag="kit", **_WIRE):
    """A drug quick-test result recorded at the tablet (protocols/kits.py): the subject only as a keyed
    hash and the last four characters of the ID number, both officers, the machine reading and the
    officer's call per panel. It travels like any event, exactly once, at hit priority."""

    seq: Seq
    checkpoint_officer: Text128
    """The signed-in officer who saved it (one of ``result.officers``' two people)."""
    recorded_at: float
    result: KitResult
    person_hits: list[Text128] = []
    """Person-watchlist entry ids the edge matched the subject's hash against offline."""


Event = PlateRead | Passage | EdgeHit | Gap | AlertOutcome | AuditEvent | KitResultEvent


def event_kind(event: Event) -> str:
    """An event's kind, as stored and counted: its tag on the wire ("read", "passage", "hit"...)."""
    return type(event).__struct_config__.tag  # type: ignore[return-value]


class EventBatch(msgspec.Struct, **_WIRE):
    """Events from one edge epoch, in one MQTT message on ``cordon/v1/cp/{checkpoint}/events``."""

    v: int
    checkpoint: Text128
    epoch: Annotated[int, msgspec.Meta(ge=1)]
    sent_at: float
    """The edge's clock when it sent the batch; the hub compares it with its own."""
    events: Annotated[list[Event], msgspec.Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]


class Ack(msgspec.Struct, **_WIRE):
    """The hub has committed these sequence numbers of this epoch (inclusive ranges)."""

    v: int
    epoch: Annotated[int, msgspec.Meta(ge=1)]
    ranges: Annotated[list[tuple[Seq, Seq]], msgspec.Meta(min_length=1, max_length=10_000)]


class CheckpointStatus(msgspec.Struct, **_WIRE):
    """An edge's retained status: its birth message, its last will, and periodic updates."""

    v: int
    checkpoint: Text128
    online: bool
    sent_at: float
    epoch: int | None = None
    outbox_depth: int | None = None
    oldest_unacked_s: float | None = None
    feed_version: int | None = None
    software: Text128 | None = None
    dropped_reads: int | None = None
    """Plain reads dropped from the outbox since it was created (disk quota)."""
    stale_cameras: list[Text128] | None = None
    """Configured cameras silent longer than their ``stale_after_s`` (the console colours the checkpoint)."""


class HubStatus(msgspec.Struct, **_WIRE):
    """The hub's retained status; edges replay their outbox when it turns online."""

    v: int
    online: bool
    sent_at: float
    schema_versions: list[int] = []


class HubParameters(msgspec.Struct, **_WIRE):
    """Rules the hub wants every edge to apply as it does, retained on ``cordon/v1/hub/parameters``.

    A message of its own, not fields of ``HubStatus``: an edge of release r1 refuses a status with a field
    it does not know, and does not subscribe here, so the hub can announce what it likes (docs/protocol.md).
    """

    v: int
    sent_at: float
    fold_window_s: Annotated[float, msgspec.Meta(ge=0)]
    """The hub's ``alerts.fold_window_s``: edges fold repeated hits for their tablets with the same window
    (protocols/folding.py) and keep it for when the uplink is down."""


class AlertHit(msgspec.Struct, **_WIRE):
    """What an alert matched and why."""

    entry_id: Text128
    entry_plate: Text32
    list_id: Text128
    list_name: Text128
    action: Literal["intercept", "covert", "notify"]
    priority: Annotated[int, msgspec.Meta(ge=0, le=100)]
    kind: Text32
    score: float
    explanation: Text500
    reason: Text500 = ""
    feed_version: int = 0
    matcher_version: Text32 = ""


class AlertRoute(msgspec.Struct, **_WIRE):
    """One checkpoint an alert was routed to, and why (central/ingest/routing.py)."""

    checkpoint: Text128
    why: Literal["read", "approach", "downstream"]
    """``read``: it read the vehicle; ``approach``: early warning from a camera ahead of it;
    ``downstream``: the vehicle is heading its way."""


class Alert(msgspec.Struct, **_WIRE):
    """A hit made for people: sent to the console and to the checkpoint's tablets."""

    v: int
    alert_id: Text128
    """Derived from the event and the entry that caused it, so dispatch is idempotent."""
    checkpoint: Text128
    epoch: Annotated[int, msgspec.Meta(ge=1)]
    seq: Seq
    raised_at: float
    captured_at: float
    camera_id: Text128
    plate_read: Text32
    hit: AlertHit
    lane: Lane | None = None
    colour: Text32 | None = None
    vehicle_type: Text32 | None = None
    thumbnail: Thumbnail | None = None
    """Base64 of a small JPEG of the read's picture (from the edge's hit), shown beside the alert."""
    direction: Direction | None = None
    routed_to: list[AlertRoute] = []
    """The checkpoints the hub sent it to (empty: only its own, or none when it is covert/restricted)."""
    folded: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Later hits of the same entry on the same list folded into this open alert (alerts.fold_window_s)."""
    last_seen_at: float | None = None
    last_seen_checkpoint: Text128 | None = None


class OfficerAccount(msgspec.Struct, **_WIRE):
    """One officer who may sign in to this checkpoint's tablets, also with the uplink down."""

    username: Text128
    display_name: Text128
    password_hash: Annotated[str, msgspec.Meta(max_length=512)]
    """argon2id, as the hub keeps it; never a password."""
    disabled: bool
    generation: int
    """Bumped by the hub when the account is disabled or gets a new password: older sessions end."""


class OfficerAccounts(msgspec.Struct, **_WIRE):
    """Retained on ``cordon/v1/cp/{checkpoint}/accounts``: every officer account of that checkpoint.
    The whole set each time, so a disabled account reaches the edge with the next message."""

    v: int
    checkpoint: Text128
    sent_at: float
    accounts: Annotated[list[OfficerAccount], msgspec.Meta(max_length=2000)]


class AlertReceipt(msgspec.Struct, **_WIRE):
    """Edge -> hub on ``cordon/v1/cp/{checkpoint}/receipt``: the alarm of ``alert_id`` was shown on a
    tablet at this checkpoint (``shown_at``: the first time a tablet put it on screen) and, once an officer
    recorded an outcome there, when (``acknowledged_at``). Sent again whenever it changes, and after an
    outage until the broker took it; the hub keeps the earliest showing and the latest acknowledgement
    and pushes each receipt to the consoles (docs/protocol.md). An optional message: a hub that does not
    know it never subscribes to its topic."""

    v: int
    checkpoint: Text128
    alert_id: Text128
    sent_at: float
    shown_at: float | None = None
    shown_by: Text128 = ""
    """The signed-in officer whose tablet showed it."""
    acknowledged_at: float | None = None
    outcome: Outcome | None = None
    officer: Text128 = ""
    """The officer who recorded the outcome."""


EvidenceKind = Literal["scene", "plate"]


class EvidenceRequest(msgspec.Struct, **_WIRE):
    """Hub -> edge on ``cordon/v1/cp/{checkpoint}/evidence/request``: send the full pictures of one read.
    The hub never connects to an edge (mobile NAT); it asks over the broker and the edge answers."""

    v: int
    request_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
    epoch: Annotated[int, msgspec.Meta(ge=1)]
    seq: Seq
    kinds: Annotated[list[EvidenceKind], msgspec.Meta(min_length=1, max_length=2)]


class EvidenceReply(msgspec.Struct, **_WIRE):
    """Edge -> hub on ``cordon/v1/cp/{checkpoint}/evidence/reply``: one picture per message, or an error
    (never silence). ``reencoded`` is true when the edge made the JPEG smaller to fit the payload limit."""

    v: int
    request_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
    checkpoint: Text128
    epoch: Annotated[int, msgspec.Meta(ge=1)]
    seq: Seq
    kind: EvidenceKind
    content_type: Annotated[str, msgspec.Meta(max_length=64)] = "image/jpeg"
    data: Annotated[str, msgspec.Meta(max_length=MAX_PAYLOAD_BYTES - 4096)] | None = None
    """The image, base64."""
    error: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    reencoded: bool = False


def derive_alert_id(checkpoint: str, epoch: int, read_seq: int, entry_id: str) -> str:
    """An alert's identity: from the read and the entry that caused it, so the edge's local alert and
    the hub's alert for the same hit are one alert, and every resend names it the same way."""
    key = f"{checkpoint}\x1f{epoch}\x1f{read_seq}\x1f{entry_id}".encode()
    return "A" + hashlib.blake2b(key, digest_size=12).hexdigest()


def seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted inclusive ranges of the given sequence numbers (how acks and gaps name events)."""
    out: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


class DecodeError(CordonError, ValueError):
    """A payload that is not a valid message; ``reason`` says what was wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_encoder = msgspec.json.Encoder()
_decoders: dict[type, msgspec.json.Decoder] = {}
_version_probe = msgspec.json.Decoder(type=dict)


def encode(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


def decode(kind: type[T], payload: bytes) -> T:
    """Decode and validate one message; raise DecodeError with a readable reason."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError(f"oversized payload: {len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(type=kind)
    try:
        message = decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise DecodeError(_explain(kind, payload, exc)) from None
    version = getattr(message, "v", None)
    if version is not None and version not in SUPPORTED_VERSIONS:
        raise DecodeError(_unsupported(kind, str(version)))
    return message


def _unsupported(kind: type, version: str) -> str:
    return (
        f"unsupported schema version {version[:20]} of {kind.__name__}: this side reads major version "
        f"{', '.join(map(str, sorted(SUPPORTED_VERSIONS)))} (a new major version is a change it cannot ignore)"
    )


def _explain(kind: type, payload: bytes, exc: msgspec.DecodeError) -> str:
    # A version mismatch is the most useful thing to report, even when it also broke the schema.
    if "v" in getattr(kind, "__struct_fields__", ()):
        try:
            probe = _version_probe.decode(payload)
        except (msgspec.DecodeError, RecursionError):
            probe = None
        version = probe.get("v") if isinstance(probe, dict) else None
        # Only a whole number is a version; anything else in "v" is an ordinary schema error below.
        if isinstance(version, int) and not isinstance(version, bool) and version not in SUPPORTED_VERSIONS:
            return _unsupported(kind, str(version))
    text = str(exc)
    if text.startswith("JSON is malformed") or text.startswith("Input data was truncated"):
        return f"not valid JSON: {text}"
    return f"invalid {kind.__name__}: {text}"


#: Every message type on the wire, by the name used in the AsyncAPI document.
WIRE_MESSAGES: dict[str, type[msgspec.Struct]] = {
    "EventBatch": EventBatch,
    "Ack": Ack,
    "CheckpointStatus": CheckpointStatus,
    "HubStatus": HubStatus,
    "HubParameters": HubParameters,
    "Alert": Alert,
    "FeedDelta": FeedDelta,
    "FeedVersion": FeedVersion,
    "OfficerAccounts": OfficerAccounts,
    "EvidenceRequest": EvidenceRequest,
    "EvidenceReply": EvidenceReply,
    "AlertReceipt": AlertReceipt,
}
