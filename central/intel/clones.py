"""The hub's clone check: each newly stored eligible read against the last sightings of its plate.

Reads, not passages: the hub gets every camera's reads from every checkpoint, and a read carries
what the check needs (its camera's confidence, whether the plate was taken exactly as read, colour
and vehicle type); passages are merged per checkpoint and lose the confidence. Two cameras at one
checkpoint reading one vehicle are the same place, so they never make a trip too fast.

The index lives in memory (plate -> its two latest sightings, packed in one value; least recently seen plates, to within
``REFRESH_S``, forgotten past ``max_plates``) and starts empty when the hub starts: for a while after a restart a clone is
found only once both vehicles have been seen again. It is touched only from the writer thread, at
the end of an ingest job (a job the writer runs again after attaching a day file stops before that).
Two sightings per plate, not one, so a read sent again after a failed commit (the index remembers
it, the record does not) is compared with the sighting before it rather than with itself, and the
alert it makes has the same id as the first time.
"""

from __future__ import annotations

import sys
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from central.intel.cloneindex import (
    ONE,
    REFRESH_S,
    SEQ_MAX,
    TWO,
    UNKNOWN,
    CloneIndex,
    Held,
    Seen,
    merge,
    same,
)
from central.intel.ring import read_ring, ring_path
from central.record.days import day_of
from central.settings import CloneSettings
from protocols import clones
from protocols.alerting import rule_alert
from protocols.clones import CloneFinding, CloneRule, Geography, GeographyError, Sighting
from protocols.messages import Alert, PlateRead, derive_alert_id

if TYPE_CHECKING:
    from central.record.reads import SightingSource, StoredRead

T = TypeVar("T")

NAME = "suspected cloned plate 疑似套牌"
#: With other hubs on the store, the reads of a batch's plates captured this long before it that they
#: committed are learnt before the check (``learn``): a day, as the index holds after a day of traffic.
LEARN_S = 86400.0
RULE = clones.RULE_ID


def learns_from_others(others: bool, company_at: float, now: float) -> bool:
    """Whether the check learns the reads other hubs committed (``CloneCheck.learn``): while another hub is
    alive on the store (``others``), and for ``LEARN_S`` after one was last seen (``company_at``, ``now``:
    monotonic). A hub that died leaves its committed reads in the store and in no one's index: a plate it
    read is found again elsewhere only by a hub that learns them, for as long as they are in its look-back."""
    return others or now - company_at < LEARN_S


def load_geography(settings: CloneSettings) -> Geography:
    """Checkpoints and distances from the configured files (the shipped ring by default)."""
    ring = read_ring(ring_path(settings.checkpoints_csv), "clones.checkpoints_csv")
    checkpoints = clones.checkpoints_of(ring)
    distances = {}
    if settings.distances_csv:
        distances = _parse_file("clones.distances_csv", Path(settings.distances_csv), clones.parse_distances)
    return Geography(checkpoints, road_factor=settings.road_factor, distances=distances)


def _parse_file(key: str, path: Path, parse: Callable[[str], T]) -> T:
    """A configured file parsed, or a GeographyError naming the key and the file (it stops start-up)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GeographyError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        return parse(text)
    except GeographyError as exc:
        raise GeographyError(f"{key}: {path}: {exc}") from None


def rule_from(settings: CloneSettings, utc_offset: str = "+08:00", time_zone: str | None = None) -> CloneRule:
    """The rule from the settings; explanations tell clock times in ``time_zone`` when given (the hub's
    ``time_zone``), else in ``utc_offset``."""
    sign = -1 if utc_offset.startswith("-") else 1
    hours, minutes = utc_offset[1:].split(":")
    return CloneRule(
        min_confidence=settings.min_confidence,
        max_speed_kmh=settings.max_speed_kmh,
        same_time_window_s=settings.same_time_window_s,
        utc_offset_h=sign * (int(hours) + int(minutes) / 60),
        tz=zoneinfo.ZoneInfo(time_zone) if time_zone else None,
    )


SUSPECTS_MAX: Final = 100_000
"""Plates whose possible misreads are remembered at once (the oldest forgotten first)."""


def recent_reads(record: SightingSource, since: float) -> Iterator[tuple[StoredRead, str | None, str | None]]:
    """The record's reads captured at or after ``since``, oldest first, each with its vehicle colour and
    make (for :meth:`CloneCheck.warm_from`)."""
    first = day_of(since, record.tz)
    for day in record.days():
        if day < first:
            continue
        for sighted in record.iter_sightings(day):
            if sighted[0].captured_at >= since:
                yield sighted


def _sighting(seen: Seen) -> Sighting:
    return Sighting(seen.cp, seen.epoch, seen.seq, seen.at, seen.plate, seen.camera, *seen.desc)


class CloneCheck:
    """Finds clones for ingest; see the module docstring for what state it keeps.

    Runs on every read inside the writer, so the common cases (an ineligible read, a plate not seen
    yet, the same place with the same attributes, a trip slower than the fastest) are decided here
    without building a finding; only what may be a clone goes to :func:`protocols.clones.check`."""

    def __init__(
        self,
        settings: CloneSettings,
        geography: Geography,
        utc_offset: str = "+08:00",
        time_zone: str | None = None,
    ) -> None:
        self.settings = settings
        self.geography = geography
        self.rule = rule_from(settings, utc_offset, time_zone)
        self.index = CloneIndex(settings.max_plates)
        self.findings = 0
        self.explained_as_misreads = 0
        self.uncorroborated = 0
        self.misreads_ruled_out = 0
        self._suspects: dict[str, tuple[tuple[Seen, ...], tuple[Seen, ...], float]] = {}
        """plate -> (the sightings that could be the misread behind its explained conflicts, those of
        its raised conflicts, the capture time of its last conflict): see _one_misread_explains."""
        self._min_confidence = self.rule.min_confidence
        self._window = self.rule.same_time_window_s
        self._trips_to: dict[str, dict[str, float]] = {}
        """checkpoint -> previous checkpoint -> the fastest trip from there in seconds (0.0 where the
        distance is unknown): see _trip_s."""
        self._warmed: dict[str, Held] | None = None
        self.warmed_plates = 0
        #: sightings learnt from other hubs' committed reads (:meth:`learn`)
        self.learnt = 0

    def warm_from(self, reads: Iterable[tuple[StoredRead, str | None, str | None]]) -> int:
        """Learn sightings from the record (reads oldest first) after a restart, raising nothing.

        Safe from any thread while ingest runs: the sightings go to a separate index that the
        writer adopts at the start of its next batch (:meth:`batch`), so ingest is never blocked
        and no plate is written from two threads. Returns how many plates were learnt."""
        min_conf = self._min_confidence
        warm: dict[str, Held] = {}
        window = self._window
        for read, vcolour, vbrand in reads:
            confidence = read.confidence
            if confidence is None or confidence < min_conf or not read.plate_valid or read.no_plate:
                continue
            plate = read.plate
            if not plate or (read.plate_raw != plate and not clones.eligible(read, self.rule)):
                continue
            new = Seen(
                sys.intern(read.checkpoint),
                read.epoch,
                read.seq,
                read.captured_at,
                plate,
                read.camera_id,
                (read.colour, read.vehicle_type, clones.body_colour(vcolour), clones.vehicle_make(vbrand)),
            )
            held = warm.get(plate)
            if held is None:
                warm[plate] = Held(new)
                continue
            last = held.last
            if last.cp == new.cp and 0 <= new.at - last.at <= window and last.desc == new.desc:
                last.reads += 1
            else:
                merge(held, new)
        self._warmed = warm
        return len(warm)

    def learn(self, reads: Iterable[tuple[StoredRead, str | None, str | None]]) -> int:
        """Learn sightings other hubs committed (reads oldest first, from the record), raising nothing,
        on the writer thread just before :meth:`batch`: with several hubs each ingests only its share of a
        plate's reads. A sighting the index holds already (this hub's own) is not learnt again. Returns
        how many were learnt."""
        if self._warmed is not None:
            self._adopt_warmed()
        learnt = 0
        for read, vcolour, vbrand in reads:
            new = self._eligible(read, vcolour, vbrand)
            if new is None:
                continue
            sightings = self.index.get(new.plate)
            if not sightings:
                self.index.put(new.plate, (new,))
                learnt += 1
                continue
            if any(same(s, new) for s in sightings):
                continue
            held = Held(sightings[-1], sightings[0] if len(sightings) > 1 else None)
            last = held.last
            if last.cp == new.cp and 0 <= new.at - last.at <= self._window and last.desc == new.desc:
                last.reads += 1  # another camera of a passage already held: one sighting, better backed
            else:
                merge(held, new)
            self.index.put(new.plate, held.both())
            learnt += 1
        self.learnt += learnt
        return learnt

    def _eligible(self, read: StoredRead, vcolour: str | None, vbrand: str | None) -> Seen | None:
        """A stored read as a sighting, or None when it does not take part (as in :meth:`warm_from`)."""
        confidence = read.confidence
        if confidence is None or confidence < self._min_confidence or not read.plate_valid or read.no_plate:
            return None
        plate = read.plate
        if not plate or (read.plate_raw != plate and not clones.eligible(read, self.rule)):
            return None
        return Seen(
            sys.intern(read.checkpoint),
            read.epoch,
            read.seq,
            read.captured_at,
            plate,
            read.camera_id,
            (read.colour, read.vehicle_type, clones.body_colour(vcolour), clones.vehicle_make(vbrand)),
        )

    def _adopt_warmed(self) -> None:
        """Merge the record's sightings into the live index (on the writer thread)."""
        warm, self._warmed = self._warmed, None
        if not warm:
            return
        index = self.index
        plates_ = index._plates
        live = dict(plates_)
        plates_.clear()
        for plate, held in warm.items():  # older sightings first: least recently seen end of the order
            if plate not in live:
                plates_[plate] = index.pack(held.both())
        for plate, packed in live.items():
            held = warm.get(plate)
            if held is not None:
                for seen in index.unpack(plate, packed):
                    merge(held, seen)
                packed = index.pack(held.both())
            plates_[plate] = packed
        self.warmed_plates = len(warm)
        if len(plates_) > index.max_plates:
            index.evict()

    def _trip_s(self, a: str, b: str) -> float:
        """The fastest trip from ``a`` to ``b`` in seconds; 0.0 where the distance is unknown, so that
        any gap fits (batch reads the same cache inline)."""
        to_b = self._trips_to.get(b)
        if to_b is None:
            to_b = self._trips_to[b] = {}
        trip = to_b.get(a)
        if trip is None:
            km = self.geography.distance_km(a, b)
            trip = to_b[a] = 0.0 if km is None else clones.min_trip_s(km, self.rule)
        return trip

    def batch(self, checkpoint: str, epoch: int, reads: list[PlateRead]) -> list[CloneFinding]:
        """Check one batch's stored reads against their plates' sightings, then remember them.

        Called once per batch at the end of the ingest job: a job the writer runs again (to attach a
        day file) stops before this, so a first attempt leaves nothing behind. The common cases
        (ineligible, plate not seen yet, same place and attributes, a trip slower than the fastest)
        are decided inline, as this runs for every read ingest stores."""
        if self._warmed is not None:
            self._adopt_warmed()
        if epoch > SEQ_MAX:
            return []  # not storable (the record keeps 64-bit numbers): never a sighting
        findings: list[CloneFinding] = []
        index = self.index._plates
        ids = self.index._ids
        min_conf, window = self._min_confidence, self._window
        checkpoint = sys.intern(checkpoint)  # one string per checkpoint, compared by identity first
        here = self.index.id(checkpoint)
        to_here = self._trips_to.get(checkpoint)
        if to_here is None:
            to_here = self._trips_to[checkpoint] = {}
        values = self.index._values
        one, two = ONE.pack, TWO.pack
        for read in reads:
            confidence = read.confidence
            if confidence is None or confidence < min_conf or not read.plate_valid or read.no_plate:
                continue
            plate = read.plate
            # A canonical plate normalizes to itself, so raw == plate needs no normalizing.
            if not plate or (read.plate_raw != plate and not clones.eligible(read, self.rule)):
                continue
            vcolour, vbrand = read.vehicle_colour, read.vehicle_brand
            if vcolour is None and vbrand is None:
                desc = (read.colour, read.vehicle_type, None, None)
            else:
                # One spelling per colour and make, so that 白色 and White are one sighting's colour.
                desc = (
                    read.colour,
                    read.vehicle_type,
                    clones.body_colour(vcolour),
                    clones.vehicle_make(vbrand),
                )
            described = ids.get(desc)
            if described is None:
                described = self.index.number(desc, UNKNOWN)
            camera = ids.get(read.camera_id)
            if camera is None:
                camera = self.index.number(read.camera_id, "")
            at, seq = read.captured_at, read.seq
            if seq > SEQ_MAX:
                continue  # not storable (the record keeps 64-bit numbers): never a sighting
            packed = index.get(plate)
            if packed is None:
                index[plate] = one(at, seq, epoch, here, described, camera, 1)
                continue
            last_at, last_seq, last_epoch, last_cp, last_desc, last_camera, last_reads = ONE.unpack_from(
                packed
            )
            gap = at - last_at
            if gap > REFRESH_S:
                # Seen again after a while: to the recently seen end of the dict's order. Not on every
                # read: a pop and insert per read costs ingest more than the rest of the check.
                del index[plate]
                index[plate] = packed
            # (A read sent again has its capture time: a later read is another read, or else the same
            # read with its time changed, which only the same-passage branch below must not count.)
            if gap > 0.0 or (
                gap == 0.0 and not (last_seq == seq and last_cp == here and last_epoch == epoch)
            ):
                # The usual case, reads in time order: the latest sighting is enough (trip times add
                # up, so if it fits the one before and the new one, one vehicle explains all three).
                fits = False
                if last_desc == described:
                    if last_cp == here:
                        if gap <= window:
                            # Another camera (or the same one again) on the same passage: one
                            # sighting, better backed.
                            if last_seq != seq or last_epoch != epoch:
                                index[plate] = (
                                    one(
                                        last_at,
                                        last_seq,
                                        last_epoch,
                                        last_cp,
                                        last_desc,
                                        last_camera,
                                        last_reads + 1,
                                    )
                                    + packed[ONE.size :]
                                )
                            continue
                        fits = True  # a later passage at the same place
                    elif gap > window:
                        prev_cp = values[last_cp]
                        trip = to_here.get(prev_cp)
                        if trip is None:
                            trip = self._trip_s(prev_cp, checkpoint)
                        fits = gap >= trip
                if not fits:
                    # Perhaps a clone: the rule's full paths, on the sightings as objects.
                    held = self.index.held(plate, packed)
                    new = Seen(checkpoint, epoch, seq, at, plate, values[camera], values[described])
                    finding = self._finding(held.last, new, reads)
                    before = held.before
                    if (
                        finding is None
                        and before is not None
                        and not self._fits_in_time(before, checkpoint, at)
                    ):
                        # The latest sighting fits but for its attributes (which one read does not
                        # settle): the one before may still make a trip too fast.
                        finding = self._finding(before, new, reads)
                    if finding is not None:
                        findings.append(finding)
                index[plate] = two(
                    at,
                    seq,
                    epoch,
                    here,
                    described,
                    camera,
                    1,
                    last_at,
                    last_seq,
                    last_epoch,
                    last_cp,
                    last_desc,
                    last_camera,
                    last_reads,
                )
                continue
            held = self.index.held(plate, packed)
            new = Seen(checkpoint, epoch, seq, at, plate, values[camera], values[described])
            for prev in reversed(held.both()):
                if prev.seq == seq and prev.cp == checkpoint and prev.epoch == epoch:
                    continue  # this very read, sent again
                if prev.desc == new.desc and self._fits_in_time(prev, checkpoint, at):
                    continue
                finding = self._finding(prev, new, reads)
                if finding is not None:
                    findings.append(finding)
                    break
            merge(held, new)
            self.index.put(plate, held.both())
        if len(index) > self.index.max_plates:
            self.index.evict()
        self.findings += len(findings)
        return findings

    def _fits_in_time(self, prev: Seen, checkpoint: str, at: float) -> bool:
        """The same place, or two places far enough apart in time for one vehicle."""
        if prev.cp == checkpoint:
            return True
        gap = abs(at - prev.at)
        return gap > self._window and gap >= self._trip_s(prev.cp, checkpoint)

    def _finding(self, prev: Seen, new: Seen, batch: list[PlateRead]) -> CloneFinding | None:
        """The full rule, for a pair the fast path could not clear; None also when only the vehicles'
        attributes disagree and a sighting rests on one read (a camera's colour or type call is noisy
        too), and when one misread of a look-alike plate explains this conflict and the plate's
        conflicts before it (:meth:`_one_misread_explains`)."""
        finding = clones.check(_sighting(prev), _sighting(new), self.geography, self.rule)
        if finding is None:
            return None
        backing = self._backing(new, batch)
        if finding.kind == "attribute_conflict" and (prev.reads < 2 or backing < 2):
            self.uncorroborated += 1
            return None
        # Which of the two sightings could be a misread of a look-alike plate on the road. Two cameras
        # reading the same plate exactly and confidently are not both misreading it.
        if self._look_alike_there(prev) or self._look_alike_there(new) or self._look_alike_nearby(new, batch):
            self.explained_as_misreads += 1  # that passage was read both ways: a misread for sure
            return None
        # An attribute conflict has both sightings backed by two reads (above): either may still be a
        # look-alike's vehicle misread alike by both cameras, if it looks exactly like it (_misread).
        attributes = finding.kind == "attribute_conflict"
        suspects = []
        if (prev.reads < 2 or attributes) and self._misread(prev, new, backed=prev.reads >= 2):
            suspects.append(prev)
        if (backing < 2 or attributes) and self._misread(new, prev, backed=backing >= 2):
            suspects.append(new)
        if suspects and self._one_misread_explains(new, suspects):
            self.explained_as_misreads += 1
            return None
        if suspects:
            self.misreads_ruled_out += 1
        return finding

    def _one_misread_explains(self, new: Seen, suspects: list[Seen]) -> bool:
        """Whether the plate's conflicts so far need no more than one misread to explain them.

        A single misread of a look-alike vehicle (鲁Q8K2L1 read where 鲁QBK2L1 passed) conflicts with
        the true vehicle's sightings before and after it; every such conflict has that one read in
        common. A second vehicle with the plate conflicts at each of its passages, and no one
        sighting is common to them all: explaining them away would take a second confident misread
        into the same plate, which is far less likely than a clone. So the sightings that could be
        the misread are remembered per plate (for ``misread_memory_s``); a conflict sharing one of
        them is explained, one that shares none is raised."""
        plate, at = new.plate, new.at
        entry = self._suspects.pop(plate, None)  # popped and put back: the dict stays in age order
        window = self._window

        def shared(sightings: tuple[Seen, ...]) -> tuple[Seen, ...]:
            return tuple(
                s for s in suspects if any(s.cp == h.cp and abs(s.at - h.at) <= window for h in sightings)
            )

        if entry is None or at - entry[2] > self.settings.misread_memory_s:
            self._suspects[plate] = (tuple(suspects), (), at)
            if len(self._suspects) > SUSPECTS_MAX:
                del self._suspects[next(iter(self._suspects))]
            return True
        held, raised, _ = entry
        if not shared(raised):
            common = shared(held)
            if common:
                self._suspects[plate] = (common, raised, at)
                return True
        # Raised, and remembered as raised: the same conflict again (a batch sent again after its
        # commit failed) is raised again, with the same alert id, rather than explained away.
        self._suspects[plate] = (held, (*raised, *suspects)[-8:], at)
        return False

    def _backing(self, new: Seen, batch: list[PlateRead]) -> int:
        """Eligible reads of the batch (one checkpoint) agreeing with ``new`` within the window."""
        window, at = self._window, new.at
        return sum(
            1
            for r in batch
            if r.plate == new.plate
            and abs(r.captured_at - at) <= window
            and (
                r.colour,
                r.vehicle_type,
                clones.body_colour(r.vehicle_colour),
                clones.vehicle_make(r.vehicle_brand),
            )
            == new.desc
            and clones.eligible(r, self.rule)
        )

    def _look_alike_nearby(self, new: Seen, batch: list[PlateRead]) -> bool:
        """Another camera at the same checkpoint read a look-alike plate within the window, as
        confidently as a read that takes part: the passage's vehicle may well be that plate, misread
        here (a less confident look-alike read is the other camera's misread, not this one's)."""
        others = set(clones.look_alikes(new.plate))
        window, at, floor = self._window, new.at, self._min_confidence
        return any(
            r.plate in others and abs(r.captured_at - at) <= window and (r.confidence or 0) >= floor
            for r in batch
        )

    def _look_alike_there(self, seen: Seen) -> bool:
        """Whether a look-alike plate was read at the same checkpoint within the same-time window
        (the other camera of the passage, most often, read it the other way)."""
        window, cp, at = self._window, seen.cp, seen.at
        for other in clones.look_alikes(seen.plate):
            for known in self.index.get(other):
                if known.cp == cp and abs(known.at - at) <= window:
                    return True
        return False

    def _misread(self, seen: Seen, counterpart: Seen, backed: bool = False) -> bool:
        """Whether ``s`` is as well explained as a look-alike misread of another plate on the road:
        a vehicle with a plate one look-alike character away that fits being there then.

        A plate seen only once, by one camera, and of the same description as a vehicle seen with
        this plate (``counterpart`` is the other side of the conflict) may itself be a misread of
        this plate, and then explains nothing: a vehicle of another description, or seen at two
        passages or by two cameras at one, is on the road.

        A sighting ``backed`` by two cameras (``_finding`` asks only for a side of an attribute
        conflict) is a misread only where the look-alike's vehicle was seen with the very
        description these cameras gave, known rather than merely not contradicting it. Two cameras
        seldom misread a plate alike; but a sighting that differs from the plate's other vehicle
        and looks exactly like a look-alike's vehicle that fits being there is that vehicle far more
        often than a clone that happens to look like it. (For a trip too fast, where the two
        vehicles of a clone usually look alike and so often look like a look-alike's too, it is
        not: there, on the simulated day, it cost clones found.)"""
        s = _sighting(seen)
        own: tuple[Seen, ...] | None = None
        for other in clones.look_alikes(s.plate):
            held = self.index.get(other)
            if not held:
                continue
            if len(held) == 1 and held[0].reads < 2:
                if own is None:
                    own = (counterpart, *(h for h in self.index.get(s.plate) if not same(h, seen)))
                if any(h.desc == held[0].desc for h in own):
                    continue
            as_other = s._replace(plate=other)
            for known in held:
                if backed and known.desc != seen.desc:
                    continue
                if clones.check(_sighting(known), as_other, self.geography, self.rule) is None:
                    return True
        return False

    def alert(self, finding: CloneFinding, raised_at: float) -> Alert:
        """The alert for a finding, on the later read; its id names both reads (idempotent on resend)."""
        later, earlier = finding.later, finding.earlier
        other = f"{RULE}:{earlier.checkpoint}/{earlier.epoch}/{earlier.seq}"
        read = PlateRead(
            seq=later.seq,
            camera_id=later.camera_id,
            captured_at=later.captured_at,
            plate=later.plate,
            plate_raw=later.plate,
            plate_valid=True,
            colour=later.colour,
            vehicle_type=later.vehicle_type,
        )
        alert = rule_alert(
            later.checkpoint,
            later.epoch,
            read,
            rule_id=RULE,
            name=NAME,
            action=self.settings.action,
            priority=self.settings.priority,
            explanation=finding.explanation,
            raised_at=raised_at,
        )
        alert.alert_id = derive_alert_id(later.checkpoint, later.epoch, later.seq, other)
        alert.hit.entry_id = other[:128]
        alert.hit.entry_plate = later.plate
        alert.hit.kind = "clone"
        # The evidence: both reads by identity (their pictures are kept with them at the checkpoints).
        alert.hit.reason = (
            f"{finding.kind}; earlier read {earlier.checkpoint}/{earlier.epoch}/{earlier.seq} "
            f"camera {earlier.camera_id}; later read {later.checkpoint}/{later.epoch}/{later.seq} "
            f"camera {later.camera_id}"
        )[:500]
        return alert
