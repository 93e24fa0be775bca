"""Simulated checkpoint traffic: realistic mix, OCR misreads, determinism and the async driver."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter

import pytest

from edge.sources.simulator import (
    READ_SPREAD_SECONDS,
    VEHICLE_TYPES,
    SimulatedRead,
    TrafficSimulator,
    run_simulator,
)
from protocols.plates import PlateColour, PlateKind, check

NOW = 1_700_000_000.0
CAMERAS = ("cam-1", "cam-2", "cam-3")
N_VEHICLES = 5000


def fixed_clock() -> float:
    return NOW


def make_sim(**kwargs: object) -> TrafficSimulator:
    kwargs.setdefault("seed", 7)
    kwargs.setdefault("clock", fixed_clock)
    return TrafficSimulator("SD-DZ-001", CAMERAS, **kwargs)  # type: ignore[arg-type]


def vehicles(sim: TrafficSimulator, n: int = N_VEHICLES) -> list[list[SimulatedRead]]:
    return [sim.next_vehicle() for _ in range(n)]


@pytest.fixture(scope="module")
def traffic() -> list[list[SimulatedRead]]:
    """5,000 vehicles at a Dezhou checkpoint with default rates and no watchlist."""
    return vehicles(make_sim())


def share(count: int, total: int) -> float:
    return count / total


# ---------------------------------------------------------------------------------------------
# Shape and determinism


def test_same_seed_and_clock_give_the_same_traffic() -> None:
    assert vehicles(make_sim(seed=42), 300) == vehicles(make_sim(seed=42), 300)


def test_different_seeds_give_different_traffic() -> None:
    assert vehicles(make_sim(seed=1), 50) != vehicles(make_sim(seed=2), 50)


def test_each_vehicle_is_one_to_three_reads_by_different_cameras(traffic: list[list[SimulatedRead]]) -> None:
    counts = Counter(len(reads) for reads in traffic)
    assert set(counts) == {1, 2, 3}
    for number, reads in enumerate(traffic, start=1):
        assert {r.vehicle_no for r in reads} == {number}
        assert len({r.camera_id for r in reads}) == len(reads)
        assert {r.camera_id for r in reads} <= set(CAMERAS)
        assert all(r.lane == CAMERAS.index(r.camera_id) + 1 for r in reads)
        assert len({r.direction for r in reads}) == 1
        assert reads[0].direction in ("in", "out")
        assert len({r.plate_true for r in reads}) == 1
        assert len({r.vehicle_type for r in reads}) == 1
        times = [r.captured_at for r in reads]
        assert times == sorted(times)
        assert NOW - READ_SPREAD_SECONDS <= times[0] and times[-1] <= NOW
        assert all(0.0 <= r.confidence <= 100.0 for r in reads)


def test_one_camera_gives_one_read_per_vehicle() -> None:
    sim = TrafficSimulator("SD-LY-001", ["only"], seed=3, clock=fixed_clock)
    assert all(len(sim.next_vehicle()) == 1 for _ in range(200))


def test_both_directions_appear(traffic: list[list[SimulatedRead]]) -> None:
    directions = Counter(reads[0].direction for reads in traffic)
    assert 0.4 < share(directions["in"], N_VEHICLES) < 0.7


# ---------------------------------------------------------------------------------------------
# Realistic mix


def test_province_mix(traffic: list[list[SimulatedRead]]) -> None:
    provinces = Counter(reads[0].plate_true[:1] for reads in traffic)
    assert 0.70 < share(provinces["鲁"], N_VEHICLES) < 0.80
    # the checkpoint's own neighbour (冀 for Dezhou) is the biggest outside province
    outside = [(n, p) for p, n in provinces.items() if p not in ("鲁", "")]
    assert max(outside)[1] == "冀"
    assert 0.08 < share(provinces["冀"], N_VEHICLES) < 0.16
    for other in "豫苏皖":
        assert provinces[other] > 30
    elsewhere = sum(n for p, n in provinces.items() if p not in "鲁冀豫苏皖" or p == "")
    assert 0.02 < share(elsewhere, N_VEHICLES) < 0.10


def test_local_city_dominates_shandong_plates(traffic: list[list[SimulatedRead]]) -> None:
    letters = Counter(r[0].plate_true[1] for r in traffic if r[0].plate_true.startswith("鲁"))
    assert letters.most_common(1)[0][0] == "N"  # 德州
    assert set(letters) <= set("ABCDEFGHJKLMNPQRSUVY")
    assert len(letters) > 15


def test_colour_mix(traffic: list[list[SimulatedRead]]) -> None:
    # The camera's colour, falling back to another read of the same vehicle when one can't tell.
    colours = Counter(next((r.colour for r in reads if r.colour), None) for reads in traffic)
    assert 0.58 < share(colours["blue"], N_VEHICLES) < 0.72
    assert 0.10 < share(colours["green"] + colours["yellow_green"], N_VEHICLES) < 0.20
    assert 0.10 < share(colours["yellow"], N_VEHICLES) < 0.20
    assert 0 < colours["white"] < 0.03 * N_VEHICLES
    assert 0 < colours["black"] < 0.02 * N_VEHICLES
    assert colours[None] < 0.03 * N_VEHICLES


def test_kinds_include_suffix_and_new_energy_plates(traffic: list[list[SimulatedRead]]) -> None:
    kinds = Counter(check(reads[0].plate_true).kind for reads in traffic if reads[0].plate_true)
    for kind in (PlateKind.REGULAR, PlateKind.NEW_ENERGY_SMALL, PlateKind.NEW_ENERGY_LARGE):
        assert kinds[kind] > 20
    for kind in (PlateKind.TRAILER, PlateKind.COACH, PlateKind.POLICE):
        assert kinds[kind] > 5


_TYPES_BY_COLOUR: dict[str, set[str]] = {
    "blue": {"car", "suv", "van"},
    "green": {"car", "suv"},
    "yellow_green": {"bus", "truck"},
    "yellow": {"truck", "bus", "hazmat", "trailer", "motorcycle", "car"},
    "white": {"car", "suv", "van"},
    "black": {"car", "suv"},
}


def test_vehicle_type_fits_the_plate(traffic: list[list[SimulatedRead]]) -> None:
    seen = set()
    for reads in traffic:
        read = reads[0]
        seen.add(read.vehicle_type)
        assert read.vehicle_type in VEHICLE_TYPES
        if read.colour is not None:
            assert read.vehicle_type in _TYPES_BY_COLOUR[read.colour], read
        if read.vehicle_type == "trailer":
            assert read.plate_true.endswith("挂")
        if read.vehicle_type in ("hazmat", "motorcycle"):
            assert read.colour in ("yellow", None)
    assert {"car", "suv", "van", "bus", "truck", "hazmat", "trailer"} <= seen


def test_true_plates_pass_the_plate_rules(traffic: list[list[SimulatedRead]]) -> None:
    for reads in traffic:
        for read in reads:
            if not read.plate_true:
                continue
            colour = PlateColour(read.colour) if read.colour else None
            assert check(read.plate_true, colour).valid, read


def test_true_plates_pass_the_rules_at_every_checkpoint() -> None:
    for checkpoint, neighbour in (("SD-HZ-003", "皖"), ("SD-YT-001", "辽"), ("XX-unknown", "豫")):
        sim = TrafficSimulator(checkpoint, CAMERAS, neighbour=neighbour, seed=11, clock=fixed_clock)
        for reads in vehicles(sim, 1000):
            plate, colour = reads[0].plate_true, reads[0].colour
            if plate:
                assert check(plate, PlateColour(colour) if colour else None).valid, reads[0]


# ---------------------------------------------------------------------------------------------
# Misreads, no-plate vehicles, watchlisted vehicles


def test_misread_rate_and_misreads_differ_from_truth(traffic: list[list[SimulatedRead]]) -> None:
    plated = [r for reads in traffic for r in reads if r.plate_true]
    misreads = [r for r in plated if r.plate_read != r.plate_true]
    assert 0.035 < share(len(misreads), len(plated)) < 0.065
    assert all(r.plate_read for r in misreads)
    # misreads come with lower confidence than clean reads
    clean = [r for r in plated if r.plate_read == r.plate_true]
    assert max(r.confidence for r in misreads) <= min(r.confidence for r in clean)
    # most reads of a vehicle agree: a misread is usually outvoted by the other cameras
    multi = [reads for reads in traffic if len(reads) > 1 and reads[0].plate_true]
    agreeing = sum(1 for reads in multi if len({r.plate_read for r in reads}) == 1)
    assert agreeing > 0.85 * len(multi)


def test_misreads_look_like_ocr_errors() -> None:
    sim = make_sim(misread_rate=1.0, no_plate_rate=0.0)
    reads = [r for reads in vehicles(sim, 2000) for r in reads]
    assert all(r.plate_read != r.plate_true and r.plate_read for r in reads)
    same_length = [r for r in reads if len(r.plate_read) == len(r.plate_true)]
    swaps = [r for r in same_length if r.plate_read[1:] != r.plate_true[1:]]
    lookalike_pairs = {"0O", "0D", "0Q", "OD", "OQ", "DQ", "1I", "2Z", "5S", "6G", "8B"}
    for read in swaps:
        diffs = [(a, b) for a, b in zip(read.plate_true, read.plate_read, strict=True) if a != b]
        assert len(diffs) == 1
        assert "".join(sorted(diffs[0])) in {"".join(sorted(p)) for p in lookalike_pairs}
    wrong_province = [r for r in same_length if r.plate_read[1:] == r.plate_true[1:]]
    shorter = [r for r in reads if len(r.plate_read) == len(r.plate_true) - 1]
    missing_province = [r for r in shorter if r.plate_read == r.plate_true[1:]]
    longer = [r for r in reads if len(r.plate_read) == len(r.plate_true) + 1]
    for bucket in (swaps, wrong_province, shorter, missing_province, longer):
        assert len(bucket) > 50
    assert len(swaps) > len(wrong_province)


def test_no_misreads_when_the_rate_is_zero() -> None:
    sim = make_sim(misread_rate=0.0)
    assert all(r.plate_read == r.plate_true for reads in vehicles(sim, 1000) for r in reads)


def test_no_plate_vehicles() -> None:
    sim = make_sim(no_plate_rate=0.05)
    traffic = vehicles(sim)
    no_plate = [reads for reads in traffic if not reads[0].plate_true]
    assert 0.03 < share(len(no_plate), N_VEHICLES) < 0.07
    for reads in no_plate:
        for read in reads:
            assert read.plate_read == "" and read.plate_true == ""
            assert read.colour is None
            assert read.vehicle_type in VEHICLE_TYPES
    plated = [r for reads in traffic for r in reads if r.plate_true]
    assert all(r.plate_read for r in plated)


def test_watchlisted_share() -> None:
    listed = ["鲁N7X123", "冀A88888", "鲁AD12345", "豫A1234挂", "苏A12345F"]
    sim = make_sim(watchlisted=listed, watchlisted_share=0.02)
    traffic = vehicles(sim)
    hits = [reads for reads in traffic if reads[0].plate_true in listed]
    assert 0.012 < share(len(hits), N_VEHICLES) < 0.03
    assert len({reads[0].plate_true for reads in hits}) == len(listed)
    for reads in hits:
        colour = reads[0].colour
        assert check(reads[0].plate_true, PlateColour(colour) if colour else None).valid
    trailer = next(reads[0] for reads in hits if reads[0].plate_true == "豫A1234挂")
    assert trailer.vehicle_type == "trailer"


def test_watchlisted_plates_are_normalized_and_odd_ones_still_drive_by() -> None:
    sim = make_sim(watchlisted=["鲁ａ·12345", "台A12345", "无车牌"], watchlisted_share=1.0, no_plate_rate=0.0)
    plates = Counter(reads[0].plate_true for reads in vehicles(sim, 300))
    assert set(plates) == {"鲁A12345", "台A12345"}


def test_no_watchlisted_vehicles_without_a_watchlist(traffic: list[list[SimulatedRead]]) -> None:
    assert not any(reads[0].plate_true == "鲁N7X123" for reads in traffic)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cameras": []},
        {"neighbour": "XX"},
        {"neighbour": "台"},
        {"neighbour": "鲁"},
        {"misread_rate": 1.5},
        {"no_plate_rate": -0.1},
        {"watchlisted_share": 2.0},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    cameras = kwargs.pop("cameras", CAMERAS)
    with pytest.raises(ValueError):
        TrafficSimulator("SD-DZ-001", cameras, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The async driver


async def test_run_simulator_emits_reads_and_stops_promptly() -> None:
    sim = make_sim(clock=lambda: NOW)
    got: list[SimulatedRead] = []
    stop = asyncio.Event()
    enough = asyncio.Event()

    async def emit(read: SimulatedRead) -> None:
        got.append(read)
        if len(got) >= 20:
            enough.set()

    task = asyncio.create_task(run_simulator(sim, emit, vehicles_per_minute=60_000, stop=stop))
    await asyncio.wait_for(enough.wait(), timeout=2)
    stop.set()
    count_at_stop = len(got)
    await asyncio.wait_for(task, timeout=0.5)
    assert len(got) <= count_at_stop + 1  # at most the read already being emitted
    numbers = [r.vehicle_no for r in got]
    assert numbers == sorted(numbers) and numbers[0] == 1


async def test_run_simulator_stops_during_a_long_gap() -> None:
    stop = asyncio.Event()

    async def emit(read: SimulatedRead) -> None:
        raise AssertionError("no vehicle is due within the test")

    # One vehicle an hour: the driver is waiting out the gap when it is told to stop.
    task = asyncio.create_task(run_simulator(make_sim(), emit, vehicles_per_minute=1 / 60, stop=stop))
    await asyncio.sleep(0.05)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, timeout=0.5)


async def test_run_simulator_returns_at_once_if_already_stopped() -> None:
    stop = asyncio.Event()
    stop.set()

    async def emit(read: SimulatedRead) -> None:
        raise AssertionError("stopped before it started")

    await asyncio.wait_for(run_simulator(make_sim(), emit, vehicles_per_minute=600, stop=stop), timeout=0.5)


async def test_run_simulator_refuses_a_non_positive_rate() -> None:
    async def emit(read: SimulatedRead) -> None:
        pass

    with pytest.raises(ValueError):
        await run_simulator(make_sim(), emit, vehicles_per_minute=0, stop=asyncio.Event())


def test_scene_pictures_are_camera_like_jpegs_with_the_plate() -> None:
    """What a simulated camera sends: a decodable scene with the vehicle's plate drawn in it and the plate
    close-up (none for a vehicle without a plate); one vehicle looks the same in every lane."""
    import cv2
    import numpy as np

    from edge.evidence import decode_image
    from edge.sources.simulator import PLATE_SIZE, SCENE_SIZE, scene_pictures

    sim = make_sim(watchlisted=["鲁Q8K2L1"], watchlisted_share=1.0, misread_rate=0.0)
    reads = sim.next_vehicle() + sim.next_vehicle()
    for read in reads:
        pictures = scene_pictures(read, "SD-DZ-001")
        scene = decode_image(pictures.scene, "scene")
        assert (scene.shape[1], scene.shape[0]) == SCENE_SIZE
        plate = decode_image(pictures.plate, "plate")
        assert (plate.shape[1], plate.shape[0]) == PLATE_SIZE
        # a yellow or blue plate's background fills most of the close-up
        assert float(np.mean(cv2.cvtColor(plate, cv2.COLOR_BGR2HSV)[:, :, 1])) > 80
    same = [r for r in reads if r.vehicle_no == reads[0].vehicle_no]
    if len(same) > 1:
        a, b = (decode_image(scene_pictures(r, "SD-DZ-001").scene, "s") for r in same[:2])
        assert float(np.mean(cv2.absdiff(a[40:], b[40:]))) < 3, "the same vehicle in both lanes"
    no_plate = make_sim(no_plate_rate=1.0).next_vehicle()[0]
    pictures = scene_pictures(no_plate, "SD-DZ-001")
    assert pictures.plate is None and decode_image(pictures.scene, "scene") is not None


def test_the_pictures_caption_is_china_standard_time_on_any_host(monkeypatch) -> None:
    """The camera's clock in the picture agrees with the console's Asia/Shanghai, not the host's zone."""
    import time

    from edge.sources.simulator import scene_caption

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        read = make_sim().next_vehicle()[0]
        read = dataclasses.replace(read, captured_at=1796620980.0)  # 2026-12-07 05:23:00 UTC
        assert scene_caption(read, "SD-DZ-001").startswith("2026-12-07 13:23:00  SD-DZ-001  ")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_plate_close_ups_draw_every_chinese_character_a_plate_can_have():
    """The demo's plate crops draw the province and suffix characters (OpenCV's fonts have none: they were
    drawn as empty boxes) from the glyph sheet; each is inked, and unlike the box drawn for a character no
    font here has."""
    import numpy as np

    from edge.sources import simulator
    from protocols.plates import _SUFFIX_KINDS, PROVINCES

    for ch in PROVINCES + "".join(_SUFFIX_KINDS) + "使":
        assert simulator._glyphs(ch) == [ch], f"{ch} has no glyph"
    drawn = simulator._plate_image("鲁A12345", "blue")
    boxed = simulator._plate_image("\u4e00A12345", "blue")  # 一: on no plate, so no glyph: a box
    assert simulator._glyphs("\u4e00") == [None]
    width = simulator.PLATE_SIZE[0]
    first = slice(10, 10 + (width - 20) // 7)
    assert not np.array_equal(drawn[:, first], boxed[:, first]), "鲁 was drawn as the box"
    background = np.array(simulator._PLATE_COLOURS["blue"][0])
    inked = np.any(drawn[14:-14, first] != background, axis=2).mean()
    assert 0.1 < inked < 0.7, f"the province character covers {inked:.0%} of its cell"
