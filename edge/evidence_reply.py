"""The edge's answer to the hub's evidence request (``cordon/v1/cp/{cp}/evidence/request``).

Edges sit behind mobile-network NAT, so the hub never connects to an edge: it asks over the broker
and the edge publishes one EvidenceReply per picture asked for on ``.../evidence/reply``. A picture
that is not kept (another epoch, pruned, never received) gets a reply with ``error``, never silence.
A picture too big for one MQTT message is re-encoded smaller and the reply says ``reencoded``.
"""

from __future__ import annotations

import base64
import logging

from protocols.messages import MAX_PAYLOAD_BYTES, SCHEMA_VERSION, EvidenceReply, EvidenceRequest

from .evidence import EvidenceStore, ImageError, decode_image, encode_jpeg

log = logging.getLogger(__name__)

#: The wire says "scene"; the store keeps the camera's snapshot under "snapshot".
STORE_KIND = {"scene": "snapshot", "plate": "plate"}
#: Room left in a message for the envelope, the other fields and a signature.
_ENVELOPE = 8192
MAX_IMAGE_BYTES = (MAX_PAYLOAD_BYTES - _ENVELOPE) * 3 // 4
_QUALITIES = (85, 70, 55, 40)


def _fit(data: bytes) -> tuple[bytes, bool]:
    """The JPEG as kept, or re-encoded (smaller quality, then smaller size) to fit one message."""
    if len(data) <= MAX_IMAGE_BYTES:
        return data, False
    image = decode_image(data, "kept picture")
    import cv2  # noqa: PLC0415 - only needed for the rare oversized picture

    for _ in range(6):
        for quality in _QUALITIES:
            out = encode_jpeg(image, quality)
            if len(out) <= MAX_IMAGE_BYTES:
                return out, True
        image = cv2.resize(
            image, (max(1, image.shape[1] // 2), max(1, image.shape[0] // 2)), interpolation=cv2.INTER_AREA
        )
    raise ImageError("picture could not be made small enough for one message")


def answer(
    store: EvidenceStore | None, checkpoint: str, current_epoch: int, request: EvidenceRequest
) -> list[EvidenceReply]:
    """One reply per kind asked for: the picture, or the reason it cannot be sent."""
    replies = []
    for kind in dict.fromkeys(request.kinds):
        reply = EvidenceReply(
            v=SCHEMA_VERSION,
            request_id=request.request_id,
            checkpoint=checkpoint,
            epoch=request.epoch,
            seq=request.seq,
            kind=kind,
        )
        path = None
        if store is None:
            reply.error = "this edge keeps no evidence"
        elif request.epoch != current_epoch:
            reply.error = f"not kept: epoch {request.epoch} is not this edge's current epoch {current_epoch}"
        else:
            path = store.path(request.epoch, request.seq, STORE_KIND[kind])
            if path is None:
                reply.error = f"not kept: no {kind} picture for read {request.seq} (never received or pruned)"
        if path is not None:
            try:
                data, reply.reencoded = _fit(path.read_bytes())
                reply.data = base64.b64encode(data).decode("ascii")
            except (OSError, ImageError) as exc:
                reply.error = f"not readable: {exc}"[:500]
        replies.append(reply)
    return replies
