"""Cloned plates made on purpose and counted back from the store, for the measures with several hubs (issue 23):
the fault case of a hub killed under load (tests/test_faults_cluster.py) and ``cordon bench cluster``.

:class:`ClonePairs` is two simulated edges at two checkpoints of the shipped ring hours apart by road
(郯城 and 临清): a pair is one plate read at the first and then, seconds to minutes later, at the
second, so the clone check finds it (a trip too fast, or the same time at two places). Each read is a
batch of its own, published at QoS 1 as an edge's uplink does, so a shared subscription gives the two
reads of a pair to either hub, often different ones; a read the hub has not acknowledged is sent again
after ``ack_timeout_s`` (an edge also sends again on its hub's will: the timeout alone is enough here),
so a read a killed hub held reaches the other. The plates are ``晋`` plates, a province no other load
of the tests or benchmarks uses and never on a watchlist, and no two of them one look-alike character
apart (the check would put such a pair down to a misread).

:func:`count_findings` reads the clone alerts back from the store: how many of the pairs were found,
found twice, and which findings the record does not back (see there).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Collection
from typing import Any

import psycopg

from central.intel.clones import load_geography, rule_from
from central.settings import CloneSettings
from protocols import clones, topics
from protocols.messages import SCHEMA_VERSION, Ack, DecodeError, EventBatch, PlateRead, decode, encode

#: Far apart on the ring (about 450 km by road: three hours at the rule's 150 km/h).
FIRST, SECOND = "SD-LY-001", "SD-LC-001"
PROVINCE = "晋"
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_SERIAL = _LETTERS + "0123456789"
#: A confident, exact read: one that takes part in the check (its ``min_confidence`` is 90).
CONFIDENCE = 97.0
CAMERA = "clone-cam"
#: The clone alerts' entry ids: ``rule:clone:<earlier read's checkpoint/epoch/seq>``.
ENTRY_PREFIX = f"{clones.RULE_ID}:"


def clone_plates(n: int, seed: int = 23) -> list[str]:
    """``n`` distinct plates of :data:`PROVINCE`, no two a look-alike character apart."""
    rng = random.Random(seed)
    chosen: list[str] = []
    taken: set[str] = set()
    while len(chosen) < n:
        plate = PROVINCE + rng.choice(_LETTERS) + "".join(rng.choice(_SERIAL) for _ in range(5))
        if plate in taken or any(other in taken for other in clones.look_alikes(plate)):
            continue
        taken.add(plate)
        chosen.append(plate)
    return chosen


class ClonePairs:
    """Two simulated edges (:data:`FIRST`, :data:`SECOND`) on one MQTT connection, sending the reads of
    clone pairs and keeping each until a hub acknowledges it (see the module doc). ``first`` and
    ``second`` may be called from any thread; the paho thread takes the acks."""

    def __init__(self, port: int, *, ack_timeout_s: float = 5.0, host: str = "127.0.0.1") -> None:
        self.port, self.host, self.ack_timeout_s = port, host, ack_timeout_s
        base = int(time.time() * 1000)
        self.epochs = {FIRST: base, SECOND: base + 1}
        self._seqs = {FIRST: 0, SECOND: 0}
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int], tuple[bytes, float]] = {}
        """(checkpoint, seq) -> (payload, when last sent, monotonic), until acknowledged."""
        self.sent: dict[str, set[str]] = {FIRST: set(), SECOND: set()}
        """The plates read at each checkpoint so far."""
        self.resent = 0
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._client: Any = None
        self._resender: threading.Thread | None = None

    def start(self, within_s: float = 30.0) -> ClonePairs:
        """Connect and subscribe to both checkpoints' acks (before anything is sent, so none is missed)."""
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"cordon-clone-pairs-{self.epochs[FIRST]}",
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        client.on_connect = lambda c, *_: c.subscribe([(topics.ack(FIRST), 1), (topics.ack(SECOND), 1)])
        client.on_subscribe = lambda *_: self._subscribed.set()
        client.on_message = self._on_ack
        client.connect(self.host, self.port, 30)
        client.loop_start()
        self._client = client
        if not self._subscribed.wait(within_s):
            self.stop()
            raise TimeoutError(f"clone pairs: no SUBACK from the broker on port {self.port}")
        self._resender = threading.Thread(target=self._resend, name="clone-pairs-resend", daemon=True)
        self._resender.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._resender is not None:
            self._resender.join(5)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    def first(self, plates: Collection[str]) -> None:
        """Read ``plates`` at :data:`FIRST` now, one batch each."""
        self._send(FIRST, plates)

    def second(self, plates: Collection[str]) -> None:
        """Read ``plates`` at :data:`SECOND` now, one batch each."""
        self._send(SECOND, plates)

    def injected(self) -> set[str]:
        """The plates of every pair both of whose reads were sent."""
        return self.sent[FIRST] & self.sent[SECOND]

    def unacknowledged(self) -> int:
        with self._lock:
            return len(self._pending)

    def _send(self, checkpoint: str, plates: Collection[str]) -> None:
        for plate in plates:
            with self._lock:
                seq = self._seqs[checkpoint] = self._seqs[checkpoint] + 1
                now = time.time()
                read = PlateRead(
                    seq=seq,
                    camera_id=CAMERA,
                    captured_at=now,
                    plate=plate,
                    plate_raw=plate,
                    plate_valid=True,
                    confidence=CONFIDENCE,
                )
                payload = encode(
                    EventBatch(
                        v=SCHEMA_VERSION,
                        checkpoint=checkpoint,
                        epoch=self.epochs[checkpoint],
                        sent_at=now,
                        events=[read],
                    )
                )
                self._pending[(checkpoint, seq)] = (payload, time.monotonic())
                self.sent[checkpoint].add(plate)
            self._client.publish(topics.events(checkpoint), payload, qos=1)  # never with our lock held

    def _on_ack(self, _client: Any, _userdata: Any, message: Any) -> None:
        checkpoint = FIRST if message.topic == topics.ack(FIRST) else SECOND
        try:
            ack = decode(Ack, bytes(message.payload))
        except DecodeError:
            return
        if ack.epoch != self.epochs[checkpoint]:
            return
        with self._lock:
            for key in [k for k in self._pending if k[0] == checkpoint]:
                if any(lo <= key[1] <= hi for lo, hi in ack.ranges):
                    del self._pending[key]

    def _resend(self) -> None:
        while not self._stop.wait(0.25):
            now = time.monotonic()
            with self._lock:
                due = [(k, p) for k, (p, at) in self._pending.items() if now - at > self.ack_timeout_s]
                for key, payload in due:
                    self._pending[key] = (payload, now)
            for (checkpoint, _), payload in due:
                self._client.publish(topics.events(checkpoint), payload, qos=1)
                self.resent += 1


def count_findings(dsn: str, injected: Collection[str]) -> dict[str, Any]:
    """The clone alerts in the store (``dsn``: its database), counted against the ``injected`` pairs.

    ``expected``: the pairs; ``found``: the pairs with a finding; ``twice``: pairs with more than one
    (a finding's id derives from its two reads, so a pair found by both hubs, or again after a resend,
    is one alert: more is a fault); ``false``: findings the record does not back, on any plate: one of
    their two reads (the alert's own and the earlier one its entry id names) is not stored, or the two
    are not one plate where, by the rule on the shipped ring, one vehicle could not have been (the
    reads compared by checkpoint, time and plate colour and type: these loads give no body colour or
    make); ``elsewhere``: backed findings on plates not injected (a load whose simulated edges happen
    to read one plate at two places within a minute makes those: a clone by the rule)."""
    wanted = set(injected)
    with psycopg.connect(dsn, autocommit=True) as conn:
        alerts = conn.execute(
            "SELECT alert_id, checkpoint, epoch, seq, entry_id, convert_from(body, 'UTF8')::json->>'plate_read' "
            "FROM alerts WHERE entry_id LIKE %s",
            (ENTRY_PREFIX + "%",),
        ).fetchall()
        keys: set[tuple[str, int, int]] = set()
        for _, cp, epoch, seq, entry, _ in alerts:
            keys.add((cp, int(epoch), int(seq)))
            earlier = _earlier(entry)
            if earlier is not None:
                keys.add(earlier)
        reads = {
            (cp, int(epoch), int(seq)): clones.Sighting(
                cp, int(epoch), int(seq), captured_at, plate, "", _text(colour), _text(vehicle_type)
            )
            for cp, epoch, seq, captured_at, plate, colour, vehicle_type in conn.execute(
                "SELECT r.checkpoint, r.epoch, r.seq, r.captured_at, r.plate, r.colour, r.vehicle_type "
                "FROM reads r JOIN unnest(%s::text[], %s::int8[], %s::int8[]) AS k(checkpoint, epoch, seq) "
                "ON (r.checkpoint, r.epoch, r.seq) = (k.checkpoint, k.epoch, k.seq)",
                ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
            ).fetchall()
        }
    settings = CloneSettings()
    geography, rule = load_geography(settings), rule_from(settings)
    per_plate: dict[str, int] = {}
    false: list[str] = []
    elsewhere = 0
    for alert_id, cp, epoch, seq, entry, plate in alerts:
        earlier_key = _earlier(entry)
        later = reads.get((cp, int(epoch), int(seq)))
        earlier = reads.get(earlier_key) if earlier_key is not None else None
        backed = (
            later is not None
            and earlier is not None
            and later.plate == earlier.plate == plate
            and clones.check(earlier, later, geography, rule) is not None
        )
        if not backed:
            false.append(alert_id)
        elif plate in wanted:
            per_plate[plate] = per_plate.get(plate, 0) + 1
        else:
            elsewhere += 1
    return {
        "expected": len(wanted),
        "found": len(per_plate),
        "twice": sum(1 for n in per_plate.values() if n > 1),
        "false": len(false),
        "elsewhere": elsewhere,
        "missing_examples": sorted(wanted - set(per_plate))[:5],
        "false_examples": false[:5],
    }


def _earlier(entry_id: str) -> tuple[str, int, int] | None:
    """The earlier read a clone alert's entry id names (``rule:clone:<checkpoint>/<epoch>/<seq>``)."""
    parts = entry_id.removeprefix(ENTRY_PREFIX).rsplit("/", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])


def _text(value: bytes | None) -> str | None:
    return None if value is None else bytes(value).decode("utf-8", "replace")
