"""One ring file, one parser (protocols/ring.py), found one way (central/intel/ring.ring_path): the console's
map and the cloned-plate rule read the same checkpoints from it, and refuse the same bad files."""

from __future__ import annotations

import pytest

from central.intel.clones import load_geography
from central.intel.ring import SHIPPED, load_ring, ring_path
from central.settings import CloneSettings
from protocols.ring import GeographyError, RingError

RING = (
    "\ufeffid,name_zh,name_en,lat,lon,city\nSD-A-001,甲检查站,Alpha,36.1,117.0,济南\nSD-A-002,,,36.2,117.1,\n"
)


def test_the_map_and_the_clone_rule_read_the_same_checkpoints(tmp_path):
    path = tmp_path / "ring.csv"
    path.write_text(RING, encoding="utf-8")
    shown = load_ring(path)
    geography = load_geography(CloneSettings(checkpoints_csv=str(path)))
    assert [c["checkpoint"] for c in shown] == list(geography.checkpoints) == ["SD-A-001", "SD-A-002"]
    for c in shown:
        cp = geography.checkpoints[c["checkpoint"]]
        assert (cp.lat, cp.lon, cp.name_en) == (c["lat"], c["lon"], c["name_en"])
        assert cp.name == (c["name"] or c["checkpoint"])  # the rule names a nameless checkpoint by its id
    assert shown[0]["city"] == "济南" and "city" not in shown[1]


def test_both_settings_find_the_shipped_ring_the_same_way():
    assert ring_path("") == SHIPPED
    assert [c["checkpoint"] for c in load_ring(ring_path(""))] == list(
        load_geography(CloneSettings()).checkpoints
    )


@pytest.mark.parametrize(
    "text",
    [
        "id,lat,lon\nSD-A-001,36.1,117.0\nSD-A-001,36.2,117.1\n",  # the same id twice
        "id,lat,lon\nSD-A-001,nan,117.0\n",
        "id,lat,lon\nSD-A-001,36.1,181\n",
        "id,name\nSD-A-001,x\n",
    ],
)
def test_a_file_bad_for_one_is_bad_for_the_other(tmp_path, text):
    path = tmp_path / "ring.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RingError):
        load_ring(path)
    with pytest.raises(GeographyError, match=str(path)):
        load_geography(CloneSettings(checkpoints_csv=str(path)))
