"""The hub's clone check: each newly stored eligible read against the last sightings of its plate.

Reads, not passages: the hub gets every camera's reads from every checkpoint, and a read carries
what the check needs (its camera's confidence, whether the plate was taken exactly as read, colour
and vehicle type); passages are merged per checkpoint and lose the confidence. Two cameras at one
checkpoint reading one vehicle are the same place, so they never make a trip too fast.

The index lives in memory (plate -> its two latest sightings, least recently seen plates forgotten
past ``max_plates``) and starts empty when the hub starts: for a while after a restart a clone is
found only once both vehicles have been seen again. It is touched only from the writer thread, and a
job's changes are applied only when the job finishes (a job the writer runs again after attaching a
day file changes nothing twice). Two sightings per plate, not one, so a read sent again after a
failed commit is compared with the sighting before it rather than with itself.
"""

from __future__ import annotations

from collections import OrderedDict
from importlib import resources
from pathlib import Path

from protocols import clones
from protocols.alerting import rule_alert
from protocols.clones import CloneFinding, CloneRule, Geography, Sighting
from protocols.messages import Alert, PlateRead, derive_alert_id

from .settings import CloneSettings

NAME = "suspected cloned plate 疑似套牌"
RULE = clones.RULE_ID


def load_geography(settings: CloneSettings) -> Geography:
    """Checkpoints and distances from the configured files (the shipped ring by default)."""
    if settings.checkpoints_csv:
        text = Path(settings.checkpoints_csv).read_text(encoding="utf-8")
    else:  # the ring shipped with the package (a data file, not a code dependency on cordon)
        text = resources.files("cordon").joinpath("data/ring-checkpoints.csv").read_text(encoding="utf-8")
    distances = {}
    if settings.distances_csv:
        distances = clones.parse_distances(Path(settings.distances_csv).read_text(encoding="utf-8"))
    return Geography(clones.parse_checkpoints(text), road_factor=settings.road_factor, distances=distances)


def rule_from(settings: CloneSettings, utc_offset: str = "+08:00") -> CloneRule:
    sign = -1 if utc_offset.startswith("-") else 1
    hours, minutes = utc_offset[1:].split(":")
    return CloneRule(min_confidence=settings.min_confidence, max_speed_kmh=settings.max_speed_kmh,
                     same_time_window_s=settings.same_time_window_s,
                     utc_offset_h=sign * (int(hours) + int(minutes) / 60))


class CloneIndex:
    """Plate -> its latest eligible sightings; bounded LRU."""

    def __init__(self, max_plates: int = 2_000_000) -> None:
        self.max_plates = max_plates
        self._plates: OrderedDict[str, tuple[Sighting, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._plates)

    def get(self, plate: str) -> tuple[Sighting, ...]:
        return self._plates.get(plate, ())

    def put(self, s: Sighting) -> None:
        held = [x for x in self._plates.get(s.plate, ()) if x.identity != s.identity]
        held.append(s)
        held.sort(key=lambda x: x.captured_at)
        self._plates[s.plate] = tuple(held[-2:])
        self._plates.move_to_end(s.plate)
        while len(self._plates) > self.max_plates:
            self._plates.popitem(last=False)


class CloneCheck:
    """Finds clones for ingest; see the module docstring for what state it keeps."""

    def __init__(self, settings: CloneSettings, geography: Geography, utc_offset: str = "+08:00") -> None:
        self.settings = settings
        self.geography = geography
        self.rule = rule_from(settings, utc_offset)
        self.index = CloneIndex(settings.max_plates)
        self.findings = 0

    def begin(self) -> dict[str, tuple[Sighting, ...]]:
        """A job's pending changes (plate -> sightings as this job sees them)."""
        return {}

    def read(self, pending: dict[str, tuple[Sighting, ...]], checkpoint: str, epoch: int,
             read: PlateRead) -> CloneFinding | None:
        """Check one stored read; remember it in ``pending`` (applied by :meth:`commit`)."""
        if not clones.eligible(read, self.rule):
            return None
        new = clones.sighting(checkpoint, epoch, read)
        held = pending.get(read.plate)
        if held is None:
            held = self.index.get(read.plate)
        finding = None
        for previous in sorted(held, key=lambda x: -x.captured_at):
            finding = clones.check(previous, new, self.geography, self.rule)
            if finding is not None:
                break
        merged = [x for x in held if x.identity != new.identity] + [new]
        merged.sort(key=lambda x: x.captured_at)
        pending[read.plate] = tuple(merged[-2:])
        return finding

    def commit(self, pending: dict[str, tuple[Sighting, ...]]) -> None:
        for sightings in pending.values():
            for s in sightings:
                self.index.put(s)

    def alert(self, finding: CloneFinding, raised_at: float) -> Alert:
        """The alert for a finding, on the later read; its id names both reads (idempotent on resend)."""
        later, earlier = finding.later, finding.earlier
        other = f"{RULE}:{earlier.checkpoint}/{earlier.epoch}/{earlier.seq}"
        read = PlateRead(seq=later.seq, camera_id=later.camera_id, captured_at=later.captured_at, plate=later.plate,
                         plate_raw=later.plate, plate_valid=True, colour=later.colour,
                         vehicle_type=later.vehicle_type)
        alert = rule_alert(later.checkpoint, later.epoch, read, rule_id=RULE, name=NAME,
                           action=self.settings.action, priority=self.settings.priority,
                           explanation=finding.explanation, raised_at=raised_at)
        alert.alert_id = derive_alert_id(later.checkpoint, later.epoch, later.seq, other)
        alert.hit.entry_id = other[:128]
        alert.hit.entry_plate = later.plate
        alert.hit.kind = "clone"
        # The evidence: both reads by identity (their pictures are kept with them at the checkpoints).
        alert.hit.reason = (f"{finding.kind}; earlier read {earlier.checkpoint}/{earlier.epoch}/{earlier.seq} "
                            f"camera {earlier.camera_id}; later read {later.checkpoint}/{later.epoch}/{later.seq} "
                            f"camera {later.camera_id}")[:500]
        return alert

