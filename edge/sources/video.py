"""Evidence frames from a video source, for reads that came without a picture.

``cv2.VideoCapture`` opens an RTSP/HTTP URL, a local device (a number: ``0`` is /dev/video0) or a file.
A capture is opened per grab: grabs are rare (only pictureless reads), and a capture held open would
decode a live stream all day for nothing. The blocking OpenCV calls run in a thread.
"""

from __future__ import annotations

import asyncio
import logging

import cv2

from protocols.errors import CordonError

log = logging.getLogger(__name__)

GRAB_TIMEOUT_S = 5.0
JPEG_QUALITY = 90
#: Frames read and dropped after opening a live stream, so the grab is not a stale buffered frame.
SKIP_FRAMES = 2


class FrameError(CordonError, RuntimeError):
    """No frame could be had from the video source; the message says why."""


def _source(spec: str) -> str | int:
    return int(spec) if spec.isdigit() else spec


def grab_frame_sync(spec: str) -> bytes:
    """One frame of the source as JPEG bytes, or FrameError."""
    capture = cv2.VideoCapture(_source(spec))
    try:
        if not capture.isOpened():
            raise FrameError(f"video source {spec[:80]!r} did not open")
        stream = spec.isdigit() or "://" in spec  # a file's first frame is as good as any
        frame = None
        for _ in range(SKIP_FRAMES + 1 if stream else 1):
            ok, candidate = capture.read()
            if ok and candidate is not None:
                frame = candidate
        if frame is None:
            raise FrameError(f"video source {spec[:80]!r} gave no frame")
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise FrameError("frame could not be encoded as JPEG")
        return buf.tobytes()
    finally:
        capture.release()


async def grab_frame(spec: str, limit_s: float = GRAB_TIMEOUT_S) -> bytes:
    """Grab one JPEG frame without blocking the loop; FrameError when none comes within ``limit_s``."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(grab_frame_sync, spec), limit_s)
    except TimeoutError:
        raise FrameError(f"video source {spec[:80]!r} gave no frame within {limit_s:.0f} s") from None
