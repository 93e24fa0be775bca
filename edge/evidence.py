"""Evidence pictures kept at the edge: the camera's snapshot, a plate crop and a small thumbnail.

Files live under ``<data_dir>/evidence/YYYY-MM-DD/<epoch>-<seq>-<kind>.jpg``, one set per read. The
file system is the record: the index is rebuilt from the file names at start, so there is no second
database to drift from the files. Every path is built from two integers and a fixed kind, never from
request text, so no request can name a file outside the store. A quota in bytes and a retention in
days bound the store; the oldest reads' pictures go first. A picture that does not decode is refused
with a reason; the read it belongs to was committed before and stays.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from protocols.errors import CordonError
from protocols.messages import THUMBNAIL_MAX_BYTES

log = logging.getLogger(__name__)

Kind = Literal["snapshot", "plate", "thumb"]
KINDS: tuple[Kind, ...] = ("snapshot", "plate", "thumb")
THUMB_QUALITIES = (70, 55, 40, 30)
CROP_QUALITY = 90
#: Hikvision's plateRect is in thousandths of the picture's width and height, origin top left.
RECT_SCALE = 1000
PRUNE_EVERY_S = 60.0
MAX_PIXELS = 64_000_000  # a "JPEG" claiming more is a decompression bomb, not a camera picture

_NAME = re.compile(r"^(\d{1,20})-(\d{1,20})-(snapshot|plate|thumb)\.jpg$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ImageError(CordonError, ValueError):
    """A picture that cannot be used as evidence (corrupt, truncated, not an image)."""


@dataclass(frozen=True, slots=True)
class PlateRect:
    """A plate's box in a picture, in thousandths of its width and height (Hikvision's convention)."""

    x: int
    y: int
    width: int
    height: int


@dataclass(slots=True)
class _Entry:
    day: str
    created: float
    sizes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Saved:
    """What was kept for one read, and why anything was not."""

    kinds: tuple[str, ...]
    error: str | None = None


def decode_image(data: bytes, what: str) -> np.ndarray:
    """Decode a camera picture or raise ImageError with a reason a person can act on."""
    if not data:
        raise ImageError(f"{what}: empty")
    is_jpeg = data[:3] == b"\xff\xd8\xff"
    if is_jpeg and b"\xff\xd9" not in data[-256:]:
        # libjpeg decodes a cut-off JPEG with grey rows and only a warning; evidence must be whole.
        raise ImageError(f"{what}: truncated JPEG ({len(data)} bytes, no end marker)")
    buf = np.frombuffer(data, dtype=np.uint8)
    if is_jpeg:
        header = cv2.imdecode(buf, cv2.IMREAD_REDUCED_GRAYSCALE_8)
        if header is not None and header.shape[0] * header.shape[1] * 64 > MAX_PIXELS:
            raise ImageError(f"{what}: picture too large ({header.shape[1] * 8}x{header.shape[0] * 8})")
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ImageError(f"{what}: not a decodable image ({len(data)} bytes, starts {data[:4].hex()})")
    return image


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, out = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageError("could not encode JPEG")
    return out.tobytes()


def crop(image: np.ndarray, rect: PlateRect) -> np.ndarray:
    """The plate's box cut from the picture; ImageError when the box is empty or off the picture."""
    h, w = image.shape[:2]
    x0 = max(0, min(w, rect.x * w // RECT_SCALE))
    y0 = max(0, min(h, rect.y * h // RECT_SCALE))
    x1 = max(0, min(w, (rect.x + rect.width) * w // RECT_SCALE))
    y1 = max(0, min(h, (rect.y + rect.height) * h // RECT_SCALE))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ImageError(f"plateRect {rect} is empty or outside the picture")
    return image[y0:y1, x0:x1]


def thumbnail(image: np.ndarray, max_px: int, max_bytes: int = THUMBNAIL_MAX_BYTES) -> bytes:
    """A JPEG of at most ``max_px`` on its longest side and at most ``max_bytes``: the quality is lowered
    step by step first, then the picture is made smaller (a noisy night scene is large at any quality)."""
    while True:
        h, w = image.shape[:2]
        scale = min(1.0, max_px / max(h, w))
        if scale < 1.0:
            image = cv2.resize(
                image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
            )
        for quality in THUMB_QUALITIES:
            data = encode_jpeg(image, quality)
            if len(data) <= max_bytes:
                return data
        if max(h, w) <= 16:
            raise ImageError(f"no thumbnail fits in {max_bytes} bytes")
        max_px = max(16, max(image.shape[:2]) * 3 // 4)


def render(
    snapshot: bytes | None, plate: bytes | None, rect: PlateRect | None, thumb_max_px: int
) -> tuple[dict[str, bytes], list[str]]:
    """The files to keep for one read (kind -> bytes) and the problems met; CPU work, run off the loop."""
    files: dict[str, bytes] = {}
    errors: list[str] = []
    scene = plate_img = None
    if snapshot is not None:
        try:
            scene = decode_image(snapshot, "snapshot")
            # The camera's own bytes are the evidence; only a non-JPEG is re-encoded.
            files["snapshot"] = (
                snapshot if snapshot[:3] == b"\xff\xd8\xff" else encode_jpeg(scene, CROP_QUALITY)
            )
        except ImageError as exc:
            errors.append(str(exc))
    if plate is not None:
        try:
            plate_img = decode_image(plate, "plate picture")
            files["plate"] = plate if plate[:3] == b"\xff\xd8\xff" else encode_jpeg(plate_img, CROP_QUALITY)
        except ImageError as exc:
            errors.append(str(exc))
    if "plate" not in files and scene is not None and rect is not None:
        try:
            files["plate"] = encode_jpeg(crop(scene, rect), CROP_QUALITY)
        except ImageError as exc:
            errors.append(str(exc))
    source = scene if scene is not None else plate_img
    if source is not None:
        try:
            files["thumb"] = thumbnail(source, thumb_max_px)
        except ImageError as exc:
            errors.append(str(exc))
    return files, errors


class EvidenceStore:
    """Pictures per read under a quota and a retention period; call ``start()`` before use."""

    def __init__(
        self,
        root: str | Path,
        *,
        max_bytes: int,
        retention_days: float,
        thumb_max_px: int = 320,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.retention_s = retention_days * 86400
        self.thumb_max_px = thumb_max_px
        self._clock = clock
        self._index: dict[tuple[int, int], _Entry] = {}
        self.bytes = 0
        self.saved = 0
        self.rejected = 0
        self.deleted = 0
        self._last_prune = 0.0

    def start(self) -> None:
        """Rebuild the index from the files on disk, then apply the quota and retention."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._index, self.bytes, self._last_prune = {}, 0, 0.0
        for day in sorted(p for p in self.root.iterdir() if p.is_dir() and _DAY.match(p.name)):
            for path in day.iterdir():
                m = _NAME.match(path.name)
                if not m:
                    continue
                stat = path.stat()
                entry = self._index.setdefault((int(m[1]), int(m[2])), _Entry(day.name, stat.st_mtime))
                entry.created = min(entry.created, stat.st_mtime)
                entry.sizes[m[3]] = stat.st_size
                self.bytes += stat.st_size
        # From here on the index's order is age order: new reads are appended, oldest first to go.
        self._index = dict(sorted(self._index.items(), key=lambda kv: kv[1].created))
        self._prune()

    def _path(self, key: tuple[int, int], day: str, kind: str) -> Path:
        return self.root / day / f"{key[0]}-{key[1]}-{kind}.jpg"

    async def save(
        self,
        epoch: int,
        seq: int,
        *,
        snapshot: bytes | None = None,
        plate: bytes | None = None,
        plate_rect: PlateRect | None = None,
    ) -> Saved:
        """Keep one read's pictures; a picture that does not decode is named in ``Saved.error``."""
        if snapshot is None and plate is None:
            return Saved(())
        return await self.keep(epoch, seq, await self.render(snapshot, plate, plate_rect))

    async def render(
        self, snapshot: bytes | None, plate: bytes | None, plate_rect: PlateRect | None = None
    ) -> tuple[dict[str, bytes], list[str]]:
        """Decode and make the files of one read (off the loop) before it is numbered, so its thumbnail can
        travel with its hit; :meth:`keep` stores them."""
        if snapshot is None and plate is None:
            return {}, []
        return await asyncio.to_thread(render, snapshot, plate, plate_rect, self.thumb_max_px)

    async def keep(self, epoch: int, seq: int, rendered: tuple[dict[str, bytes], list[str]]) -> Saved:
        """Store what :meth:`render` made for read ``epoch``-``seq``."""
        files, errors = rendered
        if files:
            key = (epoch, seq)
            now = self._clock()
            day = time.strftime("%Y-%m-%d", time.localtime(now))
            await asyncio.to_thread(self._write, key, day, files, now)
            old = self._index.pop(key, None)
            if old is not None:  # a read saved twice (should not happen): the newer pictures win
                self.bytes -= sum(old.sizes.values())
            self._index[key] = _Entry(day, now, {k: len(v) for k, v in files.items()})
            self.bytes += sum(len(v) for v in files.values())
            self.saved += 1
            self._prune()
        if errors:
            self.rejected += 1
            log.warning("evidence of read %d-%d: %s", epoch, seq, "; ".join(errors))
        return Saved(tuple(files), "; ".join(errors) or None)

    def _write(self, key: tuple[int, int], day: str, files: dict[str, bytes], now: float) -> None:
        (self.root / day).mkdir(parents=True, exist_ok=True)
        for kind, data in files.items():
            final = self._path(key, day, kind)
            tmp = final.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.utime(tmp, (now, now))  # the file's time is the store's clock: a restart sees the same ages
            tmp.replace(final)  # a reader never sees half a picture

    def path(self, epoch: int, seq: int, kind: str) -> Path | None:
        """The file of one kind of picture of a read, if kept."""
        entry = self._index.get((epoch, seq))
        if entry is None or kind not in entry.sizes or kind not in KINDS:
            return None
        return self._path((epoch, seq), entry.day, kind)

    def kinds(self, epoch: int, seq: int) -> list[str]:
        """The kinds of picture kept for a read (none: an empty list)."""
        entry = self._index.get((epoch, seq))
        return [kind for kind in KINDS if entry is not None and kind in entry.sizes]

    def thumbnail(self, seq: int, epoch: int | None = None) -> bytes | None:
        """The thumbnail of a read (of ``epoch``, or of the newest epoch that has one): what travels with
        hits and alerts."""
        if epoch is None:
            epochs = [e for (e, s) in self._index if s == seq]
            if not epochs:
                return None
            epoch = max(epochs)
        path = self.path(epoch, seq, "thumb")
        try:
            return path.read_bytes() if path is not None else None
        except OSError:
            return None

    def __len__(self) -> int:
        return len(self._index)

    def prune(self) -> int:
        """Apply the retention and the quota now; return how many reads' pictures were deleted."""
        before = self.deleted
        self._last_prune = -PRUNE_EVERY_S
        self._prune()
        return self.deleted - before

    def _prune(self) -> None:
        now = self._clock()
        over_quota = self.max_bytes and self.bytes > self.max_bytes
        if not over_quota and now - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = now
        cutoff = now - self.retention_s
        doomed: list[tuple[tuple[int, int], _Entry]] = []
        freed = 0
        for key, entry in self._index.items():  # age order: the oldest come first
            expired = self.retention_s > 0 and entry.created < cutoff
            if not expired and not (self.max_bytes and self.bytes - freed > self.max_bytes):
                break
            doomed.append((key, entry))
            freed += sum(entry.sizes.values())
        for key, entry in doomed:
            self._delete(key, entry)

    def _delete(self, key: tuple[int, int], entry: _Entry) -> None:
        for kind in entry.sizes:
            try:
                self._path(key, entry.day, kind).unlink()
            except FileNotFoundError:
                pass
        self.bytes -= sum(entry.sizes.values())
        self.deleted += 1
        del self._index[key]
        day_dir = self.root / entry.day
        try:
            day_dir.rmdir()  # only when empty
        except OSError:
            pass

    def clear(self) -> None:
        """Delete every picture (tests and decommissioning)."""
        shutil.rmtree(self.root, ignore_errors=True)
        self._index.clear()
        self.bytes = 0
