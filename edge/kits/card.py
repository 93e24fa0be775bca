"""The printed reading card: four ArUco markers around the place where the cassette lies.

The card's geometry is the reader's frame of reference: the reader finds the markers in a photo,
maps the photo onto the card in mm, and takes the cassette to lie centred on the card, long side
horizontal (the printed outline shows where). ``cordon kits card`` prints it; print at 100 % scale.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np

from protocols.kits import KitModel

CARD_W_MM = 170.0
CARD_H_MM = 120.0
MARKER_MM = 18.0
MARKER_INSET_MM = 5.0
MARKER_IDS = (0, 1, 2, 3)
"""Top-left, top-right, bottom-right, bottom-left."""
ARUCO_DICT = cv2.aruco.DICT_4X4_50
CARD_GREY = 250
INSTRUCTIONS = (
    "Lay the cassette in the outline, windows up, C lines towards the top.",
    "Photograph from above, all four corner markers in view, no flash glare on the windows.",
)


def marker_corners_mm() -> dict[int, np.ndarray]:
    """Each marker's four corners on the card (mm), in ArUco's order: clockwise from top-left."""
    lo, hi_x, hi_y = (
        MARKER_INSET_MM,
        CARD_W_MM - MARKER_INSET_MM - MARKER_MM,
        CARD_H_MM - MARKER_INSET_MM - MARKER_MM,
    )
    out = {}
    for marker_id, (x, y) in zip(MARKER_IDS, [(lo, lo), (hi_x, lo), (hi_x, hi_y), (lo, hi_y)], strict=True):
        out[marker_id] = np.array(
            [[x, y], [x + MARKER_MM, y], [x + MARKER_MM, y + MARKER_MM], [x, y + MARKER_MM]], dtype=np.float32
        )
    return out


def cassette_origin_mm(kit: KitModel) -> tuple[float, float]:
    """Where the cassette's top-left corner lies on the card: centred."""
    return (CARD_W_MM - kit.width_mm) / 2, (CARD_H_MM - kit.height_mm) / 2


def render_card(px_per_mm: float = 12.0, kits: list[KitModel] | None = None) -> np.ndarray:
    """The card as a BGR image at ``px_per_mm``: markers, centre marks, each kit's outline, instructions."""
    w, h = round(CARD_W_MM * px_per_mm), round(CARD_H_MM * px_per_mm)
    img = np.full((h, w, 3), CARD_GREY, np.uint8)
    dictionary = cv2.aruco.getPredefinedDictionary(ARUCO_DICT)

    def px(v: float) -> int:
        return round(v * px_per_mm)

    for marker_id, corners in marker_corners_mm().items():
        side = px(MARKER_MM)
        marker = cv2.aruco.generateImageMarker(dictionary, marker_id, side)
        x0, y0 = px(corners[0][0]), px(corners[0][1])
        img[y0 : y0 + side, x0 : x0 + side] = marker[:, :, None]
    for kit in kits or []:
        kx, ky = cassette_origin_mm(kit)
        cv2.rectangle(
            img,
            (px(kx), px(ky)),
            (px(kx + kit.width_mm), px(ky + kit.height_mm)),
            (150, 150, 150),
            max(1, px(0.3)),
        )
    cx, cy = CARD_W_MM / 2, CARD_H_MM / 2
    ticks = [
        ((cx, cy - 30), (cx, cy - 24)),
        ((cx, cy + 24), (cx, cy + 30)),  # centre marks, clear of every
        ((cx - 72, cy), (cx - 66, cy)),
        ((cx + 66, cy), (cx + 72, cy)),
    ]  # cassette's windows
    for (ax, ay), (bx, by) in ticks:
        cv2.line(img, (px(ax), px(ay)), (px(bx), px(by)), (120, 120, 120), max(1, px(0.4)))
    scale = px_per_mm / 12 * 0.55
    for i, text in enumerate(INSTRUCTIONS):
        cv2.putText(
            img,
            text,
            (px(MARKER_INSET_MM + MARKER_MM + 3), px(MARKER_INSET_MM + 6 + 5 * i)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (60, 60, 60),
            max(1, round(scale * 2)),
            cv2.LINE_AA,
        )
    cv2.putText(
        img,
        "Cordon reading card - print at 100% - 170 x 120 mm",
        (px(MARKER_INSET_MM + MARKER_MM + 3), px(CARD_H_MM - MARKER_INSET_MM - 2)),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (60, 60, 60),
        max(1, round(scale * 2)),
        cv2.LINE_AA,
    )
    return img


MM_TO_PT = 72 / 25.4
A4_LANDSCAPE_PT = (841.89, 595.28)


def card_pdf(img: np.ndarray) -> bytes:
    """A one-page A4 landscape PDF with the card at its true size (written by hand: no PDF library).

    The image goes in losslessly (FlateDecode of the raw RGB rows), so the markers keep sharp edges.
    """
    h, w = img.shape[:2]
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    stream = zlib.compress(rgb.tobytes(), 6)
    page_w, page_h = A4_LANDSCAPE_PT
    img_w, img_h = CARD_W_MM * MM_TO_PT, CARD_H_MM * MM_TO_PT
    x0, y0 = (page_w - img_w) / 2, (page_h - img_h) / 2
    content = (
        f"q {img_w:.2f} 0 0 {img_h:.2f} {x0:.2f} {y0:.2f} cm /Card Do Q\n"
        f"BT /F1 9 Tf {x0:.2f} {y0 - 14:.2f} Td (Print at 100% scale \\(no fit to page\\): "
        f"the card must measure 170 x 120 mm.) Tj ET\n"
    ).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {page_w} {page_h}] /Contents 4 0 R "
            f"/Resources << /XObject << /Card 5 0 R >> /Font << /F1 6 0 R >> >> >>"
        ).encode(),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        (
            f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceRGB "
            f"/BitsPerComponent 8 /Filter /FlateDecode /Length {len(stream)} >>\nstream\n"
        ).encode()
        + stream
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def write_card(out: str | Path, kits: list[KitModel] | None = None, px_per_mm: float = 12.0) -> Path:
    """Write the card as PNG or PDF, chosen by ``out``'s extension."""
    path = Path(out)
    img = render_card(px_per_mm, kits)
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        path.write_bytes(card_pdf(img))
    elif suffix == ".png":
        ok, buf = cv2.imencode(".png", img)
        if not ok:
            raise RuntimeError("could not encode the card as PNG")
        path.write_bytes(buf.tobytes())
    else:
        raise ValueError(f"{path.name}: the card is written as .png or .pdf")
    return path
