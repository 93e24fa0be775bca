"""The hub's clone check (central/intel/clones.py) against the rule it inlines, on random reads.

``CloneCheck.batch`` decides the common cases by hand on packed sightings (a plate not seen yet, the
same passage seen by another camera, a later passage at the same place, a trip slower than the
fastest) and sends only what may be a clone to :func:`protocols.clones.check`. The reference below
is the same procedure written plainly: each plate's two latest sightings as objects, and every pair
decided by ``protocols.clones.check``, with the hub's two rules around it (a sighting backed by one
read cannot make an attribute conflict; the same passage read again backs its sighting). Both must
raise the same findings, count the same uncorroborated conflicts and keep the same sightings, on
reads arriving in any order, resent, from places near, far and unknown, with attributes spelt
differently. As tests/test_plateindex.py does for the matcher against protocols/reference.py.

Plates are drawn from characters no plate camera confuses (no ``LOOK_ALIKE`` group), so the misread
explanations, which need a look-alike plate on the road, stay out of it: tests/test_clones.py tests
those by example.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.intel.clones import CloneCheck
from central.settings import CloneSettings
from protocols import clones
from protocols.clones import Checkpoint, CloneFinding, CloneRule, Geography, Sighting
from protocols.messages import PlateRead

T0 = 1_750_000_000.0
# Near (A and C, 56 m: a trip shorter than the same-time window), far (A and B, about 33 km), a road
# distance given explicitly (B and C), and X, which the geography does not know.
GEOGRAPHY = Geography(
    checkpoints={
        "SD-A": Checkpoint("SD-A", "甲", 36.0, 117.0),
        "SD-B": Checkpoint("SD-B", "乙", 36.3, 117.0),
        "SD-C": Checkpoint("SD-C", "丙", 36.0005, 117.0),
    },
    road_factor=1.3,
    distances={("SD-B", "SD-C"): 20.0},
)
CHECKPOINTS = ["SD-A", "SD-B", "SD-C", "SD-X"]
# No character of these is in a look-alike group after the authority letter (checked below).
PLATES = ["鲁C3KXY9", "冀FWXY33", "鲁H9CEFJ"]


def describe(read: PlateRead) -> tuple[str | None, str | None, str | None, str | None]:
    """What the cameras say the vehicle is, one spelling each (as the hub compares sightings)."""
    return (
        read.colour,
        read.vehicle_type,
        clones.body_colour(read.vehicle_colour),
        clones.vehicle_make(read.vehicle_brand),
    )


@dataclass
class Sight:
    """One of a plate's sightings in the reference: the rule's Sighting and how many reads back it."""

    sighting: Sighting
    reads: int = 1

    @property
    def desc(self) -> tuple[str | None, ...]:
        s = self.sighting
        return (s.colour, s.vehicle_type, s.vehicle_colour, s.vehicle_brand)


class ReferenceCloneCheck:
    """The clone check without its fast path: plain objects, every pair decided by protocols.clones."""

    def __init__(self, geography: Geography, rule: CloneRule) -> None:
        self.geography, self.rule = geography, rule
        self.plates: dict[str, list[Sight]] = {}
        """Plate -> its two latest sightings by capture time, oldest first."""
        self.uncorroborated = 0

    def _fits(self, prev: Sight, new: Sight) -> bool:
        """The same place, or two places far enough apart in time for one vehicle."""
        a, b = prev.sighting, new.sighting
        if a.checkpoint == b.checkpoint:
            return True
        gap = abs(b.captured_at - a.captured_at)
        km = self.geography.distance_km(a.checkpoint, b.checkpoint)
        trip = 0.0 if km is None else clones.min_trip_s(km, self.rule)
        return gap > self.rule.same_time_window_s and gap >= trip

    def _finding(self, prev: Sight, new: Sight, batch: list[PlateRead]) -> CloneFinding | None:
        finding = clones.check(prev.sighting, new.sighting, self.geography, self.rule)
        if finding is None or finding.kind != "attribute_conflict":
            return finding
        # The batch's eligible reads agreeing with the new sighting back it, within the window.
        at, window = new.sighting.captured_at, self.rule.same_time_window_s
        backing = sum(
            1
            for r in batch
            if r.plate == new.sighting.plate
            and abs(r.captured_at - at) <= window
            and describe(r) == new.desc
            and clones.eligible(r, self.rule)
        )
        if prev.reads < 2 or backing < 2:
            self.uncorroborated += 1
            return None
        return finding

    def batch(self, checkpoint: str, epoch: int, reads: list[PlateRead]) -> list[CloneFinding]:
        findings = []
        for read in reads:
            if not clones.eligible(read, self.rule):
                continue
            body, make = describe(read)[2:]
            new = Sight(
                clones.sighting(checkpoint, epoch, read)._replace(vehicle_colour=body, vehicle_brand=make)
            )
            held = self.plates.get(read.plate)
            if not held:
                self.plates[read.plate] = [new]
                continue
            last = held[-1]
            gap = new.sighting.captured_at - last.sighting.captured_at
            if gap > 0 or (gap == 0 and last.sighting.identity != new.sighting.identity):
                # In time order: the latest sighting decides, and the one before only for time and place.
                if (
                    last.sighting.checkpoint == checkpoint
                    and last.desc == new.desc
                    and gap <= self.rule.same_time_window_s
                ):
                    if last.sighting.identity != new.sighting.identity:
                        last.reads += 1  # another read of the same passage backs its sighting
                    continue
                finding = self._finding(last, new, reads)
                if (
                    finding is None
                    and len(held) == 2
                    and not (last.desc == new.desc and self._fits(last, new))
                    and not self._fits(held[0], new)
                ):
                    finding = self._finding(held[0], new, reads)
                if finding is not None:
                    findings.append(finding)
                self.plates[read.plate] = [last, new]
                continue
            # Earlier than the latest sighting, or that very read again: each other sighting, latest first.
            for prev in reversed(held):
                if prev.sighting.identity == new.sighting.identity:
                    continue
                if prev.desc == new.desc and self._fits(prev, new):
                    continue
                finding = self._finding(prev, new, reads)
                if finding is not None:
                    findings.append(finding)
                    break
            kept = [s for s in held if s.sighting.identity != new.sighting.identity] + [new]
            kept.sort(key=lambda s: s.sighting.captured_at)
            self.plates[read.plate] = kept[-2:]
        return findings


TRIP_AB = clones.min_trip_s(GEOGRAPHY.distance_km("SD-A", "SD-B") or 0.0, CloneRule())
# When vehicles start, and how long until their next passage: around where the rule's comparisons
# turn (the same-time window of 60 s, the fastest trip from A to B) and far from it.
MOMENTS = [0.0, 0.0, 30.0, 600.0]
STEPS = [
    0.0,
    1.0,
    30.0,
    59.5,
    60.0,
    60.5,
    61.0,
    300.0,
    0.9 * TRIP_AB,
    TRIP_AB - 1.0,
    TRIP_AB,
    TRIP_AB + 1.0,
    3000.0,
]
# A few vehicles as cameras describe them: (plate colour, type, body colour, make). The second is the
# first spelt as another camera spells it; the last says nothing about the vehicle.
VEHICLES = [
    ("blue", "car", "white", "VW"),
    ("蓝", "Car ", "白色", "vw"),
    ("yellow", "truck", "black", "1234"),
    ("blue", "car", "mauve", "Audi"),
    (None, None, None, None),
]


@st.composite
def traffic(draw) -> list[tuple[str, int, list[PlateRead]]]:
    """Vehicles passing checkpoints, read by one or two cameras each time, delivered as the hub stores
    them: batches of one checkpoint and epoch, mostly in time order, now and then out of it or sent
    again (a batch whose commit failed). Several vehicles may carry one plate: a clone, or a misread
    description of the same vehicle."""
    reads: dict[tuple[str, int], list[PlateRead]] = {}
    for _ in range(draw(st.integers(1, 5))):
        plate = draw(st.sampled_from(PLATES))
        colour, vehicle_type, body, make = draw(st.sampled_from(VEHICLES))
        moment = draw(st.sampled_from(MOMENTS))
        for _ in range(draw(st.integers(1, 4))):
            moment += draw(st.sampled_from(STEPS))
            checkpoint, epoch = draw(st.sampled_from(CHECKPOINTS)), draw(st.sampled_from([1, 1, 1, 2]))
            for camera in draw(st.sampled_from([["lane1"], ["lane1", "lane2"], ["lane2", "lane1"]])):
                mine = reads.setdefault((checkpoint, epoch), [])
                if draw(st.integers(0, 5)) == 0:  # one camera calls one attribute another way
                    colour, body = draw(
                        st.sampled_from([("yellow", body), (colour, "black"), (colour, None)])
                    )
                mine.append(
                    PlateRead(
                        seq=len(mine) + 1,
                        camera_id=camera,
                        captured_at=T0 + moment + draw(st.sampled_from([0.0, 0.0, 0.5, 1.0])),
                        plate=plate,
                        plate_raw=draw(st.sampled_from([plate] * 6 + [plate.lower(), plate[:-1] + "P"])),
                        plate_valid=draw(st.sampled_from([True] * 9 + [False])),
                        confidence=draw(st.sampled_from([95.0] * 6 + [None, 80.0, 90.0, 99.5])),
                        colour=colour,
                        vehicle_type=vehicle_type,
                        vehicle_colour=body,
                        vehicle_brand=make,
                    )
                )
    batches = []
    for (checkpoint, epoch), mine in reads.items():
        mine.sort(key=lambda r: r.captured_at)
        cuts = sorted(draw(st.sets(st.integers(1, max(1, len(mine) - 1)), max_size=3)))
        for lo, hi in zip([0, *cuts], [*cuts, len(mine)], strict=True):
            if lo < hi:
                batches.append((checkpoint, epoch, mine[lo:hi]))
    batches.sort(key=lambda b: b[2][0].captured_at)  # checkpoints' batches interleaved by time
    if len(batches) > 1 and draw(st.booleans()):  # one batch late
        late = batches.pop(draw(st.integers(0, len(batches) - 2)))
        batches.append(late)
    if draw(st.integers(0, 3)) == 0:  # one batch sent again
        batches.append(draw(st.sampled_from(batches)))
    return batches


def test_the_plates_have_no_look_alikes():
    assert all(clones.look_alikes(p) == [] for p in PLATES)
    assert all(clones.look_alikes(p[:-1] + "P") == [] for p in PLATES)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sent=traffic())
def test_the_fast_path_raises_what_the_rule_raises(sent):
    settings_ = CloneSettings()
    fast = CloneCheck(settings_, GEOGRAPHY)
    reference = ReferenceCloneCheck(GEOGRAPHY, fast.rule)
    for checkpoint, epoch, reads in sent:
        assert fast.batch(checkpoint, epoch, reads) == reference.batch(checkpoint, epoch, reads)
    assert fast.uncorroborated == reference.uncorroborated
    for plate in PLATES:
        kept = [(s.cp, s.epoch, s.seq, s.at, s.camera, s.desc, s.reads) for s in fast.index.get(plate)]
        want = [
            (*s.sighting.identity, s.sighting.captured_at, s.sighting.camera_id, s.desc, s.reads)
            for s in reference.plates.get(plate, [])
        ]
        assert kept == want, plate
    assert fast.explained_as_misreads == fast.misreads_ruled_out == 0


def test_the_reference_finds_what_the_examples_say():
    """The reference is worth comparing with: it raises a trip too fast and the same time at two places,
    and lets a slow trip and one read's attribute conflict go."""
    rule = CloneRule()
    ref = ReferenceCloneCheck(GEOGRAPHY, rule)
    read = PlateRead(
        seq=1,
        camera_id="lane1",
        captured_at=T0,
        plate=PLATES[0],
        plate_raw=PLATES[0],
        plate_valid=True,
        confidence=95.0,
        colour="blue",
    )
    assert ref.batch("SD-A", 1, [read]) == []
    (too_fast,) = ref.batch("SD-B", 1, [replace_read(read, seq=2, captured_at=T0 + 600)])
    assert too_fast.kind == "impossible_trip"
    (same_time,) = ref.batch("SD-X", 1, [replace_read(read, seq=3, captured_at=T0 + 630)])
    assert same_time.kind == "same_time"
    assert ref.batch("SD-A", 1, [replace_read(read, seq=4, captured_at=T0 + 5000)]) == []
    assert ref.batch("SD-A", 1, [replace_read(read, seq=5, captured_at=T0 + 6000, colour="yellow")]) == []
    assert ref.uncorroborated == 1


def replace_read(read: PlateRead, **changes: object) -> PlateRead:
    return msgspec.structs.replace(read, **changes)
