"""The ring's geography for the console map: where each checkpoint stands (no map tiles needed)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from protocols.errors import ConfigError

#: The ring shipped with Cordon (package data beside this module; the demo and benchmarks use it too).
SHIPPED = Path(__file__).with_name("ring-checkpoints.csv")


class RingError(ConfigError, ValueError):
    """The checkpoints file cannot be used; the message names the file and the row."""


def ring_path(configured: str) -> Path:
    return Path(configured) if configured else SHIPPED


def load_ring(path: Path) -> list[dict[str, Any]]:
    """Read the checkpoints CSV (``id``, ``lat``, ``lon`` required; ``name_zh``/``name``, ``name_en``,
    ``city``, ``county``, ``road`` if present). A bad row stops start-up with the row named: a map
    with a checkpoint silently missing would mislead the command center."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RingError(f"console.checkpoints_csv: cannot read {path}: {exc}") from None
    rows = csv.DictReader(text.splitlines())
    missing = {"id", "lat", "lon"} - set(rows.fieldnames or [])
    if missing:
        raise RingError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    ring: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):
        checkpoint = (row.get("id") or "").strip()
        try:
            lat, lon = float(row["lat"]), float(row["lon"])
        except (TypeError, ValueError):
            raise RingError(f"{path} line {number}: lat and lon must be numbers") from None
        if not checkpoint or checkpoint in seen:
            raise RingError(f"{path} line {number}: checkpoint id empty or repeated")
        if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
            raise RingError(f"{path} line {number}: lat/lon out of range")
        seen.add(checkpoint)
        entry: dict[str, Any] = {
            "checkpoint": checkpoint,
            "name": (row.get("name_zh") or row.get("name") or "").strip(),
            "name_en": (row.get("name_en") or "").strip(),
            "lat": lat,
            "lon": lon,
        }
        for optional in ("city", "county", "road"):
            if row.get(optional):
                entry[optional] = row[optional].strip()
        ring.append(entry)
    return ring
