"""The ring's checkpoints file: where each checkpoint stands. One parser for every use of it (the
console's map, the cloned-plate rule's distances, the demo), so a file means the same thing to each.

CSV with ``id``, ``lat``, ``lon`` (WGS-84 decimal degrees) required; ``name_zh`` (or ``name``),
``name_en``, ``city``, ``county``, ``road``, ``neighbour`` if known. A bad row refuses the whole file with its line: a
map with a checkpoint silently missing, or a distance from a misread position, would mislead.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

from .errors import ConfigError

REQUIRED = ("id", "lat", "lon")


class GeographyError(ConfigError, ValueError):
    """A checkpoints or distances file that cannot be used (names the file and the line)."""


class RingError(GeographyError):
    """The checkpoints file cannot be used; the message names the file and the row."""


@dataclass(frozen=True, slots=True)
class RingCheckpoint:
    id: str
    lat: float
    lon: float
    name: str = ""
    """``name_zh``, else ``name``; empty when the file has neither."""
    name_en: str = ""
    city: str = ""
    county: str = ""
    road: str = ""
    neighbour: str = ""
    """The province across the nearest border (its plate prefix, ``冀``): the demo's simulator reads its
    vehicles' plates from there too."""


def parse_ring(text: str, source: str = "checkpoints CSV") -> list[RingCheckpoint]:
    """The checkpoints of a ring file's text, in file order; ``source`` names it in errors."""
    rows = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in REQUIRED if c not in (rows.fieldnames or [])]
    if missing:
        raise RingError(f"{source}: missing column(s) {', '.join(missing)}")
    ring: list[RingCheckpoint] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):
        checkpoint = (row.get("id") or "").strip()
        try:
            lat, lon = float(row["lat"]), float(row["lon"])
        except (TypeError, ValueError):
            raise RingError(f"{source} line {number}: lat and lon must be numbers") from None
        if not checkpoint or checkpoint in seen:
            raise RingError(f"{source} line {number}: checkpoint id empty or repeated")
        if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
            raise RingError(f"{source} line {number}: lat/lon out of range")
        seen.add(checkpoint)
        ring.append(
            RingCheckpoint(
                id=checkpoint,
                lat=lat,
                lon=lon,
                name=(row.get("name_zh") or row.get("name") or "").strip(),
                name_en=(row.get("name_en") or "").strip(),
                city=(row.get("city") or "").strip(),
                county=(row.get("county") or "").strip(),
                road=(row.get("road") or "").strip(),
                neighbour=(row.get("neighbour") or "").strip(),
            )
        )
    return ring
