"""Generated cassette photos with known truth: for the reader's tests and its accuracy benchmark.

A scene is drawn flat in the card's mm frame (card, markers, cassette laid a little off its outline,
strips with purple-red C and T lines of given strength), lit (a gradient across the card, maybe glare
or a shadow crossing a T window), photographed (a pinhole camera tilted up to 25 deg, rotated any way
in the plane), then blurred, given sensor noise and JPEG-encoded. Everything comes from one seeded
``random.Random``, so a seed gives the same photos on every machine.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from protocols.kits import KitModel, PanelCall, call_panel

from .card import CARD_H_MM, CARD_W_MM, cassette_origin_mm, render_card

SCENE_PX_PER_MM = 8.0
PHOTO_SIZE = (2304, 1728)
"""4 MP: a modest tablet camera (the reader needs ~6 px/mm at the cassette to see a 3 % line in noise)."""
LINE_SIGMA_MM = 0.35
LINE_ABSORB_BGR = np.array([0.45, 0.80, 0.15], np.float32)
"""A colloidal-gold line is purple-red: it takes most green, some blue, little red."""
STRIP_BGR = (238, 242, 244)
CASSETTE_BGR = (225, 228, 230)
PLACEMENT_MM = 0.8
PLACEMENT_DEG = 0.8
JPEG_QUALITY = 92

Occlusion = Literal["glare", "shadow"]


@dataclass
class Conditions:
    tilt_deg: float = 0.0
    blur_sigma_px: float = 0.0
    noise_sigma: float = 0.0
    """Sensor noise as a share of full scale (8/255 at most in the benchmark)."""
    gradient: float = 0.0
    """Illumination falling by this share from one side of the card to the other."""
    occlusion: Occlusion | None = None
    occluded_panel: int | None = None


@dataclass
class PanelTruth:
    drug: str
    call: PanelCall
    c_strength: float
    t_contrast: float
    """T line darkness as a share of the C line's; 0 when there is no T line."""


@dataclass
class Photo:
    data: bytes
    kit_model: str
    conditions: Conditions
    panels: list[PanelTruth] = field(default_factory=list)


def random_conditions(rng: random.Random, kit: KitModel, occlusion: Occlusion | None = None) -> Conditions:
    """The benchmark's ranges: tilt <= 25 deg, blur <= 2 px, noise <= 8/255, gradient <= 40 %.

    The camera's roll is not a condition: any of four quarter turns, +-15 deg (see ``_camera``).
    """
    return Conditions(
        tilt_deg=rng.uniform(0, 25),
        blur_sigma_px=rng.uniform(0, 2),
        noise_sigma=rng.uniform(0, 8 / 255),
        gradient=rng.uniform(0, 0.4),
        occlusion=occlusion,
        occluded_panel=rng.randrange(len(kit.panels)) if occlusion else None,
    )


def random_panels(rng: random.Random, kit: KitModel, invalid_share: float = 0.04) -> list[PanelTruth]:
    """Each panel: rarely no C line; otherwise positive or negative evenly, T contrast 3-60 % of C."""
    out = []
    for panel in kit.panels:
        c_strength = rng.uniform(0.45, 0.95)
        if rng.random() < invalid_share:
            t_line = rng.random() < 0.5
            out.append(PanelTruth(panel.drug, "invalid", 0.0, rng.uniform(0.03, 0.6) if t_line else 0.0))
            continue
        t_line = rng.random() < 0.5
        contrast = rng.uniform(0.03, 0.6) if t_line else 0.0
        out.append(PanelTruth(panel.drug, call_panel(kit.convention, True, t_line), c_strength, contrast))
    return out


class Scene:
    """One kit's flat scene template, drawn once and reused for every photo of that kit."""

    def __init__(self, kit: KitModel) -> None:
        self.kit = kit
        s = SCENE_PX_PER_MM
        self.card = render_card(s, [kit])
        w, h = round(kit.width_mm * s), round(kit.height_mm * s)
        body = np.full((h, w, 3), CASSETTE_BGR, np.uint8)
        cv2.rectangle(body, (0, 0), (w - 1, h - 1), (170, 172, 175), max(1, round(0.5 * s)))
        for panel in kit.panels:
            win = panel.window
            x0, y0 = round(win.x * s), round(win.y * s)
            x1, y1 = round((win.x + win.width) * s), round((win.y + win.height) * s)
            body[y0:y1, x0:x1] = STRIP_BGR
            cv2.rectangle(body, (x0 - 2, y0 - 2), (x1 + 1, y1 + 1), (150, 150, 155), 2)  # the recess's rim
        self.body = body
        h, w = self.card.shape[:2]
        self.ys, self.xs = (g.astype(np.float32) / s for g in np.mgrid[0:h, 0:w])

    def draw(self, panels: list[PanelTruth], rng: random.Random) -> np.ndarray:
        """The lit-free scene: card plus cassette with these lines, laid slightly off the outline."""
        s = SCENE_PX_PER_MM
        body = self.body.astype(np.float32)
        for panel, truth in zip(self.kit.panels, panels, strict=True):
            win = panel.window
            x0, x1 = round(win.x * s), round((win.x + win.width) * s)
            y0, y1 = round(win.y * s), round((win.y + win.height) * s)
            rows_mm = (np.arange(y0, y1) + 0.5) / s - win.y
            absorb = np.zeros(len(rows_mm), np.float32)
            t_strength = truth.t_contrast * (truth.c_strength or 0.7)  # an invalid panel may still show T
            for centre, strength in ((win.c_mm, truth.c_strength), (win.t_mm, t_strength)):
                if strength > 0:
                    absorb += strength * np.exp(-0.5 * ((rows_mm - centre) / LINE_SIGMA_MM) ** 2)
            absorb = np.clip(absorb, 0, 1)
            body[y0:y1, x0:x1] *= 1 - absorb[:, None, None] * LINE_ABSORB_BGR[None, None, :]
        ox, oy = cassette_origin_mm(self.kit)
        dx, dy = rng.uniform(-PLACEMENT_MM, PLACEMENT_MM), rng.uniform(-PLACEMENT_MM, PLACEMENT_MM)
        angle = rng.uniform(-PLACEMENT_DEG, PLACEMENT_DEG)
        pivot = (self.kit.width_mm * s / 2, self.kit.height_mm * s / 2)
        m = cv2.getRotationMatrix2D(pivot, angle, 1.0)
        m[0, 2] += (ox + dx) * s
        m[1, 2] += (oy + dy) * s
        size = (self.card.shape[1], self.card.shape[0])
        scene = self.card.astype(np.float32)
        return cv2.warpAffine(
            body, m, size, dst=scene, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT
        )


def _light(scene: np.ndarray, template: Scene, cond: Conditions, rng: random.Random) -> np.ndarray:
    kit, xs, ys = template.kit, template.xs, template.ys
    theta = rng.uniform(0, 2 * math.pi)
    along = (xs - CARD_W_MM / 2) * math.cos(theta) + (ys - CARD_H_MM / 2) * math.sin(theta)
    span = abs(CARD_W_MM * math.cos(theta)) + abs(CARD_H_MM * math.sin(theta))
    light = 1 - cond.gradient * (along / span + 0.5)
    if cond.occlusion is not None and cond.occluded_panel is not None:
        win = kit.panels[cond.occluded_panel].window
        ox, oy = cassette_origin_mm(kit)
        tx, ty = ox + win.x + win.width / 2, oy + win.y + win.t_mm + rng.uniform(-1.5, 1.5)
        if cond.occlusion == "shadow":
            phi = rng.uniform(0, 2 * math.pi)
            signed = (xs - tx) * math.cos(phi) + (ys - ty) * math.sin(phi)
            edge = rng.uniform(0.5, 3.0)
            depth = rng.uniform(0.3, 0.6)
            light = light * (1 - depth / (1 + np.exp(np.clip(-signed / edge, -50, 50))))
            scene = scene * light[:, :, None]
        else:
            rx, ry = rng.uniform(2, 7), rng.uniform(1.5, 5)
            blob = np.exp(-0.5 * (((xs - tx) / rx) ** 2 + ((ys - ty) / ry) ** 2))
            scene = scene * light[:, :, None]
            scene = scene + (300 - scene) * (rng.uniform(0.5, 1.0) * blob)[:, :, None]
    else:
        scene = scene * light[:, :, None]
    return scene


def _camera(cond: Conditions, rng: random.Random) -> np.ndarray:
    """Scene pixels -> photo pixels: the card tilted by ``tilt_deg`` about a random axis, seen by a pinhole."""
    s = SCENE_PX_PER_MM
    corners = np.array([[0, 0], [CARD_W_MM, 0], [CARD_W_MM, CARD_H_MM], [0, CARD_H_MM]], np.float64)
    pts = np.c_[corners - [CARD_W_MM / 2, CARD_H_MM / 2], np.zeros(4)]
    axis = rng.uniform(0, 2 * math.pi)
    t = math.radians(cond.tilt_deg)
    k = np.array([math.cos(axis), math.sin(axis), 0.0])
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = np.eye(3) + math.sin(t) * kx + (1 - math.cos(t)) * kx @ kx
    # People hold the phone square to the card (landscape, portrait or upside down), never quite straight.
    spin = math.radians(rng.choice([0, 90, 180, 270]) + rng.uniform(-15, 15))
    rz = np.array([[math.cos(spin), -math.sin(spin), 0], [math.sin(spin), math.cos(spin), 0], [0, 0, 1]])
    world = pts @ (rz @ rot).T
    distance = 300.0
    proj = world[:, :2] / (distance + world[:, 2:3])
    proj -= proj.mean(axis=0)
    extent = np.max(np.abs(proj), axis=0)
    fill = rng.uniform(0.8, 0.92)
    scale = min(PHOTO_SIZE[0] / 2 / extent[0], PHOTO_SIZE[1] / 2 / extent[1]) * fill
    photo_pts = proj * scale + [
        PHOTO_SIZE[0] / 2 + rng.uniform(-30, 30),
        PHOTO_SIZE[1] / 2 + rng.uniform(-30, 30),
    ]
    return cv2.getPerspectiveTransform((corners * s).astype(np.float32), photo_pts.astype(np.float32))


_NOISE_MARGIN = 512
_NOISE_UNIT = 16.0
_noise_bank: dict[tuple[int, ...], np.ndarray] = {}


def _add_noise(photo: np.ndarray, rng: random.Random, sigma: float) -> np.ndarray:
    """``photo`` plus independent Gaussian noise per pixel and channel, ``sigma`` levels wide.

    Drawing 9 million normal numbers per photo would be most of the benchmark's time, so each photo
    takes a randomly placed window of one larger field drawn once from a fixed seed (stored as
    128 + 16 z in bytes). Within a photo the noise is independent pixel to pixel, which is all the
    reader sees.
    """
    shape = photo.shape
    bank = _noise_bank.get(shape)
    if bank is None:
        z = np.random.default_rng(12345).standard_normal(
            (shape[0] + _NOISE_MARGIN, shape[1] + _NOISE_MARGIN, shape[2]), dtype=np.float32
        )
        bank = np.clip(np.rint(128 + _NOISE_UNIT * z), 0, 255).astype(np.uint8)
        _noise_bank[shape] = bank
    y, x = rng.randrange(_NOISE_MARGIN), rng.randrange(_NOISE_MARGIN)
    gain = sigma / _NOISE_UNIT
    return cv2.addWeighted(
        photo, 1.0, bank[y : y + shape[0], x : x + shape[1]], gain, -128 * gain, dtype=cv2.CV_8U
    )


def make_photo(
    kit: KitModel,
    rng: random.Random,
    panels: list[PanelTruth] | None = None,
    conditions: Conditions | None = None,
    scene: Scene | None = None,
) -> Photo:
    """One photo of ``kit``: random truth and conditions unless given; same rng state, same photo."""
    scene = scene or Scene(kit)
    panels = panels if panels is not None else random_panels(rng, kit)
    cond = conditions if conditions is not None else random_conditions(rng, kit)
    flat = np.clip(_light(scene.draw(panels, rng), scene, cond, rng), 0, 255).astype(np.uint8)
    table = round(rng.uniform(40, 120))
    photo = cv2.warpPerspective(
        flat,
        _camera(cond, rng),
        PHOTO_SIZE,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(table, table, table),
    )
    if cond.blur_sigma_px > 0.05:
        photo = cv2.GaussianBlur(photo, (0, 0), cond.blur_sigma_px)
    if cond.noise_sigma > 0:
        photo = _add_noise(photo, rng, cond.noise_sigma * 255)
    ok, buf = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok
    return Photo(data=buf.tobytes(), kit_model=kit.model, conditions=cond, panels=panels)
