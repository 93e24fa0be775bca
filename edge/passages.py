"""Passage building: several reads of one vehicle within a window become one passage.

Passages are for the record only. Alerts never wait for a passage: the hub and the edge match
every read as it arrives, and a passage is emitted when its window has closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocols.messages import Passage, PlateRead

# Reads of one vehicle by two cameras often differ by a look-alike character or a dropped
# province character; group them under one key so they still form one passage.
_LOOKALIKE = str.maketrans("ODQIZSGB", "00012568")
MAX_READS_PER_PASSAGE = 64


def group_key(plate: str) -> str:
    body = plate[1:] if plate and not plate[0].isascii() else plate
    return body.translate(_LOOKALIKE)


@dataclass(slots=True)
class _Open:
    first_seen: float
    last_seen: float
    reads: list[PlateRead] = field(default_factory=list)


class PassageBuilder:
    """Groups reads by plate (look-alike and province insensitive) within ``window_s``."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._open: dict[str, _Open] = {}

    def __len__(self) -> int:
        return len(self._open)

    def observe(self, read: PlateRead, now: float) -> list[Passage]:
        """Add a read; return passages it closed (a full passage, or a no-plate vehicle's own)."""
        if read.no_plate or not read.plate:
            # A vehicle with no readable plate cannot be grouped with anything: its own passage.
            return [_passage([read])]
        key = group_key(read.plate)
        current = self._open.get(key)
        if current is not None and now - current.last_seen > self.window_s:
            self._open.pop(key)
            closed = [_passage(current.reads)]
            current = None
        else:
            closed = []
        if current is None:
            current = self._open[key] = _Open(now, now)
        current.reads.append(read)
        current.last_seen = now
        if len(current.reads) >= MAX_READS_PER_PASSAGE:
            self._open.pop(key)
            closed.append(_passage(current.reads))
        return closed

    def expire(self, now: float) -> list[Passage]:
        """Close and return every passage whose window has passed."""
        done = [k for k, o in self._open.items() if now - o.last_seen > self.window_s]
        return [_passage(self._open.pop(k).reads) for k in done]

    def flush(self) -> list[Passage]:
        """Close everything (shutdown)."""
        out = [_passage(o.reads) for o in self._open.values()]
        self._open.clear()
        return out


def _rank(read: PlateRead) -> tuple[bool, float, int]:
    return (read.plate_valid, read.confidence if read.confidence is not None else -1.0, -read.seq)


def _passage(reads: list[PlateRead]) -> Passage:
    best = max(reads, key=_rank)
    cameras = sorted({r.camera_id for r in reads})
    return Passage(
        seq=1,  # numbered by the outbox
        plate=best.plate,
        no_plate=best.no_plate,
        colour=best.colour,
        vehicle_type=best.vehicle_type,
        first_seen=min(r.captured_at for r in reads),
        last_seen=max(r.captured_at for r in reads),
        best_seq=best.seq,
        read_seqs=[r.seq for r in reads],
        cameras=cameras,
    )
