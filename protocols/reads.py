"""How a camera's read becomes a recorded PlateRead: one rule for the edge and for the hub's upstream
sources (a 视图库's records), so a plate is normalized, checked and flagged the same way wherever it
enters. Plate problems are flagged, never fatal (DESIGN.md principle 5)."""

from __future__ import annotations

from . import plates
from .messages import CameraRead, PlateRead


def plate_read(read: CameraRead, camera_id: str, captured_at: float, lane: int | None = None) -> PlateRead:
    """The record of ``read`` (numbered later: ``seq`` is 1); ``lane`` when the read carries none."""
    norm = plates.normalize(read.plate)
    colour = plates.parse_colour(read.colour) or norm.colour
    valid: bool
    problem: str | None
    if norm.no_plate:
        valid, problem = False, "no readable plate"
    elif norm.problem is not None:  # a broken camera: its plate is matched, its read is not clean
        valid, problem = False, norm.problem
    else:
        checked = plates.check(norm.plate, colour)
        valid, problem = checked.valid, checked.problem
    return PlateRead(
        seq=1,
        camera_id=camera_id,
        captured_at=captured_at,
        plate=norm.plate,
        plate_raw=read.plate,
        plate_valid=valid,
        plate_problem=problem,
        no_plate=norm.no_plate,
        colour=colour.value if colour else None,
        vehicle_type=read.vehicle_type,
        vehicle_colour=read.vehicle_colour,
        vehicle_brand=read.vehicle_brand,
        confidence=read.confidence,
        lane=read.lane if read.lane is not None else lane,
        direction=read.direction,
        camera_event_id=read.event_id,
    )
