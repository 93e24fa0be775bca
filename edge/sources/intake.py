"""Where every camera source hands a read: commit it, then keep its pictures.

The read is committed first, so a picture that turns out corrupt, or a disk that is full, never costs
the read; the pictures are kept under the read's (epoch, seq). A read without any picture gets a frame
from the camera's ``video`` source when one is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from protocols.errors import CordonError
from protocols.messages import CameraRead, PlateRead

from ..evidence import EvidenceStore, PlateRect, Saved
from ..service import EdgeService
from ..settings import CameraSettings
from .video import FrameError, grab_frame

log = logging.getLogger(__name__)


class PictureError(CordonError, RuntimeError):
    """A picture could not be fetched from the camera; the read is kept regardless."""


@dataclass(slots=True)
class Pictures:
    snapshot: bytes | None = None
    """The scene (Hikvision detectionPicture, Dahua snapshot, the FTP'd JPEG)."""
    plate: bytes | None = None
    """The camera's own plate close-up, when it sends one."""
    plate_rect: PlateRect | None = None
    """Where the plate is in the snapshot, in thousandths of its size."""


@dataclass(frozen=True, slots=True)
class Taken:
    read: PlateRead
    epoch: int
    evidence: tuple[str, ...]
    evidence_error: str | None

    def answer(self) -> dict[str, object]:
        """The JSON a pushing camera gets back."""
        return {
            "seq": self.read.seq,
            "epoch": self.epoch,
            "plate": self.read.plate,
            "plate_valid": self.read.plate_valid,
            "plate_problem": self.read.plate_problem,
            "no_plate": self.read.no_plate,
            "evidence": list(self.evidence),
            "evidence_error": self.evidence_error,
        }


class Intake:
    def __init__(self, service: EdgeService, evidence: EvidenceStore) -> None:
        self.service = service
        self.evidence = evidence

    async def take(
        self,
        read: CameraRead,
        camera: CameraSettings,
        pictures: Pictures | Callable[[], Awaitable[Pictures]] | None = None,
    ) -> Taken:
        """Commit the read (raises ReadRejected or an outbox error), then keep its pictures. ``pictures``
        may be a coroutine function that fetches them: it is called after the commit, so a slow camera
        picture never delays the read (nor its alert)."""
        rendered: tuple[dict[str, bytes], list[str]] | None = None
        if isinstance(pictures, Pictures) and (pictures.snapshot is not None or pictures.plate is not None):
            # Pictures in hand (a push with JPEG parts, a dropped file): decoded before the commit, so the
            # read says it has evidence and a hit carries the thumbnail to the tablets and the hub.
            rendered = await self.evidence.render(pictures.snapshot, pictures.plate, pictures.plate_rect)
        thumb = rendered[0].get("thumb") if rendered else None
        recorded = await self.service.record(
            read, camera.id, camera.lane, thumbnail=thumb, has_evidence=bool(rendered and rendered[0])
        )
        epoch = self.service.outbox.epoch
        errors: list[str] = []
        if rendered is not None:
            try:
                saved = await self.evidence.keep(epoch, recorded.seq, rendered)
            except OSError as exc:  # disk full or gone: the read is committed; say so and go on
                log.error("evidence of read %d-%d not kept: %s", epoch, recorded.seq, exc)
                errors.append(f"evidence not kept: {exc.strerror or exc}")
                saved = Saved(())
            if saved.error:
                errors.append(saved.error)
            if errors:
                self.service.camera(camera.id).errors += 1
            self._announce(epoch, recorded.seq, saved.kinds)
            return Taken(recorded, epoch, saved.kinds, "; ".join(errors) or None)
        if callable(pictures):
            try:
                pictures = await pictures()
            except PictureError as exc:
                errors.append(str(exc))
                pictures = None
        pictures = pictures or Pictures()
        if pictures.snapshot is None and pictures.plate is None and camera.video:
            try:
                pictures.snapshot = await grab_frame(camera.video)
            except FrameError as exc:
                errors.append(str(exc))
        try:
            saved = await self.evidence.save(
                epoch,
                recorded.seq,
                snapshot=pictures.snapshot,
                plate=pictures.plate,
                plate_rect=pictures.plate_rect,
            )
        except OSError as exc:  # disk full or gone: the read is committed; say so and go on
            log.error("evidence of read %d-%d not kept: %s", epoch, recorded.seq, exc)
            errors.append(f"evidence not kept: {exc.strerror or exc}")
            kinds: tuple[str, ...] = ()
        else:
            kinds = saved.kinds
            if saved.error:
                errors.append(saved.error)
        if errors:
            self.service.camera(camera.id).errors += 1
        self._announce(epoch, recorded.seq, kinds)
        return Taken(recorded, epoch, kinds, "; ".join(errors) or None)

    def _announce(self, epoch: int, seq: int, kinds: tuple[str, ...]) -> None:
        """Tell the tablets a read's pictures are kept (its live row then shows the thumbnail)."""
        if kinds:
            self.service.live.publish({"type": "evidence", "epoch": epoch, "seq": seq, "kinds": list(kinds)})
