"""The ring file on the hub: found one way (``ring_path``), read by the one parser (``protocols.ring``),
for the console's map (no map tiles needed) and the cloned-plate rule (``intel/clones.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from protocols.ring import RingCheckpoint, RingError, parse_ring

__all__ = ["SHIPPED", "RingError", "load_ring", "read_ring", "ring_path"]

#: The ring shipped with Cordon (package data beside this module; the demo and benchmarks use it too).
SHIPPED = Path(__file__).with_name("ring-checkpoints.csv")


def ring_path(configured: str) -> Path:
    """The ring file a setting names (``console.checkpoints_csv``, ``clones.checkpoints_csv``); empty: the
    shipped ring."""
    return Path(configured) if configured else SHIPPED


def read_ring(path: Path, key: str = "console.checkpoints_csv") -> list[RingCheckpoint]:
    """The ring file at ``path`` (``protocols.ring``); a RingError names ``key`` when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RingError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    return parse_ring(text, str(path))


def load_ring(path: Path) -> list[dict[str, Any]]:
    """The console's map of the ring file at ``path`` (``checkpoint``, ``name``, ``name_en``, ``lat``,
    ``lon``, and ``city``, ``county``, ``road`` when known). A bad row stops start-up with the row named."""
    ring: list[dict[str, Any]] = []
    for c in read_ring(path):
        entry: dict[str, Any] = {
            "checkpoint": c.id,
            "name": c.name,
            "name_en": c.name_en,
            "lat": c.lat,
            "lon": c.lon,
        }
        for optional in ("city", "county", "road"):
            if getattr(c, optional):
                entry[optional] = getattr(c, optional)
        ring.append(entry)
    return ring
