"""The clone check's index: plate -> its two latest eligible sightings, packed (see CloneIndex).

The rule that reads it is central/intel/clones.py; this module only keeps sightings: how they are packed,
numbered, merged in time order and forgotten.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import msgspec

Description = tuple[str | None, str | None, str | None, str | None]
"""What the cameras say the vehicle is: plate colour, vehicle type, body colour, make (the last two
in one spelling each)."""


class Seen(msgspec.Struct, gc=False):
    """A sighting (the fields of :class:`protocols.clones.Sighting`, the description in one), as the rule's slower
    paths and the warm-up see it; the index keeps it packed (see :class:`CloneIndex`). Not tracked by
    the garbage collector: it holds only strings, numbers and a tuple of strings."""

    cp: str
    epoch: int
    seq: int
    at: float
    plate: str
    camera: str
    desc: Description
    reads: int = 1
    """How many concordant eligible reads (same checkpoint, same attributes, within the same-time
    window) back the sighting: two cameras agreeing on a passage."""


class Held(msgspec.Struct, gc=False):
    """A plate's two latest sightings by capture time (``before`` None until it has two), while
    warming up from the record and on the rule's slower paths."""

    last: Seen
    before: Seen | None = None

    def both(self) -> tuple[Seen, ...]:
        return (self.last,) if self.before is None else (self.before, self.last)


ONE: Final = struct.Struct("<dqqIIII")
"""A packed sighting: capture time, seq, epoch, then the ids of its checkpoint, description and
camera (see CloneIndex.id), and how many reads back it."""
TWO: Final = struct.Struct("<dqqIIIIdqqIIII")
"""A plate's two sightings, the latest first."""
SEQ_MAX: Final = 2**63 - 1
IDS_MAX: Final = 1_000_000
"""Distinct descriptions and camera ids (with the checkpoints) numbered at most (see CloneIndex.number)."""
UNKNOWN: Final[Description] = (None, None, None, None)
REFRESH_S: Final = 6 * 3600.0
"""A plate seen again after this long moves to the recently-seen end of the index (see batch). Six
hours, not one: vehicles pass checkpoints an hour or so apart, and on the simulated 1M-passage day
an hour moved a plate on two reads in three, six hours on one in five (the move is a dict delete and
insert, a tenth of the check's time at an hour)."""


class CloneIndex:
    """Plate -> its two latest eligible sightings (by capture time); bounded, least recently seen
    plates forgotten first (a plain dict kept in use order to within ``REFRESH_S``: a plate moves to
    the end when seen again after that long, not on every read, which would cost ingest more than
    the rest of the check).

    Each plate's sightings are one ``bytes`` value (:data:`ONE` or :data:`TWO`), and checkpoints,
    descriptions and camera ids are small numbers in it. The check runs on every read inside the
    writer, and what it costs ingest is mostly memory traffic: sightings as objects (a tuple per
    sighting, its time and seq objects of their own) were new objects for the garbage collector to
    visit, kept the reads' objects alive, scattered among ingest's own, and freeing each plate's
    older sighting touched three of them again. A packed value is one object, replaced whole, and
    holds no other object (docs/architecture.md has the figures)."""

    def __init__(self, max_plates: int = 2_000_000) -> None:
        self.max_plates = max_plates
        self._plates: dict[str, bytes] = {}
        self._ids: dict[Any, int] = {}
        """Checkpoint, description or camera id -> its number in packed sightings (a ring's
        checkpoints, cameras and their vocabularies are small, so this stays small)."""
        self._values: list[Any] = []

    def __len__(self) -> int:
        return len(self._plates)

    def id(self, value: Any) -> int:
        """The number standing for ``value`` in packed sightings (writer thread only)."""
        number = self._ids.get(value)
        if number is None:
            number = self._ids[value] = len(self._values)
            self._values.append(value)
        return number

    def number(self, value: Any, fallback: Any) -> int:
        """Like :meth:`id` for a description or camera id; past ``IDS_MAX`` distinct values (a camera
        sending makes or ids no ring has), a new one gets ``fallback``'s number: an unknown
        description or camera, rather than a table growing without bound."""
        number = self._ids.get(value)
        if number is None:
            number = self.id(fallback if len(self._values) >= IDS_MAX else value)
        return number

    def unpack(self, plate: str, packed: bytes) -> tuple[Seen, ...]:
        """A packed value's sightings, oldest first."""
        values = self._values
        out = []
        for offset in (ONE.size, 0) if len(packed) > ONE.size else (0,):
            at, seq, epoch, cp, desc, camera, reads = ONE.unpack_from(packed, offset)
            out.append(Seen(values[cp], epoch, seq, at, plate, values[camera], values[desc], reads))
        return tuple(out)

    def pack(self, sightings: tuple[Seen, ...]) -> bytes:
        """The packed value of one or two sightings (oldest first)."""
        fields = []
        for s in reversed(sightings):
            fields += (
                s.at,
                s.seq,
                s.epoch,
                self.id(s.cp),
                self.number(s.desc, UNKNOWN),
                self.number(s.camera, ""),
                s.reads,
            )
        return (TWO if len(sightings) == 2 else ONE).pack(*fields)

    def held(self, plate: str, packed: bytes) -> Held:
        """A packed value's sightings as a :class:`Held`."""
        sightings = self.unpack(plate, packed)
        return Held(sightings[-1], sightings[0] if len(sightings) > 1 else None)

    def get(self, plate: str) -> tuple[Seen, ...]:
        packed = self._plates.get(plate)
        return () if packed is None else self.unpack(plate, packed)

    def put(self, plate: str, sightings: tuple[Seen, ...]) -> None:
        self._plates[plate] = self.pack(sightings)

    def evict(self) -> None:
        plates_ = self._plates
        while len(plates_) > self.max_plates:
            del plates_[next(iter(plates_))]


def same(a: Seen, b: Seen) -> bool:
    return a.seq == b.seq and a.cp == b.cp and a.epoch == b.epoch


def merge(held: Held, new: Seen) -> None:
    """Keep the two latest sightings of ``held`` and ``new`` by capture time (``new`` replaces itself)."""
    last, before = held.last, held.before
    if new.at >= last.at and not same(last, new) and not (before is not None and same(before, new)):
        held.before, held.last = last, new  # the usual case: reads arrive in time order
        return
    kept = [s for s in held.both() if not same(s, new)]
    kept.append(new)
    kept.sort(key=lambda s: s.at)
    held.last = kept[-1]
    held.before = kept[-2] if len(kept) > 1 else None
