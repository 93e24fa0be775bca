"""Simulated checkpoint traffic: plausible plates, several camera reads per vehicle, OCR misreads.

``TrafficSimulator`` is a pure generator (seeded, clock injected) so tests and demos get the same
stream every time; ``run_simulator`` is the small async driver that paces it in real time.
``scene_pictures`` draws what a plate camera would send with each read (a road scene with the vehicle
and its plate, and the plate close-up), so the demo shows evidence pictures like a real ring.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np

from protocols.plates import (
    AUTHORITY_LETTERS,
    DIGITS,
    NEW_ENERGY_MARKS,
    PROVINCES,
    SERIAL_CHARS,
    PlateColour,
    PlateKind,
    check,
    expected_colours,
    normalize,
)

__all__ = [
    "RING_NEIGHBOURS",
    "VEHICLE_TYPES",
    "ScenePictures",
    "SimulatedRead",
    "TrafficSimulator",
    "run_simulator",
    "scene_pictures",
]

VEHICLE_TYPES: tuple[str, ...] = ("car", "suv", "van", "bus", "truck", "hazmat", "trailer", "motorcycle")

# Provinces across Shandong's land border, plus Liaoning across the Bohai strait (ferries).
RING_NEIGHBOURS: str = "冀豫苏皖"

READ_SPREAD_SECONDS = 2.0  # the reads of one vehicle by different cameras fall within this window

# Registered-vehicle weight of each Shandong authority letter (GLOSSARY), roughly by city size.
_SHANDONG_LETTERS: dict[str, float] = {
    "A": 14, "B": 10, "U": 3, "C": 5, "D": 3, "E": 3, "F": 7, "Y": 2, "G": 8, "V": 2,
    "H": 7, "J": 4, "K": 3, "L": 3, "M": 4, "N": 5, "P": 5, "Q": 9, "R": 7, "S": 1,
}  # fmt: skip

# Checkpoint-id city code → that city's letters. The ring has no Jinan checkpoint, so JN is
# Jining (微山, SD-JN-001 in ring-checkpoints.csv), not Jinan.
_CITY_LETTERS: dict[str, str] = {
    "DZ": "N", "BZ": "M", "LC": "P", "HZ": "R", "JN": "H", "ZZ": "D", "LY": "Q", "RZ": "L",
    "QD": "BU", "YT": "FY", "WH": "K", "ZB": "C", "DY": "E", "WF": "GV", "TA": "J",
}  # fmt: skip
_LOCAL_SHARE = 0.40  # share of Shandong plates at a checkpoint that come from its own city

# Province shares of non-special plates: Shandong, the checkpoint's own neighbour, the other
# ring neighbours, and everywhere else.
_SHARE_SHANDONG = 0.75
_SHARE_NEIGHBOUR = 0.12
_SHARE_OTHER_NEIGHBOURS = 0.08
_OTHER_PROVINCES = "".join(p for p in PROVINCES if p not in "鲁" + RING_NEIGHBOURS)

# Cities with consulates issue 领 plates.
_CONSULATE_PREFIXES: tuple[str, ...] = ("沪A", "粤A", "川A", "辽A", "鄂A", "云A", "渝A", "黑A")


@dataclass(frozen=True, slots=True)
class _Profile:
    kind: PlateKind
    colour: PlateColour
    vehicle_types: tuple[tuple[str, float], ...]


# (weight %, profile): blue cars ~65, green new-energy ~15, yellow ~15, a little white and black.
_PROFILES: tuple[tuple[float, _Profile], ...] = (
    (65.0, _Profile(PlateKind.REGULAR, PlateColour.BLUE, (("car", 60), ("suv", 30), ("van", 10)))),
    (14.0, _Profile(PlateKind.NEW_ENERGY_SMALL, PlateColour.GREEN, (("car", 65), ("suv", 35)))),
    (1.0, _Profile(PlateKind.NEW_ENERGY_LARGE, PlateColour.YELLOW_GREEN, (("bus", 60), ("truck", 40)))),
    (9.0, _Profile(PlateKind.REGULAR, PlateColour.YELLOW, (("truck", 100),))),
    (2.5, _Profile(PlateKind.REGULAR, PlateColour.YELLOW, (("bus", 100),))),
    (1.5, _Profile(PlateKind.REGULAR, PlateColour.YELLOW, (("hazmat", 100),))),
    (0.5, _Profile(PlateKind.REGULAR, PlateColour.YELLOW, (("motorcycle", 100),))),
    (1.5, _Profile(PlateKind.TRAILER, PlateColour.YELLOW, (("trailer", 100),))),
    (0.5, _Profile(PlateKind.COACH, PlateColour.YELLOW, (("car", 100),))),
    (1.0, _Profile(PlateKind.POLICE, PlateColour.WHITE, (("car", 60), ("suv", 30), ("van", 10)))),
    (0.3, _Profile(PlateKind.HONG_KONG, PlateColour.BLACK, (("car", 70), ("suv", 30)))),
    (0.1, _Profile(PlateKind.MACAO, PlateColour.BLACK, (("car", 70), ("suv", 30)))),
    (0.05, _Profile(PlateKind.CONSULATE, PlateColour.BLACK, (("car", 100),))),
    (0.05, _Profile(PlateKind.EMBASSY, PlateColour.BLACK, (("car", 100),))),
)
_PROFILE_WEIGHTS = [w for w, _ in _PROFILES]

# Characters OCR confuses with each other; a swap picks another member of the same group.
_LOOK_ALIKE_GROUPS: tuple[str, ...] = ("0ODQ", "1I", "2Z", "5S", "6G", "8B")
_LOOK_ALIKES: dict[str, str] = {ch: group.replace(ch, "") for group in _LOOK_ALIKE_GROUPS for ch in group}

_READ_COUNTS = (1, 2, 3)  # cameras that catch one vehicle
_READ_COUNT_WEIGHTS = (30.0, 50.0, 20.0)
_COLOUR_UNKNOWN_RATE = 0.03  # a read where the camera can't tell the plate colour
_DIRECTION_IN_SHARE = 0.55  # entering traffic is the checked side; it queues and gets read more


@dataclass(frozen=True, slots=True)
class SimulatedRead:
    camera_id: str
    lane: int
    direction: str  # "in" (entering Shandong) or "out"
    plate_read: str  # what the camera's OCR reports ("" for no plate)
    plate_true: str  # the real plate ("" for no plate)
    colour: str | None  # PlateColour value, or None when the camera can't tell
    vehicle_type: str  # one of VEHICLE_TYPES
    confidence: float  # 0..100
    captured_at: float  # unix seconds
    vehicle_no: int  # increasing per simulated vehicle; the reads of one vehicle share it


@dataclass(frozen=True, slots=True)
class _Vehicle:
    plate: str
    colour: PlateColour | None
    vehicle_type: str


class TrafficSimulator:
    """Generates the camera reads of one vehicle after another at one checkpoint."""

    def __init__(
        self,
        checkpoint_id: str,
        cameras: Sequence[str],
        *,
        neighbour: str = "冀",
        seed: int | None = None,
        watchlisted: Sequence[str] = (),
        watchlisted_share: float = 0.02,
        misread_rate: float = 0.05,
        no_plate_rate: float = 0.005,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not cameras:
            raise ValueError("at least one camera is needed")
        if len(neighbour) != 1 or neighbour not in PROVINCES or neighbour == "鲁":
            raise ValueError(f"neighbour must be one province character other than 鲁, got {neighbour!r}")
        for name, rate in (
            ("watchlisted_share", watchlisted_share),
            ("misread_rate", misread_rate),
            ("no_plate_rate", no_plate_rate),
        ):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate}")
        self.checkpoint_id = checkpoint_id
        self.cameras: tuple[str, ...] = tuple(cameras)
        self.neighbour = neighbour
        self.watchlisted: tuple[str, ...] = tuple(p for p in (normalize(w).plate for w in watchlisted) if p)
        self.watchlisted_share = watchlisted_share
        self.misread_rate = misread_rate
        self.no_plate_rate = no_plate_rate
        self._clock = clock
        self._rng = random.Random(seed)
        # Arrival gaps come from their own stream so pacing never changes which vehicles appear.
        self._arrivals = random.Random(None if seed is None else seed + 1)
        self._vehicle_no = 0

        city = checkpoint_id.split("-")[1].upper() if checkpoint_id.count("-") >= 2 else ""
        local = _CITY_LETTERS.get(city, "")
        letters = list(_SHANDONG_LETTERS)
        base = [_SHANDONG_LETTERS[ch] for ch in letters]
        total = sum(base)
        local_total = sum(_SHANDONG_LETTERS[ch] for ch in local)
        if local:
            # Rescale so the checkpoint's own city makes up _LOCAL_SHARE of Shandong plates.
            weights = [
                w / local_total * _LOCAL_SHARE
                if ch in local
                else w / (total - local_total) * (1 - _LOCAL_SHARE)
                for ch, w in zip(letters, base, strict=True)
            ]
        else:
            weights = base
        self._sd_letters = letters
        self._sd_weights = weights
        others = RING_NEIGHBOURS.replace(neighbour, "")
        self._other_neighbours = others if others else RING_NEIGHBOURS

    # -- plates ---------------------------------------------------------------------------------

    def _province(self) -> str:
        r = self._rng.random()
        if r < _SHARE_SHANDONG:
            return "鲁"
        r -= _SHARE_SHANDONG
        if r < _SHARE_NEIGHBOUR:
            return self.neighbour
        r -= _SHARE_NEIGHBOUR
        if r < _SHARE_OTHER_NEIGHBOURS:
            return self._rng.choice(self._other_neighbours)
        return self._rng.choice(_OTHER_PROVINCES)

    def _prefix(self) -> str:
        province = self._province()
        if province == "鲁":
            letter = self._rng.choices(self._sd_letters, self._sd_weights)[0]
        else:
            # Provincial capitals (A) and big cities (B-F) dominate long-distance traffic.
            letter = self._rng.choices(AUTHORITY_LETTERS, [8, 4, 3, 3, 2, 2] + [1] * 18)[0]
        return province + letter

    def _serial(self, length: int) -> str:
        """Mostly digits with up to two letters, as issued and self-chosen serials look."""
        chars = [self._rng.choice(DIGITS) for _ in range(length)]
        n_letters = self._rng.choices((0, 1, 2), (40, 40, 20))[0]
        for pos in self._rng.sample(range(length), n_letters):
            chars[pos] = self._rng.choice(AUTHORITY_LETTERS)
        return "".join(chars)

    def _digits(self, length: int) -> str:
        return "".join(self._rng.choice(DIGITS) for _ in range(length))

    def _plate(self, kind: PlateKind) -> str:
        match kind:
            case PlateKind.REGULAR:
                return self._prefix() + self._serial(5)
            case PlateKind.NEW_ENERGY_SMALL:
                mark = self._rng.choice(NEW_ENERGY_MARKS)
                return self._prefix() + mark + self._rng.choice(SERIAL_CHARS) + self._digits(4)
            case PlateKind.NEW_ENERGY_LARGE:
                return self._prefix() + self._digits(5) + self._rng.choice(NEW_ENERGY_MARKS)
            case PlateKind.TRAILER:
                return self._prefix() + self._serial(4) + "挂"
            case PlateKind.COACH:
                return self._prefix() + self._serial(4) + "学"
            case PlateKind.POLICE:
                return self._prefix() + self._serial(4) + "警"
            case PlateKind.HONG_KONG:
                return "粤Z" + self._serial(4) + "港"
            case PlateKind.MACAO:
                return "粤Z" + self._serial(4) + "澳"
            case PlateKind.CONSULATE:
                return self._rng.choice(_CONSULATE_PREFIXES) + self._digits(4) + "领"
            case PlateKind.EMBASSY:
                return "使" + self._digits(6)
        raise AssertionError(kind)  # pragma: no cover - the match covers every kind

    def _vehicle(self) -> _Vehicle:
        rng = self._rng
        if rng.random() < self.no_plate_rate:
            return _Vehicle("", None, rng.choice(("car", "van", "truck", "motorcycle")))
        if self.watchlisted and rng.random() < self.watchlisted_share:
            return self._watchlisted_vehicle(rng.choice(self.watchlisted))
        profile = rng.choices(_PROFILES, _PROFILE_WEIGHTS)[0][1]
        types, weights = zip(*profile.vehicle_types, strict=True)
        return _Vehicle(self._plate(profile.kind), profile.colour, rng.choices(types, weights)[0])

    def _watchlisted_vehicle(self, plate: str) -> _Vehicle:
        kind = check(plate).kind
        if kind is None:
            # A listed plate that breaks the rules (a cloned or forged plate) still drives by.
            return _Vehicle(plate, None, "car")
        colour = self._rng.choice(sorted(expected_colours(kind)))
        if colour is PlateColour.YELLOW and kind is PlateKind.REGULAR:
            vehicle_type = self._rng.choice(("truck", "bus", "hazmat"))
        elif kind is PlateKind.TRAILER:
            vehicle_type = "trailer"
        elif kind is PlateKind.NEW_ENERGY_LARGE:
            vehicle_type = self._rng.choice(("bus", "truck"))
        else:
            vehicle_type = self._rng.choice(("car", "suv"))
        return _Vehicle(plate, colour, vehicle_type)

    # -- OCR ------------------------------------------------------------------------------------

    def _misread(self, plate: str) -> str:
        """A different string an OCR engine could plausibly have produced for ``plate``."""
        rng = self._rng
        for _ in range(10):
            op = rng.choices(
                ("look_alike", "province", "no_province", "drop", "double"), (50, 15, 10, 12.5, 12.5)
            )[0]
            if op == "look_alike":
                spots = [i for i, ch in enumerate(plate) if ch in _LOOK_ALIKES]
                if not spots:
                    continue
                i = rng.choice(spots)
                read = plate[:i] + rng.choice(_LOOK_ALIKES[plate[i]]) + plate[i + 1 :]
            elif op == "province":
                read = rng.choice(PROVINCES.replace(plate[0], "")) + plate[1:]
            elif op == "no_province":
                read = plate[1:]
            elif op == "drop":
                if len(plate) < 2:
                    continue
                i = rng.randrange(1, len(plate))
                read = plate[:i] + plate[i + 1 :]
            else:
                i = rng.randrange(len(plate))
                read = plate[: i + 1] + plate[i:]
            if read and read != plate:
                return read
        return plate + plate[-1]  # doubling the last character always differs

    # -- public ---------------------------------------------------------------------------------

    def next_vehicle(self) -> list[SimulatedRead]:
        """The 1-3 camera reads of the next vehicle, in capture order."""
        rng = self._rng
        self._vehicle_no += 1
        vehicle = self._vehicle()
        direction = "in" if rng.random() < _DIRECTION_IN_SHARE else "out"
        n_reads = rng.choices(_READ_COUNTS, _READ_COUNT_WEIGHTS)[0]
        cameras = rng.sample(range(len(self.cameras)), min(n_reads, len(self.cameras)))
        # The vehicle has just passed: its reads fall in the last READ_SPREAD_SECONDS, none later.
        now = self._clock()
        ages = sorted((rng.uniform(0, READ_SPREAD_SECONDS) for _ in cameras), reverse=True)
        reads = []
        for cam, age in zip(cameras, ages, strict=True):
            if not vehicle.plate:
                plate_read, confidence = "", rng.uniform(0, 30)
            elif rng.random() < self.misread_rate:
                plate_read, confidence = self._misread(vehicle.plate), rng.uniform(55, 85)
            else:
                plate_read, confidence = vehicle.plate, rng.uniform(85, 99.5)
            colour_known = vehicle.colour is not None and rng.random() >= _COLOUR_UNKNOWN_RATE
            reads.append(
                SimulatedRead(
                    camera_id=self.cameras[cam],
                    lane=cam + 1,  # one camera per lane, numbered from the kerb
                    direction=direction,
                    plate_read=plate_read,
                    plate_true=vehicle.plate,
                    colour=str(vehicle.colour) if colour_known else None,
                    vehicle_type=vehicle.vehicle_type,
                    confidence=round(confidence, 1),
                    captured_at=now - age,
                    vehicle_no=self._vehicle_no,
                )
            )
        return reads


async def run_simulator(
    sim: TrafficSimulator,
    emit: Callable[[SimulatedRead], Awaitable[None]],
    *,
    vehicles_per_minute: float,
    stop: asyncio.Event,
) -> None:
    """Emit simulated reads with exponential inter-arrival times until ``stop`` is set."""
    if vehicles_per_minute <= 0:
        raise ValueError(f"vehicles_per_minute must be positive, got {vehicles_per_minute}")
    rate_per_second = vehicles_per_minute / 60.0
    while not stop.is_set():
        gap = sim._arrivals.expovariate(rate_per_second)
        # Waiting on the event rather than sleeping lets a stop end the wait at once. asyncio.timeout,
        # not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives as the event fires.
        try:
            async with asyncio.timeout(gap):
                await stop.wait()
        except TimeoutError:
            pass
        else:
            return
        for read in sim.next_vehicle():
            if stop.is_set():
                return
            await emit(read)


# -- pictures ---------------------------------------------------------------------------------------

SCENE_SIZE = (640, 360)  # width, height: small, as a camera's sub-stream snapshot
PLATE_SIZE = (240, 76)  # the plate close-up, about the 440 x 140 mm plate's shape
SCENE_QUALITY = 75
PLATE_QUALITY = 85

# Plate background and text colours (BGR) by plate colour; yellow-green is drawn as its two halves.
_PLATE_COLOURS: dict[str | None, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "blue": ((170, 70, 10), (255, 255, 255)),
    "yellow": ((0, 190, 240), (0, 0, 0)),
    "green": ((110, 200, 90), (0, 0, 0)),
    "yellow_green": ((0, 200, 200), (0, 0, 0)),
    "white": ((245, 245, 245), (0, 0, 0)),
    "black": ((20, 20, 20), (255, 255, 255)),
    None: ((150, 150, 150), (0, 0, 0)),
}
_BODY_COLOURS = ((235, 235, 235), (40, 40, 40), (150, 150, 155), (40, 40, 170), (150, 90, 30), (60, 110, 60))
_SIZES = {  # vehicle type -> (width, height) in the scene, pixels
    "car": (230, 130), "suv": (240, 150), "van": (250, 170), "bus": (290, 220), "truck": (300, 220),
    "hazmat": (300, 215), "trailer": (310, 210), "motorcycle": (90, 120),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScenePictures:
    """What a simulated camera sends with a read: the scene and the plate close-up (JPEG bytes)."""

    scene: bytes
    plate: bytes | None


_GLYPH_DIR = Path(__file__).with_name("plateglyphs")
_GLYPH_SHEET: dict[str, np.ndarray] = {}


def _chinese_glyphs() -> dict[str, np.ndarray]:
    """The Chinese characters a plate has (provinces, 使 领 警 学 挂 港 澳) as grey masks, from a sheet drawn
    from WenQuanYi Micro Hei (plateglyphs/: OpenCV's Hershey fonts have no Chinese); loaded once."""
    if not _GLYPH_SHEET:
        chars = (_GLYPH_DIR / "glyphs.txt").read_text(encoding="utf-8").strip()
        sheet = cv2.imread(str(_GLYPH_DIR / "glyphs.png"), cv2.IMREAD_GRAYSCALE)
        if sheet is None:
            raise RuntimeError(f"cannot read {_GLYPH_DIR / 'glyphs.png'}")
        width = sheet.shape[1] // len(chars)
        _GLYPH_SHEET.update({ch: sheet[:, i * width : (i + 1) * width] for i, ch in enumerate(chars)})
    return _GLYPH_SHEET


def _glyphs(plate: str) -> list[str | None]:
    """The plate's characters as they can be drawn: ASCII by OpenCV, the Chinese ones from the glyph sheet;
    a character neither has is None (drawn as a box)."""
    chinese = _chinese_glyphs()
    return [ch if ch.isascii() or ch in chinese else None for ch in plate]


def _plate_image(plate: str, colour: str | None) -> np.ndarray:
    width, height = PLATE_SIZE
    background, ink = _PLATE_COLOURS.get(colour, _PLATE_COLOURS[None])
    img = np.zeros((height, width, 3), np.uint8)
    img[:] = background
    if colour == "yellow_green":
        img[:, : width // 3] = (0, 190, 240)
        img[:, width // 3 :] = (110, 200, 90)
    cv2.rectangle(img, (3, 3), (width - 4, height - 4), ink, 2)
    glyphs = _glyphs(plate) or [None]
    step = (width - 20) / len(glyphs)
    for i, ch in enumerate(glyphs):
        x = int(10 + i * step)
        if ch is None:  # a character no font here has: a box of its size
            cv2.rectangle(img, (x + 3, 14), (x + int(step) - 4, height - 14), ink, 2)
            cv2.line(img, (x + 3, height // 2), (x + int(step) - 4, height // 2), ink, 1)
        elif not ch.isascii():  # a Chinese character: its mask, scaled into the cell, inked
            cell = img[12 : height - 12, x + 1 : x + int(step) - 1]
            mask = cv2.resize(
                _chinese_glyphs()[ch], (cell.shape[1], cell.shape[0]), interpolation=cv2.INTER_AREA
            )
            alpha = (mask.astype(np.float32) / 255.0)[:, :, None]
            cell[:] = (cell * (1 - alpha) + np.array(ink, np.float32) * alpha).astype(np.uint8)
        else:
            cv2.putText(img, ch, (x + 2, height - 18), cv2.FONT_HERSHEY_SIMPLEX, 1.45, ink, 4, cv2.LINE_AA)
    return img


_BACKGROUND: list[np.ndarray] = []


def _background() -> np.ndarray:
    """The empty road (sky, verge, lanes converging on the horizon, a little grain), drawn once."""
    if not _BACKGROUND:
        width, height = SCENE_SIZE
        img = np.zeros((height, width, 3), np.uint8)
        horizon = height * 2 // 5
        sky = np.linspace(215, 150, horizon)
        img[:horizon] = np.stack([sky, sky - 20, sky - 60], axis=1).clip(0, 255).astype(np.uint8)[:, None, :]
        img[horizon:] = (82, 84, 86)
        cv2.rectangle(img, (0, horizon - 30), (width, horizon), (70, 110, 80), -1)  # the verge
        for lane_x in (width // 3, 2 * width // 3):
            cv2.line(
                img, (lane_x, height), (width // 2 + (lane_x - width // 2) // 6, horizon), (230, 230, 230), 3
            )
        grain = np.random.default_rng(7).integers(0, 10, (height - horizon, width), dtype=np.uint8)
        img[horizon:] = cv2.add(img[horizon:], cv2.merge([grain] * 3))
        _BACKGROUND.append(img)
    return _BACKGROUND[0]


#: The simulated cameras' on-screen clock: China Standard Time, as the ring's cameras are set, whatever the
#: host's zone (on a UTC host the picture said 05:23 beside a console saying 13:23).
CAMERA_CLOCK = timezone(timedelta(hours=8))


def scene_caption(read: SimulatedRead, checkpoint_id: str) -> str:
    """The caption a camera burns into its picture: its clock's time, the checkpoint, the camera, the lane."""
    stamp = datetime.fromtimestamp(read.captured_at, CAMERA_CLOCK).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp}  {checkpoint_id}  {read.camera_id}  LANE {read.lane}"


def scene_pictures(read: SimulatedRead, checkpoint_id: str) -> ScenePictures:
    """Draw the scene a plate camera would send with ``read``: sky, road and lane marks, the vehicle (its
    colour fixed per vehicle, so every lane shows the same one) with its true plate, the camera's caption;
    and the plate close-up. A vehicle without a plate gets no close-up. A few milliseconds per read."""
    width, height = SCENE_SIZE
    digest = hashlib.blake2b(f"{read.plate_true}|{read.vehicle_no}".encode(), digest_size=8).digest()
    rng = random.Random(int.from_bytes(digest, "big"))
    img = _background().copy()

    vw, vh = _SIZES.get(read.vehicle_type, _SIZES["car"])
    cx = width // 2 + rng.randint(-40, 40)
    bottom = height - 30
    left, top = cx - vw // 2, bottom - vh
    body = _BODY_COLOURS[rng.randrange(len(_BODY_COLOURS))]
    if read.vehicle_type in ("truck", "hazmat", "trailer", "bus"):
        cv2.rectangle(img, (left, top), (left + vw, bottom - 20), body, -1)
        cv2.rectangle(img, (left + 25, top + 15), (left + vw - 25, top + vh // 3), (60, 50, 40), -1)
        if read.vehicle_type == "hazmat":
            cv2.rectangle(
                img, (cx - 25, top + vh // 3 + 15), (cx + 25, top + vh // 3 + 45), (0, 140, 255), -1
            )
    elif read.vehicle_type == "motorcycle":
        cv2.ellipse(img, (cx, bottom - 50), (30, 55), 0, 0, 360, body, -1)
        cv2.circle(img, (cx, top + 12), 16, (30, 30, 30), -1)
    else:
        roof = vh // 2
        cv2.fillConvexPoly(
            img,
            np.array(
                [
                    [left + 35, top + roof],
                    [left + 60, top],
                    [left + vw - 60, top],
                    [left + vw - 35, top + roof],
                ]
            ),
            body,
        )
        cv2.fillConvexPoly(
            img,
            np.array(
                [
                    [left + 50, top + roof - 4],
                    [left + 68, top + 10],
                    [left + vw - 68, top + 10],
                    [left + vw - 50, top + roof - 4],
                ]
            ),
            (70, 55, 45),
        )  # the windscreen
        cv2.rectangle(img, (left, top + roof - 2), (left + vw, bottom - 18), body, -1)
    for wx in (left + 28, left + vw - 28):  # wheels
        cv2.rectangle(img, (wx - 16, bottom - 24), (wx + 16, bottom + 2), (20, 20, 20), -1)
    if read.vehicle_type != "motorcycle":
        for lx in (left + 22, left + vw - 22):  # lamps
            cv2.ellipse(img, (lx, bottom - 55), (16, 9), 0, 0, 360, (200, 230, 240), -1)

    plate_img = None
    if read.plate_true:
        plate_img = _plate_image(read.plate_true, read.colour)
        pw, ph = 90, 29
        px, py = cx - pw // 2, bottom - 48
        img[py : py + ph, px : px + pw] = cv2.resize(plate_img, (pw, ph), interpolation=cv2.INTER_AREA)
    caption = scene_caption(read, checkpoint_id)
    cv2.rectangle(img, (0, 0), (width, 22), (0, 0, 0), -1)
    cv2.putText(img, caption, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    scene = _jpeg(img, SCENE_QUALITY)
    return ScenePictures(scene, _jpeg(plate_img, PLATE_QUALITY) if plate_img is not None else None)


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, out = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any 8-bit BGR picture
        raise RuntimeError("could not encode the simulated picture")
    return out.tobytes()
