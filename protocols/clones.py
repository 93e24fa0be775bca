"""Cloned plates: one plate seen where one vehicle could not have been (pure rules, no I/O).

Two sightings of the same plate are a suspected clone when the vehicle would have had to drive
faster than ``max_speed_kmh`` over the fastest plausible road distance between the checkpoints,
when they are at two checkpoints at (about) the same time, or when the cameras disagree on what the
vehicle is (plate colour, vehicle type). Misreads must not look like clones, so only sightings that
the camera read confidently, that are valid plates and that were taken exactly as the camera read
them (no correction) take part: a misread ``鲁Q8K2L1`` for ``鲁Q8K2LI`` is far likelier than a clone.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from . import plates
from .messages import PlateRead
from .ring import GeographyError, RingCheckpoint, parse_ring

RULE_ID = "rule:clone"
EARTH_RADIUS_KM = 6371.0088

Kind = Literal["impossible_trip", "same_time", "attribute_conflict"]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    id: str
    name: str
    lat: float
    lon: float
    name_en: str = ""


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


@dataclass(slots=True)
class Geography:
    """Where checkpoints are and how far apart by road: an explicit matrix wins, else the straight
    line times ``road_factor`` (roads are rarely straight; 1.3 is a usual detour factor)."""

    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    road_factor: float = 1.3
    distances: dict[tuple[str, str], float] = field(default_factory=dict)

    def distance_km(self, a: str, b: str) -> float | None:
        """Fastest plausible road distance; None when either checkpoint is unknown."""
        if a == b:
            return 0.0
        known = self.distances.get((a, b))
        if known is None:
            known = self.distances.get((b, a))
        if known is not None:
            return known
        ca, cb = self.checkpoints.get(a), self.checkpoints.get(b)
        if ca is None or cb is None:
            return None
        return haversine_km(ca.lat, ca.lon, cb.lat, cb.lon) * self.road_factor

    def name(self, checkpoint: str, english: bool = False) -> str:
        """The checkpoint's name (in English when asked and known), else its id."""
        cp = self.checkpoints.get(checkpoint)
        if cp is None:
            return checkpoint
        return (cp.name_en if english and cp.name_en else cp.name) or checkpoint


def parse_checkpoints(text: str, source: str = "checkpoints CSV") -> dict[str, Checkpoint]:
    """The rule's checkpoints from a ring file's text (``protocols.ring``, the one parser of it); a
    checkpoint without a name is named by its id."""
    return checkpoints_of(parse_ring(text, source))


def checkpoints_of(ring: list[RingCheckpoint]) -> dict[str, Checkpoint]:
    """The rule's checkpoints of a parsed ring; a checkpoint without a name is named by its id."""
    return {c.id: Checkpoint(c.id, c.name or c.id, c.lat, c.lon, c.name_en) for c in ring}


def parse_distances(text: str) -> dict[tuple[str, str], float]:
    """Road distances from CSV text with columns from, to, km (one row serves both directions)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {"from", "to", "km"} - set(reader.fieldnames or [])
    if missing:
        raise GeographyError(f"distances CSV lacks column(s) {sorted(missing)}")
    out: dict[tuple[str, str], float] = {}
    for line, row in enumerate(reader, start=2):
        try:
            km = float(row["km"])
        except (TypeError, ValueError):
            raise GeographyError(f"distances CSV line {line}: km is not a number") from None
        if km < 0 or not row["from"] or not row["to"]:
            raise GeographyError(f"distances CSV line {line}: bad checkpoint ids or negative km")
        out[(row["from"], row["to"])] = km
    return out


@dataclass(frozen=True, slots=True)
class CloneRule:
    min_confidence: float = 90.0
    max_speed_kmh: float = 150.0
    same_time_window_s: float = 60.0
    """Two different checkpoints within this many seconds count as "the same time" (used also
    when the distance between them is unknown)."""
    utc_offset_h: float = 8.0
    """Clock times in explanations are local (the record's offset)..."""
    tz: dt.tzinfo | None = None
    """...or, when given, in this time zone (the hub's ``time_zone``, the one the console shows)."""


class Sighting(NamedTuple):
    """What the clone check keeps of one eligible read (a tuple: ingest makes one per read)."""

    checkpoint: str
    epoch: int
    seq: int
    captured_at: float
    plate: str
    camera_id: str
    colour: str | None = None
    vehicle_type: str | None = None
    vehicle_colour: str | None = None
    vehicle_brand: str | None = None

    @property
    def identity(self) -> tuple[str, int, int]:
        return (self.checkpoint, self.epoch, self.seq)


def sighting(checkpoint: str, epoch: int, read: PlateRead) -> Sighting:
    return Sighting(
        checkpoint,
        epoch,
        read.seq,
        read.captured_at,
        read.plate,
        read.camera_id,
        read.colour,
        read.vehicle_type,
        read.vehicle_colour,
        read.vehicle_brand,
    )


def eligible(read: PlateRead, rule: CloneRule) -> bool:
    """Whether a read may take part: confident, valid and read exactly (no correction applied)."""
    if read.no_plate or not read.plate or not read.plate_valid:
        return False
    if read.confidence is None or read.confidence < rule.min_confidence:
        return False
    return plates.normalize(read.plate_raw).plate == read.plate


# Characters plate cameras confuse with one another (both ways). A read whose plate differs from a
# plate on the road by one of these is likelier a misread of that vehicle than a clone.
LOOK_ALIKE: dict[str, str] = {}
for _group in ("0DQ", "8B", "5S", "2Z", "6G", "1I7", "4A", "UV"):
    for _ch in _group:
        LOOK_ALIKE[_ch] = LOOK_ALIKE.get(_ch, "") + _group.replace(_ch, "")


def look_alikes(plate: str) -> list[str]:
    """Plates one look-alike character away (the province and authority letter stay)."""
    out = []
    for i in range(2, len(plate)):
        for other in LOOK_ALIKE.get(plate[i], ""):
            out.append(plate[:i] + other + plate[i + 1 :])
    return out


@dataclass(frozen=True, slots=True)
class CloneFinding:
    kind: Kind
    earlier: Sighting
    later: Sighting
    gap_s: float
    distance_km: float | None
    min_trip_s: float | None
    explanation_en: str
    explanation_zh: str

    @property
    def explanation(self) -> str:
        return f"{self.explanation_zh} / {self.explanation_en}"


def min_trip_s(distance_km: float, rule: CloneRule) -> float:
    return distance_km / rule.max_speed_kmh * 3600.0


def _clock(at: float, rule: CloneRule) -> str:
    tz = rule.tz or dt.timezone(dt.timedelta(hours=rule.utc_offset_h))
    return dt.datetime.fromtimestamp(at, tz).strftime("%H:%M:%S")


def _duration_en(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    h, m = divmod(minutes, 60)
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{h} h {m} min" if h else f"{m} min"


def _duration_zh(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    h, m = divmod(minutes, 60)
    if seconds < 60:
        return f"{seconds:.0f}秒"
    return f"{h}小时{m}分" if h else f"{m}分钟"


def _attribute_conflicts(a: Sighting, b: Sighting) -> list[tuple[str, str, str, str, str]]:
    """(what_en, what_zh, value_a, value_b) for each attribute both cameras gave and disagree on."""
    out = []
    ca, cb = plates.parse_colour(a.colour), plates.parse_colour(b.colour)
    if ca is not None and cb is not None and ca != cb:
        out.append(("plate colour", "号牌颜色", str(ca), str(cb), ""))
    if (
        a.vehicle_type
        and b.vehicle_type
        and a.vehicle_type.strip().casefold() != b.vehicle_type.strip().casefold()
    ):
        out.append(("vehicle type", "车辆类型", a.vehicle_type, b.vehicle_type, ""))
    va, vb = body_colour(a.vehicle_colour), body_colour(b.vehicle_colour)
    if va is not None and vb is not None and va != vb:
        out.append(("vehicle colour", "车身颜色", va, vb, ""))
    ba, bb = (a.vehicle_brand or "").strip().casefold(), (b.vehicle_brand or "").strip().casefold()
    # Hikvision names the make by a logo code, Dahua by name: only two of one kind can be compared.
    if ba and bb and ba.isdigit() == bb.isdigit() and ba != bb:
        out.append(("vehicle make", "车辆品牌", a.vehicle_brand or "", b.vehicle_brand or "", ""))
    return out


_BODY_COLOURS = {
    "白": "white",
    "黑": "black",
    "红": "red",
    "蓝": "blue",
    "黄": "yellow",
    "绿": "green",
    "灰": "gray",
    "grey": "gray",
    "银": "silver",
    "棕": "brown",
    "紫": "purple",
    "粉": "pink",
    "橙": "orange",
}
_BODY_NAMES = frozenset(_BODY_COLOURS.values())


def body_colour(name: str | None) -> str | None:
    """A camera's vehicle colour as one name (``白色``, ``White`` -> ``white``); None when unknown, so that
    a name one camera uses and another does not never looks like two colours."""
    if not name:
        return None
    text = name.strip().casefold().removesuffix("色")
    text = _BODY_COLOURS.get(text, text)
    return text if text in _BODY_NAMES else None


def vehicle_make(name: str | None) -> str | None:
    """A camera's vehicle make as one spelling (``Volkswagen``, `` volkswagen`` -> ``volkswagen``); None when unknown."""
    return name.strip().casefold() or None if name else None


def check(previous: Sighting, new: Sighting, geography: Geography, rule: CloneRule) -> CloneFinding | None:
    """A suspected clone from two eligible sightings of one plate, or None when one vehicle fits."""
    if previous.plate != new.plate or previous.identity == new.identity:
        return None
    earlier, later = (previous, new) if previous.captured_at <= new.captured_at else (new, previous)
    gap = later.captured_at - earlier.captured_at
    where_e, where_l = geography.name(earlier.checkpoint), geography.name(later.checkpoint)
    en_e, en_l = (
        geography.name(earlier.checkpoint, english=True),
        geography.name(later.checkpoint, english=True),
    )
    head_en = (
        f"{new.plate} at {en_e} {_clock(earlier.captured_at, rule)} and at {en_l} "
        f"{_clock(later.captured_at, rule)}"
    )
    head_zh = f"{new.plate} {_clock(earlier.captured_at, rule)} 在{where_e}、{_clock(later.captured_at, rule)} 在{where_l}"
    if earlier.checkpoint != later.checkpoint:
        km = geography.distance_km(earlier.checkpoint, later.checkpoint)
        trip = min_trip_s(km, rule) if km is not None else None
        if gap <= rule.same_time_window_s and (trip is None or gap < trip):
            return CloneFinding(
                "same_time",
                earlier,
                later,
                gap,
                km,
                trip,
                f"{head_en}: the same time at two places" + (f" {km:.0f} km apart" if km is not None else ""),
                f"{head_zh}：同一时间出现在两地" + (f"（相距 {km:.0f} 公里）" if km is not None else ""),
            )
        if trip is not None and gap < trip:
            return CloneFinding(
                "impossible_trip",
                earlier,
                later,
                gap,
                km,
                trip,
                f"{head_en}; the fastest trip is {_duration_en(trip)} ({km:.0f} km at "
                f"{rule.max_speed_kmh:.0f} km/h), it took {_duration_en(gap)}",
                f"{head_zh}；两地最快车程 {_duration_zh(trip)}（{km:.0f} 公里，按 {rule.max_speed_kmh:.0f} 公里/小时），"
                f"实际间隔 {_duration_zh(gap)}",
            )
    conflicts = _attribute_conflicts(earlier, later)
    if conflicts:
        en = "; ".join(f"{what} {va} vs {vb}" for what, _, va, vb, _ in conflicts)
        zh = "；".join(f"{what}{va}与{vb}不符" for _, what, va, vb, _ in conflicts)
        return CloneFinding(
            "attribute_conflict",
            earlier,
            later,
            gap,
            None,
            None,
            f"{head_en}: the vehicles differ ({en})",
            f"{head_zh}：车辆特征不一致（{zh}）",
        )
    return None
